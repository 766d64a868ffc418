"""``cpuai vectors build|search|bench``: INT8 HNSW indexes from vectors or texts, searched and measured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

vectors_app = typer.Typer(
    help="Vector recall: build, search and benchmark ANN indexes (faiss HNSW / INT8, or hnswlib).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the ``vectors`` verb group."""
    app.add_typer(vectors_app, name="vectors")


def _read_input(path: Path) -> tuple[Any, list[str] | None]:
    """(vectors, None) for .npy, (None, texts) for a text file of one document per line."""
    import numpy as np

    from cpuai.errors import DataError
    from cpuai.vectors.embedding import read_texts

    if not path.exists():
        raise DataError(
            f"input {path} does not exist", fix="pass a .npy of vectors or a .txt with one text per line"
        )
    if path.suffix == ".npy":
        try:
            return np.load(path, mmap_mode="r"), None
        except (OSError, ValueError) as exc:
            raise DataError(
                f"cannot read vectors from {path}: {exc}", fix="save them with numpy.save"
            ) from None
    return None, read_texts(path)


def _progress(json_out: bool):  # type: ignore[no-untyped-def]
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from cpuai.cli.output import err_console

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=json_out,
        transient=False,
    )


def _embed(
    model: Path,
    texts: list[str],
    *,
    batch_size: int,
    threads: int | None,
    json_out: bool,
    what: str = "embedding",
) -> Any:
    from cpuai.vectors.embedding import TextEmbedder

    embedder = TextEmbedder(model, threads=threads, batch_size=batch_size)
    try:
        with _progress(json_out) as bar:
            task = bar.add_task(
                f"{what} with {embedder.package.manifest.name} ({embedder.package.manifest.precision})",
                total=len(texts),
            )
            return embedder.embed(texts, progress=lambda n: bar.advance(task, n))
    finally:
        embedder.close()


