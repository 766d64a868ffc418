"""Recall against speed for one index: exact ground truth, a sweep of ef_search or nprobe, a plot.

``sweep`` measures recall@k and queries per second for each search setting, for single queries
(one call per query, the latency path) and batches (one call for all queries), at each thread count.
``smallest_reaching`` picks the cheapest setting that meets a target recall; the CLI writes it into
the index's saved settings.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cpuai.errors import ConfigError
from cpuai.vectors.index import VectorIndex
from cpuai.vectors.kinds import HNSW_KINDS

EF_SWEEP = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
NPROBE_SWEEP = (1, 2, 4, 8, 16, 32, 64, 128)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each query's true top-k that ``found`` contains (order ignored)."""
    if found.shape[0] != truth.shape[0]:
        raise ConfigError(
            f"{found.shape[0]} result rows for {truth.shape[0]} queries", fix="pass matching arrays"
        )
    k = truth.shape[1]
    hits = [len(np.intersect1d(a[:k], b)) for a, b in zip(found, truth, strict=True)]
    return float(np.sum(hits) / (k * len(truth)))


def ground_truth(index: VectorIndex, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k ids by brute force over the index's live full-precision vectors."""
    from cpuai.vectors.exact import knn

    live = index.ids_.live_positions()
    base = index._raw_positions(live)
    q = np.asarray(queries, dtype=np.float32)
    metric = index.metric
    if metric == "cosine":
        from cpuai.vectors.exact import normalise

        q, metric = normalise(q), "ip"  # stored vectors are unit already
    local, _ = knn(q, base, k, metric)
    return index.ids_.labels_of(live[local])


def thread_counts(budget: int) -> list[int]:
    """1, 2, 4, ... up to and including ``budget``."""
    counts, t = [], 1
    while t < budget:
        counts.append(t)
        t *= 2
    return [*counts, budget]


def sweep_values(
    index: VectorIndex, values: Sequence[int] | None = None, k: int = 10
) -> tuple[str, list[int]]:
    """The knob to sweep for this kind (ef_search / nprobe / none) and its values."""
    kind = index.kind
    if kind in HNSW_KINDS:
        return "ef_search", [v for v in (values or EF_SWEEP) if v >= k] or [k]
    if kind == "ivf-sq8":
        return "nprobe", [v for v in (values or NPROBE_SWEEP) if v <= index.params.nlist]
    return "none", [0]


def _qps(fn: Callable[[], Any], n_queries: int, min_time: float) -> float:
    fn()  # warm-up
    done, start = 0, time.perf_counter()
    while True:
        fn()
        done += n_queries
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return done / elapsed


def sweep(
    index: VectorIndex,
    queries: np.ndarray,
    truth: np.ndarray,
    *,
    k: int = 10,
    values: Sequence[int] | None = None,
    threads: Sequence[int] = (1,),
    single_queries: int = 100,
    min_time: float = 0.3,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """One row per (setting, threads, mode): recall@k and queries/s. Restores the index's settings after."""
    knob, settings = sweep_values(index, values, k)
    saved = (index.params.ef_search, index.params.nprobe, index.threads)
    rows: list[dict[str, Any]] = []
    try:
        for value in settings:
            if knob != "none":
                index.set_search(**{knob: value})
            ids, _ = index.search(queries, k)
            recall = recall_at_k(ids, truth)
            single = queries[:single_queries]
            for t in threads:
                index.threads = t
                for mode, fn, n in (
                    (
                        "single",
                        lambda s=single: [index.search(s[i : i + 1], k) for i in range(len(s))],
                        len(single),
                    ),
                    ("batch", lambda: index.search(queries, k), len(queries)),
                ):
                    row = {
                        "knob": knob,
                        "value": value,
                        "threads": t,
                        "mode": mode,
                        "recall": recall,
                        "qps": _qps(fn, n, min_time),
                    }
                    rows.append(row)
                    if on_row:
                        on_row(row)
    finally:
        index.set_search(ef_search=saved[0], nprobe=saved[1])
        index.threads = saved[2]
    return rows


def smallest_reaching(rows: Sequence[dict[str, Any]], target: float) -> dict[str, Any] | None:
    """The row with the smallest knob value whose recall reaches ``target`` (None if none does)."""
    hits = [r for r in rows if r["recall"] >= target]
    return min(hits, key=lambda r: (r["value"], -r["qps"])) if hits else None


def plot(rows: Sequence[dict[str, Any]], path: str | Path, title: str) -> Path:
    """Recall@k (x) against queries/s (y, log) per mode and thread count, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    series = sorted({(r["mode"], r["threads"]) for r in rows})
    for mode, t in series:
        pts = sorted(
            (r["recall"], r["qps"], r["value"]) for r in rows if r["mode"] == mode and r["threads"] == t
        )
        ax.plot(
            [p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{mode}, {t} thread{'s' * (t > 1)}"
        )
        for rec, qps, value in pts:
            ax.annotate(str(value), (rec, qps), fontsize=6, textcoords="offset points", xytext=(2, 2))
    ax.set_xlabel("recall@k")
    ax.set_ylabel("queries / s")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
