"""``VectorIndex``: approximate nearest-neighbour recall on faiss without the usual gaps.

Lifecycle::

    index = VectorIndex("hnsw-sq8", metric="cosine", M=32, ef_search=64, rerank=4)
    index.fit(vectors, ids)                 # trains the INT8 quantizer, then adds
    index.add(more, more_ids)               # capacity grows; duplicate ids are refused
    ids, scores = index.search(queries, k=10, filter=allowed_ids)
    index.delete([7, 8])                    # tombstoned now; rebuilt past ``compact_at``
    index.save("idx/")                      # index.faiss, vectors.npy, ids, settings
    index = VectorIndex.load("idx/", mmap=True)

The user's ids (non-negative int64 or strings) map to faiss positions (``IdMap``). Deleted positions
are excluded inside faiss by an id selector, and once their share passes ``compact_at`` (default
20%) the index is rebuilt without them. Filters become a faiss ``IDSelectorBatch``; small allowed
sets, and rows the graph returns short, are answered exactly. The full-precision vectors are kept
in ``vectors.npy``; loaded with ``mmap=True`` they stay on disk and only the candidates that
``rerank`` re-scores exactly are read, so resident memory stays near the INT8 size.

``engine="hnswlib"`` (kind ``hnsw`` only) runs the graph on hnswlib instead (``HnswlibGraph``): the
same ids, deletes (hnswlib's ``mark_deleted``), filters (its filter callable), growth
(``resize_index``), save/load and thread budget; the FP32 vectors then live in the graph only.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cpuai.errors import ConfigError, DataError, InvalidInput
from cpuai.vectors import exact
from cpuai.vectors.hnswlib_graph import HnswlibGraph, ShortResult, require_hnswlib
from cpuai.vectors.ids import IdMap
from cpuai.vectors.kinds import (
    HNSW_KINDS,
    IndexParams,
    coded,
    faiss_query,
    fp32_scores,
    needs_training,
    new_faiss_index,
    search_params,
    symmetric_scale,
)

log = logging.getLogger(__name__)

FORMAT = "cpuai-vector-index"
FORMAT_VERSION = 1
SETTINGS_FILE = "index.json"
# Filters allowing at most this many live vectors are answered by an exact scan (fast, and exact).
EXACT_FILTER_MAX = 4096
# Vectors sampled to train an SQ8 quantizer or IVF lists (per list for IVF).
_TRAIN_SAMPLE = 200_000
_IVF_TRAIN_PER_LIST = 64
# A quantizer trained on fewer than RETRAIN_BELOW vectors is retrained (the index rebuilt) each time
# the index grows to RETRAIN_GROWTH times that many: an index started from a handful of adds would
# otherwise keep SQ8 ranges fitted to those few vectors (recall@10 0.008 after a first add of one
# vector, measured). Rebuilds stop once RETRAIN_BELOW vectors trained it, so they cost at most a
# ~40k-vector rebuild, a few seconds, and about a third extra build work in total.
RETRAIN_BELOW = 10_000
RETRAIN_GROWTH = 4
# Candidate vectors gathered per re-rank step: 1024 x 384 FP32 = 1.5 MB, inside a core's L2.
_RERANK_ROWS = 1024


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k <= 0:
        raise InvalidInput(
            f"k must be a positive integer, got {k!r}", fix="ask for k >= 1 results, e.g. k=10"
        )
    return int(k)


def as_matrix(vectors: Any, dim: int | None, what: str = "vectors") -> np.ndarray:
    """``vectors`` as C-contiguous float32 (n, d); one vector may be 1-D. Checks dim and finiteness."""
    try:
        x = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"{what} must be numbers, got {type(vectors).__name__}: {exc}",
            fix="pass a float array of shape (n, dim)",
        ) from None
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise InvalidInput(
            f"{what} must be a 2-D array (n, dim), got shape {x.shape}",
            fix="stack the vectors into one (n, dim) array",
        )
    if dim is not None and x.shape[1] != dim:
        raise InvalidInput(
            f"{what} have dimension {x.shape[1]} but the index has dimension {dim}",
            fix=f"pass {dim}-dimensional vectors (embed with the model the index was built from)",
        )
    if x.shape[1] == 0:
        raise InvalidInput(f"{what} have dimension 0", fix="pass vectors with at least one component")
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise InvalidInput(
            f"{what} contain NaN or infinite values (rows {bad[:5].tolist()}"
            f"{', ...' if len(bad) > 5 else ''})",
            fix="drop or repair those rows first",
        )
    return np.ascontiguousarray(x)


class VectorIndex:
    """An ANN index over the user's ids: ``fit``/``add``, ``search``, ``delete``, ``save``/``load``.

    ``kind`` is flat, hnsw, hnsw-sq8 or ivf-sq8; ``metric`` ip, cosine or l2. ``dim`` is taken from
    the first vectors when not given. ``threads`` defaults to ``cpuai.hardware.core_budget()``.
    ``engine`` is faiss, or hnswlib for the hnsw kind (a DependencyError if hnswlib is missing).
    ``sq`` is the SQ8 range: per-dim, uniform or symmetric (see ``cpuai.vectors.kinds``); ``rerank`` re-scores
    up to ``rerank``·k candidates (never more than ef_search) exactly from the FP32 vectors.
    """

    def __init__(
        self,
        kind: str = "hnsw-sq8",
        *,
        metric: str = "cosine",
        dim: int | None = None,
        M: int = 32,
        ef_construction: int = 200,
        ef_search: int = 64,
        nlist: int | None = None,
        nprobe: int = 16,
        rerank: int = 0,
        sq: str = "per-dim",
        compact_at: float = 0.2,
        threads: int | None = None,
        engine: str = "faiss",
    ) -> None:
        self._settings: dict[str, Any] = dict(
            kind=kind,
            metric=metric,
            M=M,
            ef_construction=ef_construction,
            ef_search=ef_search,
            nprobe=nprobe,
            rerank=rerank,
            sq=sq,
            compact_at=compact_at,
            engine=engine,
        )
        self._nlist = nlist
        # Validate now, so a bad knob fails before any data is read.
        IndexParams(dim=dim or 1, nlist=nlist or max(nprobe, 1), **self._settings)
        if engine == "hnswlib":
            require_hnswlib()
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ConfigError(
                f"threads must be a positive integer, got {threads!r}",
                fix="omit it to use cpuai.hardware.core_budget()",
            )
        self._dim = dim
        self.threads = threads
        self.params_: IndexParams | None = None
        self.index_: Any = None
        self.ids_ = IdMap()
        self.texts_: list[str | None] | None = None
        self.model: str | None = None
        self._raw_base: np.ndarray | None = None
        self._raw_new: list[np.ndarray] = []
        self._raw_new_cat: np.ndarray | None = None
        self._alive_bits: np.ndarray | None = None
        self._mapped = False
        self._source: Path | None = None
        self._trained_on = 0  # vectors the SQ8 / IVF quantizer was trained on (see RETRAIN_BELOW)
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ properties
    @property
    def kind(self) -> str:
        return self._settings["kind"]

    @property
    def metric(self) -> str:
        return self._settings["metric"]

    @property
    def engine(self) -> str:
        return self._settings["engine"]

    @property
    def _on_hnswlib(self) -> bool:
        return self._settings["engine"] == "hnswlib"

    @property
    def dim(self) -> int | None:
        return self._dim

    @property
    def params(self) -> IndexParams:
        """The index's settings (known fully once vectors were added)."""
        if self.params_ is not None:
            return self.params_
        return IndexParams(
            dim=self._dim or 1, nlist=self._nlist or self._settings["nprobe"], **self._settings
        )

    def __len__(self) -> int:
        """Live (not deleted) vectors."""
        return len(self.ids_)

    def __contains__(self, user_id: Any) -> bool:
        return user_id in self.ids_

    @property
    def n_deleted(self) -> int:
        """Tombstoned vectors still inside the faiss index (until the next compaction)."""
        return self.ids_.n_deleted

    # ------------------------------------------------------------------ building
    def fit(self, vectors: Any, ids: Any = None, texts: Sequence[str] | None = None) -> VectorIndex:
        """Start over: train on ``vectors`` where the kind needs it, add them, and return self."""
        with self._lock:
            self.params_, self.index_, self.ids_ = None, None, IdMap()
            self.texts_, self._raw_base, self._raw_new, self._raw_new_cat = None, None, [], None
            self._alive_bits = None
            self.add(vectors, ids, texts)
        return self

    def add(self, vectors: Any, ids: Any = None, texts: Sequence[str] | None = None) -> np.ndarray:
        """Add vectors under ``ids`` (default: the next integers) and return the ids added.

        The first call fixes the dimension and trains the quantizer; later calls grow the index.
        """
        with self._lock:
            x = as_matrix(vectors, self._dim)
            if len(x) == 0:
                raise InvalidInput("no vectors to add (got 0 rows)", fix="pass at least one vector")
            new_ids = self.ids_.normalise(ids, len(x))
            if texts is not None and len(texts) != len(x):
                raise InvalidInput(
                    f"got {len(texts)} texts for {len(x)} vectors", fix="pass one text per vector"
                )
            if self.metric == "cosine":
                x = exact.normalise(x)
            if self.index_ is None:
                self._create(x)
            elif self._mapped:
                self._materialise()
            if self._on_hnswlib:
                self.index_.add(x, self._threads())
            else:
                self._set_threads()
                self.index_.add(coded(self.params, x))
                self._raw_new.append(x)  # hnswlib keeps the FP32 vectors in its graph already
            self.ids_.append(new_ids)
            self._raw_new_cat = None
            self._alive_bits = None
            if texts is not None or self.texts_ is not None:
                if self.texts_ is None:
                    self.texts_ = [None] * (self.ids_.size - len(x))
                self.texts_.extend(list(texts) if texts is not None else [None] * len(x))
            if self._quantizer_outgrown():
                self._rebuild("retrained its quantizer")
            return new_ids

    def _quantizer_outgrown(self) -> bool:
        """True when an SQ8/IVF quantizer was fitted to far fewer vectors than the index now holds."""
        return (
            needs_training(self.kind)
            and not self._on_hnswlib
            and self._trained_on < RETRAIN_BELOW
            and len(self) >= RETRAIN_GROWTH * max(1, self._trained_on)
        )

    def _create(self, x: np.ndarray) -> None:
        """Fix the dimension, resolve nlist, build and train the faiss index on the first vectors."""
        self._dim = x.shape[1]
        nlist = self._nlist
        if self.kind == "ivf-sq8" and nlist is None:
            nlist = int(min(max(1, 4 * np.sqrt(len(x))), max(1, len(x) // 39)))
        nlist = nlist or max(1, self._settings["nprobe"])
        settings = dict(self._settings)
        if self.kind == "ivf-sq8" and settings["nprobe"] > nlist:
            settings["nprobe"] = nlist
        if settings["sq"] == "symmetric":
            settings["sq_scale"] = symmetric_scale(x)
        self.params_ = IndexParams(dim=self._dim, nlist=nlist, **settings)
        self._settings = {k: v for k, v in self.params_.to_dict().items() if k in self._settings}
        self.index_ = self._trained_index(x)

    def _trained_index(self, x: np.ndarray) -> Any:
        params = self.params_
        assert params is not None
        if params.engine == "hnswlib":
            return HnswlibGraph(
                params.dim,
                params.metric,
                M=params.M,
                ef_construction=params.ef_construction,
                capacity=len(x),
            )
        index = new_faiss_index(params)
        if needs_training(params.kind):
            if params.kind == "ivf-sq8" and len(x) < params.nlist:
                raise InvalidInput(
                    f"ivf-sq8 with nlist={params.nlist} needs at least {params.nlist} vectors "
                    f"to train, got {len(x)}",
                    fix="add more vectors first, or pass a smaller nlist",
                )
            cap = (
                _TRAIN_SAMPLE
                if params.kind == "hnsw-sq8"
                else min(_TRAIN_SAMPLE, params.nlist * _IVF_TRAIN_PER_LIST)
            )
            sample = x
            if len(x) > cap:
                sample = x[np.sort(np.random.default_rng(0).choice(len(x), cap, replace=False))]
            self._set_threads()
            index.train(coded(params, sample))
            self._trained_on = len(sample)
        return index

    def _materialise(self) -> None:
        """Read a memory-mapped faiss index into memory before it is modified (the file is unchanged)."""
        import faiss

        assert self._source is not None
        self.index_ = faiss.read_index(str(self._source / "index.faiss"))
        self._mapped = False

    # ------------------------------------------------------------------ raw vectors
    def _raw_positions(self, positions: np.ndarray) -> np.ndarray:
        """Full-precision (normalised for cosine) vectors at ``positions`` (any shape) -> (..., d)."""
        if self._on_hnswlib:
            return self._graph_vectors(positions)
        base_n = 0 if self._raw_base is None else len(self._raw_base)
        if self._raw_new and self._raw_new_cat is None:
            self._raw_new_cat = np.concatenate(self._raw_new) if len(self._raw_new) > 1 else self._raw_new[0]
            self._raw_new = [self._raw_new_cat]
        flat = positions.reshape(-1)
        out = np.empty((len(flat), self._dim or 0), dtype=np.float32)
        old = flat < base_n
        if old.any():
            assert self._raw_base is not None
            idx = flat[old]
            order = np.argsort(idx, kind="stable")  # sorted reads are kinder to a memory map
            rows = np.empty((len(idx), out.shape[1]), dtype=np.float32)
            rows[order] = self._raw_base[idx[order]]
            out[old] = rows
        if (~old).any():
            assert self._raw_new_cat is not None
            out[~old] = self._raw_new_cat[flat[~old] - base_n]
        return out.reshape(*positions.shape, out.shape[1])

    def _graph_vectors(self, positions: np.ndarray) -> np.ndarray:
        """Vectors read back from the hnswlib graph; deleted or empty positions give zero rows."""
        flat = positions.reshape(-1)
        out = np.zeros((len(flat), self._dim or 0), dtype=np.float32)
        live = flat >= 0
        live[live] = ~self.ids_.deleted[flat[live]]
        if live.any():
            uniq, inverse = np.unique(flat[live], return_inverse=True)
            out[live] = self.index_.get(uniq)[inverse]
        return out.reshape(*positions.shape, out.shape[1])

    def vectors(self, ids: Iterable[Any]) -> np.ndarray:
        """The stored full-precision vectors of ``ids`` (normalised when the metric is cosine)."""
        with self._lock:
            return self._raw_positions(self.ids_.positions(list(ids), strict=True))

    # ------------------------------------------------------------------ search
    def search(
        self, queries: Any, k: int = 10, filter: Iterable[Any] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` ids and scores per query, best first: (nq, k) arrays.

        Scores are similarities for ip/cosine and squared distances for l2. ``filter`` limits the
        hits to those ids. Missing hits (fewer than k allowed) are id -1 (None for string ids), score NaN.
        """
        k = _check_k(k)
        with self._lock:
            if len(self.ids_) == 0:
                raise InvalidInput(
                    "the index is empty: nothing to search",
                    fix="add vectors first (cpuai vectors build, or index.add)",
                )
            q = as_matrix(queries, self._dim, "queries")
            if self.metric == "cosine":
                q = exact.normalise(q)
            if filter is not None:
                allowed = np.unique(self.ids_.positions(filter, strict=False))
                if len(allowed) <= EXACT_FILTER_MAX or self.kind == "flat":
                    pos, scores = self._exact_among(q, allowed, k)
                    return self._answer(pos, scores, k)
                selector: Any
                if self._on_hnswlib:
                    selector = np.zeros(self.ids_.size, dtype=bool)
                    selector[allowed] = True
                else:
                    import faiss

                    selector = faiss.IDSelectorBatch(allowed)
                try:
                    pos, scores = self._ann(q, k, selector, len(allowed))
                except ShortResult:  # hnswlib returns all k or fails the batch: answer it exactly
                    pos, scores = self._exact_among(q, allowed, k)
                    return self._answer(pos, scores, k)
                short = (pos[:, : min(k, len(allowed))] < 0).any(axis=1)
                if short.any():  # the graph ran out of allowed neighbours: answer those rows exactly
                    p2, s2 = self._exact_among(q[short], allowed, k)
                    pos[short], scores[short] = p2, s2
                return self._answer(pos, scores, k)
            if self._on_hnswlib:  # deleted positions are marked inside hnswlib itself
                try:
                    pos, scores = self._ann(q, k, None, len(self.ids_))
                except ShortResult:
                    pos, scores = self._exact_among(q, self.ids_.live_positions(), k)
            else:
                pos, scores = self._ann(q, k, self._alive_selector(), len(self.ids_))
            return self._answer(pos, scores, k)

    def _ann(self, q: np.ndarray, k: int, selector: Any, available: int) -> tuple[np.ndarray, np.ndarray]:
        """Engine search (with optional selector), then exact re-rank of ``rerank``·k candidates.

        ``selector`` is a faiss IDSelector, or for hnswlib a bool mask of allowed positions.
        """
        params = self.params
        want = min(k, available)
        # Re-ranking never widens the beam: at most ef_search candidates, which the graph walk holds anyway.
        fetch = want
        if params.rerank > 1:
            fetch = min(want * params.rerank, max(params.ef_search, want), available)
        if self._on_hnswlib:
            scores, pos = self.index_.search(q, fetch, params.ef_search, self._threads(), selector)
        else:
            self._set_threads()
            search = search_params(params, fetch, selector)
            scores, pos = self.index_.search(faiss_query(params, q), fetch, params=search)
            scores = fp32_scores(params, scores)
        pos = pos.astype(np.int64)
        if params.rerank > 0:
            pos, scores = self._rerank(q, pos, want)
        else:
            scores = np.where(pos < 0, np.nan, scores).astype(np.float32)
        return self._pad(pos[:, :want], scores[:, :want], k)

    def _rerank(self, q: np.ndarray, pos: np.ndarray, want: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact scores of the candidates from the FP32 vectors, in query chunks to bound working memory."""
        valid = pos >= 0
        scores = np.empty(pos.shape, dtype=np.float32)
        chunk = max(1, _RERANK_ROWS // max(1, pos.shape[1]))
        for start in range(0, len(q), chunk):
            rows = slice(start, start + chunk)
            cand = self._raw_positions(np.where(valid[rows], pos[rows], 0))
            scores[rows] = exact.pair_scores(q[rows], cand, self.metric)
        scores[~valid] = np.nan
        order = exact.order(scores, self.metric)[:, :want]
        return np.take_along_axis(pos, order, 1), np.take_along_axis(scores, order, 1)

    def _exact_among(self, q: np.ndarray, allowed: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k over the live ``allowed`` positions only."""
        if len(allowed) == 0:
            return self._pad(np.empty((len(q), 0), np.int64), np.empty((len(q), 0), np.float32), k)
        local, scores = exact.knn(
            q, self._raw_positions(allowed), k, "ip" if self.metric == "cosine" else self.metric
        )
        return self._pad(allowed[local], scores.astype(np.float32), k)

    @staticmethod
    def _pad(pos: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if pos.shape[1] >= k:
            return pos[:, :k], scores[:, :k]
        extra = k - pos.shape[1]
        return (
            np.pad(pos, ((0, 0), (0, extra)), constant_values=-1),
            np.pad(scores.astype(np.float32), ((0, 0), (0, extra)), constant_values=np.nan),
        )

    def _answer(self, pos: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.ids_.n_deleted:  # belt and braces: a tombstoned position never leaves the index
            dead = (pos >= 0) & self.ids_.deleted[np.clip(pos, 0, None)]
            if dead.any():
                pos, scores = pos.copy(), scores.copy()
                pos[dead], scores[dead] = -1, np.nan
        return self.ids_.labels_of(pos), scores

    def _alive_selector(self) -> Any:
        """A faiss bitmap selector of live positions, or None when nothing is deleted."""
        if not self.ids_.n_deleted:
            return None
        import faiss

        if self._alive_bits is None:
            self._alive_bits = np.packbits(~self.ids_.deleted, bitorder="little")
        return faiss.IDSelectorBitmap(self.ids_.size, faiss.swig_ptr(self._alive_bits))

    def texts(self, ids: Iterable[Any]) -> list[str | None]:
        """The texts stored with ``ids`` (None where an id has none or is unknown)."""
        with self._lock:
            if self.texts_ is None:
                return [None for _ in ids]
            out: list[str | None] = []
            for user_id in ids:
                pos = self.ids_.positions([user_id], strict=False)
                out.append(self.texts_[int(pos[0])] if len(pos) else None)
            return out

    def set_search(
        self, *, ef_search: int | None = None, nprobe: int | None = None, rerank: int | None = None
    ) -> None:
        """Change search-time knobs (validated); they are saved with the index."""
        with self._lock:
            changes = {
                k: v
                for k, v in dict(ef_search=ef_search, nprobe=nprobe, rerank=rerank).items()
                if v is not None
            }
            new = IndexParams(**{**self.params.to_dict(), **changes})
            self._settings.update(changes)
            if self.params_ is not None:
                self.params_ = new
                if self.kind in HNSW_KINDS and self.index_ is not None and not self._on_hnswlib:
                    self.index_.hnsw.efSearch = new.ef_search
                if self.kind == "ivf-sq8" and self.index_ is not None:
                    self.index_.nprobe = new.nprobe

    # ------------------------------------------------------------------ deletes
    def delete(self, ids: Iterable[Any]) -> int:
        """Delete ``ids`` (each must be present); return how many. A deleted id is never returned again.

        Past ``compact_at`` deleted share the index is rebuilt without them.
        """
        with self._lock:
            positions = self.ids_.delete(list(ids))
            if self._on_hnswlib:
                self.index_.mark_deleted(positions)
            self._alive_bits = None
            if self.ids_.size and self.ids_.n_deleted / self.ids_.size > self.params.compact_at:
                self.compact()
            return len(positions)

    def compact(self) -> None:
        """Rebuild the faiss index from the live vectors only (retraining SQ8/IVF); ids are kept."""
        with self._lock:
            if self.index_ is None or not self.ids_.n_deleted:
                return
            self._rebuild("compacted")

    def _rebuild(self, what: str) -> None:
        """Rebuild the index from the live vectors, retraining SQ8/IVF on them; ids are kept."""
        with self._lock:
            if self._mapped:
                self._materialise()
            removed = self.ids_.n_deleted
            keep = self.ids_.live_positions()
            x = self._raw_positions(keep)
            self.ids_.compact()
            if self.texts_ is not None:
                self.texts_ = [self.texts_[i] for i in keep.tolist()]
            self._raw_base, self._raw_new, self._raw_new_cat = x, [], None
            self._alive_bits = None
            self._mapped = False
            if self._on_hnswlib:
                self._raw_base = None
                self.index_ = self._trained_index(x)
                if len(x):
                    self.index_.add(x, self._threads())
                log.info("%s vector index: %d deleted vectors removed, %d kept", what, removed, len(x))
                return
            if len(x) and not (self.kind == "ivf-sq8" and len(x) < self.params.nlist):
                if self.params.sq_scale:  # symmetric: refit the scale to the vectors now held
                    self.params.sq_scale = symmetric_scale(x)
                self.index_ = self._trained_index(x)
            else:  # too few left to retrain: keep the trained quantizer, drop the vectors
                import faiss

                self.index_ = faiss.clone_index(self.index_)
                self.index_.reset()
            self._set_threads()
            if len(x):
                self.index_.add(coded(self.params, x))
            log.info("%s vector index: %d deleted vectors removed, %d kept", what, removed, len(x))

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write the index to directory ``path`` atomically and return it."""
        import faiss

        from cpuai.package import atomic_dir

        with self._lock:
            if self.index_ is None or self.params_ is None:
                raise InvalidInput("the index is empty: nothing to save", fix="add vectors before saving")
            dest = Path(path)
            with atomic_dir(dest) as tmp:
                if self._on_hnswlib:  # the graph file holds the FP32 vectors too
                    self.index_.save(tmp)
                else:
                    faiss.write_index(self.index_, str(tmp / "index.faiss"))
                    np.save(tmp / "vectors.npy", self._raw_positions(np.arange(self.ids_.size)))
                if self.ids_.mode == "str":
                    (tmp / "ids.json").write_text(json.dumps(self.ids_.labels.tolist()))
                else:
                    np.save(tmp / "ids.npy", self.ids_.labels)
                np.save(tmp / "deleted.npy", self.ids_.deleted)
                if self.texts_ is not None:
                    (tmp / "texts.json").write_text(json.dumps(self.texts_, ensure_ascii=False))
                settings = {
                    "format": FORMAT,
                    "format_version": FORMAT_VERSION,
                    "params": self.params_.to_dict(),
                    "count": len(self),
                    "deleted": self.n_deleted,
                    "id_mode": self.ids_.mode,
                    "model": self.model,
                    "threads": self.threads,
                    "trained_on": self._trained_on,
                }
                (tmp / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n")
            return dest

    @classmethod
    def load(cls, path: str | Path, *, mmap: bool = True, threads: int | None = None) -> VectorIndex:
        """Read an index saved by ``save``; ``mmap`` keeps the faiss codes and FP32 vectors on disk.

        Changes logged since the save (``changes.log``, written by ``cpuai serve``) are replayed.
        """
        from cpuai.vectors import changelog

        root = Path(path)
        index = cls._load_files(root, mmap=mmap, threads=threads)
        changelog.replay(index, root)
        return index

    @classmethod
    def _load_files(cls, root: Path, *, mmap: bool, threads: int | None) -> VectorIndex:
        import faiss

        settings_file = root / SETTINGS_FILE
        if not settings_file.is_file():
            raise DataError(
                f"{root} is not a cpuai vector index (no {SETTINGS_FILE})",
                fix="pass a directory written by `cpuai vectors build` or VectorIndex.save",
            )
        try:
            settings = json.loads(settings_file.read_text())
        except ValueError as exc:
            raise DataError(f"{settings_file} is not valid JSON: {exc}", fix="rebuild the index") from None
        if settings.get("format") != FORMAT:
            raise DataError(
                f"{settings_file} has format {settings.get('format')!r}, expected {FORMAT!r}",
                fix="pass a directory written by `cpuai vectors build`",
            )
        params = IndexParams.from_dict(settings["params"])
        p = params.to_dict()
        p.pop("sq_scale")  # fixed by the vectors, not a knob: restored with params_ below
        index = cls(
            p.pop("kind"),
            dim=p.pop("dim"),
            nlist=p.pop("nlist"),
            threads=threads if threads is not None else settings.get("threads"),
            **p,
        )
        index.params_ = params
        index.model = settings.get("model")
        # indexes saved before this field was written: treat their quantizer as trained on them all
        index._trained_on = int(settings.get("trained_on", settings.get("count", 0)))
        index._source = root
        if params.engine == "hnswlib":
            return index._load_hnswlib(root, settings)
        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
        try:
            index.index_ = faiss.read_index(str(root / "index.faiss"), flags)
            index._mapped = bool(mmap)
        except RuntimeError as exc:
            if not mmap:
                raise DataError(
                    f"cannot read {root / 'index.faiss'}: {exc}", fix="rebuild the index"
                ) from None
            log.info("faiss cannot memory-map this index (%s); reading it into memory", exc)
            index.index_ = faiss.read_index(str(root / "index.faiss"))
        index._load_ids_and_texts(root, settings)
        index._raw_base = np.load(root / "vectors.npy", mmap_mode="r" if mmap else None)
        if index.index_.ntotal != index.ids_.size or len(index._raw_base) != index.ids_.size:
            raise DataError(
                f"{root} is inconsistent: {index.index_.ntotal} vectors in index.faiss, "
                f"{index.ids_.size} ids, {len(index._raw_base)} stored vectors",
                fix="rebuild the index",
            )
        return index

    def _load_ids_and_texts(self, root: Path, settings: dict[str, Any]) -> None:
        mode = settings.get("id_mode")
        labels = (
            np.array(json.loads((root / "ids.json").read_text()), dtype=object)
            if mode == "str"
            else np.load(root / "ids.npy")
        )
        self.ids_ = IdMap.from_state(mode, labels, np.load(root / "deleted.npy"))
        if (root / "texts.json").is_file():
            self.texts_ = json.loads((root / "texts.json").read_text())

    def _load_hnswlib(self, root: Path, settings: dict[str, Any]) -> VectorIndex:
        """The hnswlib half of ``load``: the graph is read into memory (hnswlib cannot memory-map)."""
        params = self.params
        if not (root / "index.hnswlib").is_file():
            raise DataError(f"{root} has no index.hnswlib", fix="rebuild the index")
        try:
            self.index_ = HnswlibGraph.load(
                root, params.dim, params.metric, M=params.M, ef_construction=params.ef_construction
            )
        except RuntimeError as exc:
            raise DataError(f"cannot read {root / 'index.hnswlib'}: {exc}", fix="rebuild the index") from None
        self._load_ids_and_texts(root, settings)
        if self.index_.ntotal != self.ids_.size:
            raise DataError(
                f"{root} is inconsistent: {self.index_.ntotal} vectors in index.hnswlib, "
                f"{self.ids_.size} ids",
                fix="rebuild the index",
            )
        return self

    # ------------------------------------------------------------------ misc
    def _threads(self) -> int:
        from cpuai.hardware import core_budget

        return self.threads or core_budget()

    def _set_threads(self) -> None:
        import faiss

        faiss.omp_set_num_threads(self._threads())

    def stats(self) -> dict[str, Any]:
        """Counts and settings for reports and the CLI."""
        p = self.params
        return {
            "kind": p.kind,
            "engine": p.engine,
            "metric": p.metric,
            "dim": self._dim,
            "count": len(self),
            "deleted": self.n_deleted,
            "M": p.M,
            "ef_search": p.ef_search,
            "nlist": p.nlist,
            "nprobe": p.nprobe,
            "rerank": p.rerank,
            "compact_at": p.compact_at,
            "id_mode": self.ids_.mode,
            "model": self.model,
            "memory_mapped": self._mapped,
        }

    def __repr__(self) -> str:
        return f"VectorIndex(kind={self.kind!r}, metric={self.metric!r}, dim={self._dim}, count={len(self)})"
