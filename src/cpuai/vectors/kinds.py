"""Index kinds and their parameters: what each kind is on faiss, and the checks at the edge.

    flat      exact search over FP32 vectors (IndexFlat); the ground truth, O(n) per query
    hnsw      HNSW graph over FP32 vectors (IndexHNSWFlat); 4·d bytes + graph per vector
    hnsw-sq8  HNSW graph over INT8 scalar-quantized vectors (IndexHNSWSQ); d bytes + graph
    ivf-sq8   inverted lists over INT8 vectors (IndexIVFScalarQuantizer); d bytes + 8, needs training

SQ8 ranges (``sq``): ``per-dim`` (QT_8bit) gives every dimension its own min/max, the finer steps;
``uniform`` (QT_8bit_uniform) shares one range, about twice the squared error but a cheaper decode;
``symmetric`` (QT_8bit_direct_signed) stores round(x · scale) as signed INT8, one scale fitted to
the vectors that trained the index (``sq_scale``, see ``coded``), so decoding is a bare int8 -> float
convert: the fastest, and the better choice when ``rerank`` re-scores exactly anyway
(docs/vectors.md has the figures).

Engines: every kind runs on ``faiss``; ``hnsw`` may instead run on ``hnswlib`` (FP32 only, since
hnswlib has no scalar quantizer; see ``cpuai.vectors.hnswlib_graph``).

Metrics: ``ip`` (inner product), ``cosine`` (inner product over L2-normalised vectors) and ``l2``
(squared Euclidean distance; smaller is closer). ``docs/vectors.md`` gives the cost of each knob in
numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from cpuai.errors import ConfigError

KINDS = ("flat", "hnsw", "hnsw-sq8", "ivf-sq8")
METRICS = ("ip", "cosine", "l2")
HNSW_KINDS = ("hnsw", "hnsw-sq8")
SQ8_KINDS = ("hnsw-sq8", "ivf-sq8")
ENGINES = ("faiss", "hnswlib")
SQ_RANGES = ("per-dim", "uniform", "symmetric")
SQ_TYPES = {"per-dim": "QT_8bit", "uniform": "QT_8bit_uniform", "symmetric": "QT_8bit_direct_signed"}


def _int_in(name: str, value: Any, low: int, high: int, hint: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be an integer in [{low}, {high}], got {value!r}", fix=hint)
    return value


@dataclass(kw_only=True)
class IndexParams:
    """Validated settings of one index; saved with it and restored on load.

    >>> IndexParams(kind="hnsw-sq8", dim=384, metric="cosine", M=32, ef_search=64)
    """

    kind: str = "hnsw-sq8"
    dim: int = 0
    metric: str = "cosine"
    M: int = 32
    ef_construction: int = 200
    ef_search: int = 64
    nlist: int = 1024
    nprobe: int = 16
    rerank: int = 0
    sq: str = "per-dim"
    sq_scale: float = 0.0
    compact_at: float = 0.2
    engine: str = "faiss"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"unknown index kind {self.kind!r}", fix=f"use one of {', '.join(KINDS)}")
        if self.engine not in ENGINES:
            raise ConfigError(f"unknown engine {self.engine!r}", fix=f"use one of {', '.join(ENGINES)}")
        if self.engine == "hnswlib" and self.kind != "hnsw":
            raise ConfigError(
                f"the hnswlib engine has no {self.kind} index (it stores FP32 vectors in an HNSW graph only)",
                fix="use kind='hnsw' with engine='hnswlib', or engine='faiss' for flat, hnsw-sq8 and ivf-sq8",
            )
        if self.sq not in SQ_RANGES:
            raise ConfigError(
                f"unknown SQ8 range {self.sq!r}",
                fix="use sq='per-dim' (finer steps), or 'uniform'/'symmetric' (faster; pair with rerank)",
            )
        if self.sq != "per-dim" and self.kind not in SQ8_KINDS:
            raise ConfigError(
                f"sq={self.sq!r} applies to the INT8 kinds only, and {self.kind} stores FP32 vectors",
                fix="use kind='hnsw-sq8' or 'ivf-sq8' with sq, or leave sq out",
            )
        if isinstance(self.sq_scale, bool) or not isinstance(self.sq_scale, int | float) or self.sq_scale < 0:
            raise ConfigError(
                f"sq_scale must be a non-negative number, got {self.sq_scale!r}",
                fix="leave sq_scale out: cpuai sets it from the first vectors for sq='symmetric'",
            )
        self.sq_scale = float(self.sq_scale)
        if self.metric not in METRICS:
            raise ConfigError(f"unknown metric {self.metric!r}", fix=f"use one of {', '.join(METRICS)}")
        _int_in("dim", self.dim, 1, 65536, "pass the vector length, e.g. dim=384 for MiniLM")
        _int_in("M", self.M, 2, 256, "M=16..48 suits most data; memory grows by 8·M bytes per vector")
        _int_in(
            "ef_construction",
            self.ef_construction,
            8,
            4096,
            "ef_construction=100..400; build time grows about linearly with it",
        )
        _int_in("ef_search", self.ef_search, 1, 32768, "ef_search must be at least k; 32..512 is typical")
        _int_in("nlist", self.nlist, 1, 1 << 20, "nlist ~ 4·sqrt(n), e.g. 1024 for 100k vectors")
        _int_in("nprobe", self.nprobe, 1, 1 << 20, "nprobe=8..64; QPS falls about linearly with it")
        if self.nprobe > self.nlist:
            raise ConfigError(
                f"nprobe {self.nprobe} is larger than nlist {self.nlist}", fix="choose nprobe <= nlist"
            )
        _int_in(
            "rerank",
            self.rerank,
            0,
            64,
            "rerank=0 turns exact re-ranking off; 2..8 re-ranks that many candidates per hit",
        )
        if (
            isinstance(self.compact_at, bool)
            or not isinstance(self.compact_at, int | float)
            or not 0.0 < float(self.compact_at) <= 1.0
        ):
            raise ConfigError(
                f"compact_at must be a share in (0, 1], got {self.compact_at!r}",
                fix="compact_at=0.2 rebuilds once 20% of the vectors are deleted",
            )
        self.compact_at = float(self.compact_at)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for the saved settings file."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexParams:
        """Settings from a saved file; unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown index settings {unknown}", fix=f"use only {sorted(known)}")
        return cls(**data)


