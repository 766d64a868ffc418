"""Exact scoring: brute-force ground truth and the exact re-rank of approximate candidates.

Scores follow one rule everywhere: for ``ip`` and ``cosine`` a higher score is closer, for ``l2``
the score is the squared distance and lower is closer. Results are always sorted best first.
"""

from __future__ import annotations

import numpy as np


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), as float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms == 0, 1.0, norms)).astype(np.float32, copy=False)


def pair_scores(queries: np.ndarray, candidates: np.ndarray, metric: str) -> np.ndarray:
    """Scores of each query (nq, d) against its own candidates (nq, c, d) -> (nq, c)."""
    dots = np.matmul(candidates, queries[:, :, None])[..., 0]
    if metric != "l2":
        return dots
    return (
        np.einsum("qcd,qcd->qc", candidates, candidates)
        - 2 * dots
        + np.einsum("qd,qd->q", queries, queries)[:, None]
    )


def order(scores: np.ndarray, metric: str) -> np.ndarray:
    """Column order that sorts each row best first (NaN padding last)."""
    key = scores if metric == "l2" else -scores
    return np.argsort(np.where(np.isnan(key), np.inf, key), axis=1, kind="stable")


def knn(queries: np.ndarray, base: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k rows of ``base`` per query: (positions, scores), both (nq, k), by faiss's BLAS kernels."""
    import faiss

    from cpuai.vectors.kinds import faiss_metric

    q = np.ascontiguousarray(queries, dtype=np.float32)
    b = np.ascontiguousarray(base, dtype=np.float32)
    if metric == "cosine":
        q, b = normalise(q), normalise(b)
    scores, positions = faiss.knn(q, b, min(k, len(b)), metric=faiss_metric(metric))
    return positions.astype(np.int64), scores
