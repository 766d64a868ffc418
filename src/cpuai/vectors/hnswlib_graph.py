"""hnswlib as the second engine of the ``hnsw`` kind: an HNSW graph over FP32 vectors.

``HnswlibGraph`` gives ``VectorIndex`` what it needs from an engine, in faiss's conventions:
positions 0..n-1 in insertion order (hnswlib labels = positions), scores as similarities for
ip/cosine (hnswlib's ``ip`` space returns ``1 - dot``) and squared distances for l2. Deletes are
hnswlib's ``mark_deleted`` (never returned by a search), filters are its filter callable over a
boolean mask of allowed positions, and capacity grows by ``resize_index`` (doubling) so the user
never declares it. hnswlib keeps the vectors inside the graph, so ``VectorIndex`` reads them back
from it (``get``) rather than holding a second FP32 copy. hnswlib has no INT8 storage and cannot
memory-map its file: ``load`` reads the graph into memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cpuai.errors import DependencyError

FILE = "index.hnswlib"
_MIN_CAPACITY = 1024


def require_hnswlib() -> Any:
    """The hnswlib module, or a DependencyError saying how to install it."""
    try:
        import hnswlib
    except ImportError:
        raise DependencyError(
            "the hnswlib engine needs the hnswlib package, which is not installed",
            fix="pip install 'cpuai[vectors]' (or pip install hnswlib), or use engine='faiss'",
        ) from None
    return hnswlib


class ShortResult(RuntimeError):
    """hnswlib found fewer than k hits for some query (few allowed or live vectors near it)."""


class HnswlibGraph:
    """One hnswlib index with positions as labels; see the module docstring for the conventions."""

    def __init__(
        self, dim: int, metric: str, *, M: int, ef_construction: int, capacity: int = 0, seed: int = 0
    ) -> None:
        hnswlib = require_hnswlib()
        self.dim = dim
        self.metric = metric
        self.M = M
        self.ef_construction = ef_construction
        self.graph: Any = hnswlib.Index(space="l2" if metric == "l2" else "ip", dim=dim)
        if capacity >= 0:
            self.graph.init_index(
                max_elements=max(capacity, _MIN_CAPACITY),
                M=M,
                ef_construction=ef_construction,
                random_seed=seed,
            )

    @property
    def ntotal(self) -> int:
        """Positions used (live and deleted), like faiss's ``ntotal``."""
        return int(self.graph.element_count)

    def add(self, x: np.ndarray, threads: int) -> None:
        """Append ``x`` at the next positions, growing the capacity (doubling) when it is full."""
        start = self.ntotal
        need = start + len(x)
        capacity = self.graph.get_max_elements()
        if need > capacity:
            self.graph.resize_index(max(need, 2 * capacity))
        self.graph.add_items(x, np.arange(start, need, dtype=np.int64), num_threads=threads)

    def search(
        self, q: np.ndarray, k: int, ef: int, threads: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, positions), each (nq, k), best first; ``allowed`` is a bool mask over positions.

        Raises ``ShortResult`` when some query cannot be given k live (and allowed) hits.
        """
        self.graph.set_ef(max(ef, k))
        filt = None
        if allowed is not None:
            mask = allowed

            def filt(label: int) -> bool:
                return bool(mask[label])

        try:
            labels, dist = self.graph.knn_query(q, k=k, num_threads=threads, filter=filt)
        except RuntimeError as exc:
            if "contiguous" in str(exc):
                raise ShortResult(str(exc)) from None
            raise
        scores = dist if self.metric == "l2" else 1.0 - dist
        return scores.astype(np.float32, copy=False), labels.astype(np.int64, copy=False)

    def mark_deleted(self, positions: np.ndarray) -> None:
        """Tombstone ``positions`` inside hnswlib so no search returns them."""
        for p in positions.tolist():
            self.graph.mark_deleted(int(p))

    def get(self, positions: np.ndarray) -> np.ndarray:
        """The stored vectors at live ``positions`` (1-D) -> (n, d) float32."""
        if len(positions) == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        return np.asarray(self.graph.get_items(positions.tolist(), return_type="numpy"), dtype=np.float32)

    def save(self, directory: Path) -> None:
        self.graph.save_index(str(directory / FILE))

    @classmethod
    def load(cls, directory: Path, dim: int, metric: str, *, M: int, ef_construction: int) -> HnswlibGraph:
        """Read ``index.hnswlib`` from ``directory`` into memory (hnswlib cannot memory-map)."""
        graph = cls(dim, metric, M=M, ef_construction=ef_construction, capacity=-1)
        graph.graph.load_index(str(directory / FILE), max_elements=0)
        return graph