def faiss_metric(metric: str) -> int:
    """The faiss metric constant for a cpuai metric name (cosine is inner product on unit vectors)."""
    import faiss

    return faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT


def needs_training(kind: str) -> bool:
    """True for kinds whose quantizer or coarse lists must be trained before vectors are added."""
    return kind in SQ8_KINDS


def new_faiss_index(params: IndexParams) -> Any:
    """An empty faiss index for ``params`` (untrained where the kind needs training)."""
    import faiss

    metric = faiss_metric(params.metric)
    d = params.dim
    qtype = getattr(faiss.ScalarQuantizer, SQ_TYPES[params.sq])
    index: Any
    if params.kind == "flat":
        return faiss.IndexFlat(d, metric)
    if params.kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, params.M, metric)
    elif params.kind == "hnsw-sq8":
        index = faiss.IndexHNSWSQ(d, qtype, params.M, metric)  # type: ignore[arg-type]
    else:  # ivf-sq8
        coarse = faiss.IndexFlat(d, metric)
        index = faiss.IndexIVFScalarQuantizer(coarse, d, params.nlist, qtype, metric)
        if params.sq == "symmetric":
            # direct codes store the INT8-rounded vectors exactly; residuals from a list's centroid
            # are fractions that the direct cast would truncate (scores up to 7 % off on AVX2)
            index.by_residual = False
        index.nprobe = params.nprobe
        return index
    index.hnsw.efConstruction = params.ef_construction
    index.hnsw.efSearch = params.ef_search
    return index


def search_params(params: IndexParams, k: int, selector: Any = None) -> Any:
    """faiss per-call search parameters: ef_search / nprobe for this call, and an id selector."""
    import faiss as faiss_module

    faiss: Any = faiss_module  # the wheel's stubs lack the keyword constructors

    if params.kind in HNSW_KINDS:
        return faiss.SearchParametersHNSW(efSearch=max(params.ef_search, k), sel=selector)
    if params.kind == "ivf-sq8":
        return faiss.SearchParametersIVF(nprobe=params.nprobe, sel=selector)
    return faiss.SearchParameters(sel=selector) if selector is not None else None


def symmetric_scale(x: np.ndarray) -> float:
    """For sq='symmetric': the factor that maps the largest |component| of ``x`` to 127."""
    peak = float(np.abs(x).max()) if len(x) else 0.0
    return 127.0 / peak if peak > 0 else 1.0


def coded(params: IndexParams, x: np.ndarray) -> np.ndarray:
    """Vectors as the faiss index stores them: scaled and rounded to INT8 steps for sq='symmetric'.

    Later vectors beyond the range the scale was fitted to saturate at +-127.
    """
    if not params.sq_scale:
        return x
    return np.clip(np.rint(x * params.sq_scale), -127.0, 127.0).astype(np.float32)


def faiss_query(params: IndexParams, q: np.ndarray) -> np.ndarray:
    """Queries in the index's coded space (scaled, not rounded: an FP32 query against INT8 codes)."""
    return q * params.sq_scale if params.sq_scale else q


def fp32_scores(params: IndexParams, scores: np.ndarray) -> np.ndarray:
    """faiss's scores in FP32 units: the symmetric scale enters every similarity or distance squared."""
    return scores / params.sq_scale**2 if params.sq_scale else scores