@vectors_app.command("build")
def build(
    input: Path = typer.Option(
        ..., "--input", help="vectors.npy (n x dim float) or texts.txt (one text per line)."
    ),
    out: Path = typer.Option(..., "--out", help="Directory to write the index to."),
    model: Path | None = typer.Option(
        None, "--model", help="Text-embedding package for texts (e.g. INT8 MiniLM)."
    ),
    kind: str = typer.Option("hnsw-sq8", "--kind", help="flat, hnsw, hnsw-sq8 or ivf-sq8."),
    engine: str = typer.Option(
        "faiss", "--engine", help="faiss, or hnswlib for --kind hnsw (FP32; needs hnswlib installed)."
    ),
    metric: str = typer.Option("cosine", "--metric", help="cosine, ip or l2."),
    m: int = typer.Option(32, "--M", help="HNSW links per node (memory 8*M bytes per vector)."),
    ef_construction: int = typer.Option(200, "--ef-construction", help="HNSW build beam width."),
    ef_search: int = typer.Option(64, "--ef-search", help="HNSW search beam width (set later by bench)."),
    nlist: int | None = typer.Option(None, "--nlist", help="IVF lists (default ~4*sqrt(n))."),
    nprobe: int = typer.Option(16, "--nprobe", help="IVF lists probed per query."),
    rerank: int = typer.Option(0, "--rerank", help="Re-rank rerank*k SQ8 candidates exactly (0 = off)."),
    sq: str = typer.Option(
        "per-dim", "--sq", help="SQ8 range: per-dim (finer), uniform or symmetric (faster; use --rerank)."
    ),
    batch_size: int = typer.Option(32, "--batch-size", help="Texts per embedding batch."),
    threads: int | None = typer.Option(None, "--threads", help="Threads (default: the core budget)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Build an index from vectors, or from texts embedded through cpuai.runtime."""
    import time

    from cpuai.cli.output import console, print_json
    from cpuai.errors import ConfigError
    from cpuai.vectors import VectorIndex

    index = VectorIndex(
        kind,
        metric=metric,
        M=m,
        ef_construction=ef_construction,
        ef_search=ef_search,
        nlist=nlist,
        nprobe=nprobe,
        rerank=rerank,
        sq=sq,
        threads=threads,
        engine=engine,
    )
    vectors, texts = _read_input(input)
    started = time.perf_counter()
    if texts is not None:
        if model is None:
            raise ConfigError(
                f"{input} holds texts, and no --model was given to embed them",
                fix="pass --model DIR of a text-embedding package (cpuai models export minilm --out DIR)",
            )
        vectors = _embed(model, texts, batch_size=batch_size, threads=threads, json_out=json_out)
        index.model = str(model.resolve())
    embed_s = time.perf_counter() - started
    from cpuai.vectors.index import as_matrix

    vectors = as_matrix(vectors, None)  # bad rows fail here, before any progress is drawn
    if len(vectors) == 0:
        from cpuai.errors import DataError

        raise DataError(f"{input} holds no vectors", fix="pass an (n, dim) array with n >= 1")
    chunk = 20_000
    with _progress(json_out) as bar:
        task = bar.add_task(f"indexing ({kind} on {engine})", total=len(vectors))
        for start in range(0, len(vectors), chunk):
            stop = start + chunk
            if start == 0 and kind in ("hnsw-sq8", "ivf-sq8"):
                stop = len(vectors)  # train the quantizer on everything, not on the first chunk
            index.add(vectors[start:stop], texts=texts[start:stop] if texts is not None else None)
            bar.advance(task, min(stop, len(vectors)) - start)
            if stop >= len(vectors):
                break
    index.save(out)
    summary = {
        "index": str(out),
        **index.stats(),
        "embed_seconds": round(embed_s, 3) if texts else None,
        "build_seconds": round(time.perf_counter() - started - embed_s, 3),
    }
    if json_out:
        print_json(summary)
        return
    console.print(
        f"wrote {out}: {len(index)} vectors of dim {index.dim}, {kind}/{metric} on {engine}"
        f"{f', texts embedded with {model}' if texts else ''} in {summary['build_seconds']:.1f} s"
    )


@vectors_app.command("search")
def search(
    index_dir: Path = typer.Argument(..., help="Index directory from `cpuai vectors build`."),
    query: str | None = typer.Argument(None, help="Query text (embedded with the index's model)."),
    k: int = typer.Option(10, "-k", "--k", help="Hits to return."),
    vector: Path | None = typer.Option(None, "--vector", help="Query vector(s) as .npy instead of text."),
    model: Path | None = typer.Option(
        None, "--model", help="Text model (default: the one the index was built with)."
    ),
    ef_search: int | None = typer.Option(None, "--ef-search", help="Override the saved ef_search."),
    json_out: bool = typer.Option(False, "--json", help="Print the hits as JSON."),
) -> None:
    """Print the top-k hits of a text (or vector) query, with their texts."""
    import numpy as np

    from cpuai.cli.output import console, print_json, table
    from cpuai.errors import ConfigError
    from cpuai.vectors import VectorIndex

    index = VectorIndex.load(index_dir, mmap=True)
    if ef_search is not None:
        index.set_search(ef_search=ef_search)
    if vector is not None:
        q = np.load(vector)
    elif query:
        text_model = model or (Path(index.model) if index.model else None)
        if text_model is None:
            raise ConfigError(
                f"{index_dir} was built from vectors, so a text query cannot be embedded",
                fix="pass --model DIR of the model that made the vectors, or --vector q.npy",
            )
        q = _embed(text_model, [query], batch_size=1, threads=None, json_out=True)
    else:
        raise ConfigError(
            "no query given", fix='pass a query text (cpuai vectors search DIR "text") or --vector q.npy'
        )
    ids, scores = index.search(q, k)
    results = []
    for row_ids, row_scores in zip(ids, scores, strict=True):
        hits = [
            (i, s)
            for i, s in zip(row_ids.tolist(), row_scores.tolist(), strict=True)
            if i is not None and i != -1
        ]
        texts = index.texts([i for i, _ in hits])
        results.append(
            [
                {"rank": r + 1, "id": i, "score": round(float(s), 6), "text": t}
                for r, ((i, s), t) in enumerate(zip(hits, texts, strict=True))
            ]
        )
    if json_out:
        print_json({"query": query, "k": k, "hits": results[0] if len(results) == 1 else results})
        return
    for n, shown in enumerate(results):
        title = f"top {k} for {query!r}" if query else f"top {k} for query vector {n}"
        console.print(
            table(
                title,
                ["rank", "id", "score", "text"],
                [(h["rank"], h["id"], h["score"], (h["text"] or "")[:100]) for h in shown],
            )
        )


@vectors_app.command("bench")
def bench(
    index_dir: Path | None = typer.Argument(
        None, help="Index directory (or use --input to build one in memory)."
    ),
    input: Path | None = typer.Option(None, "--input", help="vectors.npy to build a fresh index from."),
    kind: str = typer.Option("hnsw-sq8", "--kind", help="Kind for --input."),
    engine: str = typer.Option("faiss", "--engine", help="Engine for --input: faiss, or hnswlib (hnsw)."),
    metric: str = typer.Option("cosine", "--metric", help="Metric for --input."),
    m: int = typer.Option(32, "--M", help="HNSW links per node, for --input."),
    ef_construction: int = typer.Option(200, "--ef-construction", help="HNSW build beam width, for --input."),
    k: int = typer.Option(10, "-k", "--k", help="Recall@k."),
    queries: int = typer.Option(
        500, "--queries", help="Queries (held out with --input; stored vectors with DIR)."
    ),
    target: float = typer.Option(0.95, "--target", help="Recall to reach; the smallest setting is written."),
    values: str | None = typer.Option(
        None, "--values", help="Comma-separated ef_search/nprobe values to sweep."
    ),
    threads: str | None = typer.Option(
        None, "--threads", help="Comma-separated thread counts (default 1..budget)."
    ),
    write: bool = typer.Option(
        True, "--write/--no-write", help="Write the chosen setting into DIR's settings."
    ),
    out: Path | None = typer.Option(None, "--out", help="Where to write bench.json and recall_qps.png."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Exact ground truth, then recall@k against QPS over ef_search or nprobe; picks the cheapest setting."""
    import json

    import numpy as np

    from cpuai.cli.output import console, print_json, table
    from cpuai.errors import ConfigError
    from cpuai.hardware import core_budget
    from cpuai.vectors import VectorIndex
    from cpuai.vectors import bench as vbench

    if not 0 < target <= 1:
        raise ConfigError(f"--target must be a recall in (0, 1], got {target}", fix="use e.g. --target 0.95")
    if queries < 1:
        raise ConfigError(f"--queries must be at least 1, got {queries}", fix="use e.g. --queries 500")
    try:
        sweep_values = [int(v) for v in values.split(",")] if values else None
        thread_list = [int(t) for t in threads.split(",")] if threads else vbench.thread_counts(core_budget())
    except ValueError:
        raise ConfigError(
            f"--values/--threads must be comma-separated integers, got {values!r} / {threads!r}",
            fix="e.g. --values 16,32,64 --threads 1,2",
        ) from None
    if (index_dir is None) == (input is None):
        raise ConfigError(
            "pass either an index directory or --input vectors.npy", fix="not both, not neither"
        )
    if index_dir is not None:
        index = VectorIndex.load(index_dir, mmap=True)
        rng = np.random.default_rng(0)
        live = index.ids_.live_positions()
        pick = live[np.sort(rng.choice(len(live), min(queries, len(live)), replace=False))]
        q = index._raw_positions(pick)
    else:
        vectors, _ = _read_input(input)  # type: ignore[arg-type]
        if vectors is None:
            raise ConfigError(
                f"--input {input} must be a .npy of vectors", fix="build texts first, then bench DIR"
            )
        x = np.asarray(vectors, dtype=np.float32)
        if len(x) <= queries:
            raise ConfigError(
                f"--input has {len(x)} vectors, too few to hold out {queries} queries",
                fix="pass fewer --queries",
            )
        q, x = x[-queries:], x[:-queries]
        index = VectorIndex(kind, metric=metric, M=m, ef_construction=ef_construction, engine=engine).fit(x)
    truth = vbench.ground_truth(index, q, k)
    rows = vbench.sweep(index, q, truth, k=k, values=sweep_values, threads=thread_list)
    best = vbench.smallest_reaching(rows, target)
    written = False
    if best is not None and best["knob"] != "none" and index_dir is not None and write:
        index.set_search(**{best["knob"]: best["value"]})
        index.save(index_dir)
        written = True
    out_dir = out or index_dir or Path(".")
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {
        "index": str(index_dir) if index_dir else str(input),
        **index.stats(),
        "k": k,
        "queries": len(q),
        "target": target,
        "rows": rows,
        "chosen": best,
        "written": written,
    }
    (out_dir / "bench.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    png = vbench.plot(rows, out_dir / "recall_qps.png", f"{index.kind} / {index.metric}: recall@{k} vs QPS")
    if json_out:
        print_json({**report, "png": str(png)})
        return
    console.print(
        table(
            f"{index.kind}, {len(index)} vectors, recall@{k} over {len(q)} queries",
            ["knob", "value", "threads", "mode", "recall", "QPS"],
            [
                (r["knob"], r["value"], r["threads"], r["mode"], round(r["recall"], 4), round(r["qps"], 1))
                for r in rows
            ],
        )
    )
    if best is None:
        console.print(f"no setting reached recall {target}; try larger --values, a larger M, or --rerank")
    else:
        console.print(
            f"smallest {best['knob']} reaching recall@{k} >= {target}: {best['value']} "
            f"(recall {best['recall']:.4f}){'; written to ' + str(index_dir) if written else ''}"
        )
    console.print(f"wrote {out_dir / 'bench.json'} and {png}")
