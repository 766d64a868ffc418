"""VectorIndex on real faiss and real hnswlib: recall, deletes, growth, filters, save/load (+mmap), bad input.

The vectors are synthetic (Gaussian clusters, ``cpuai.vectors.synthetic``) and labelled so. ``SPECS``
is every faiss kind plus ``hnsw@hnswlib``, the hnsw kind on the hnswlib engine.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from cpuai.errors import ConfigError, CpuaiError, DataError, DependencyError, InvalidInput
from cpuai.vectors import KINDS, VectorIndex
from cpuai.vectors.exact import knn
from cpuai.vectors.synthetic import base_and_queries

DIM = 32
SPECS = [*KINDS, "hnsw@hnswlib"]


@pytest.fixture(scope="module")
def synthetic() -> tuple[np.ndarray, np.ndarray]:
    """3000 base + 50 query vectors of dim 32 around 20 clusters (synthetic)."""
    return base_and_queries(3000, 50, DIM, clusters=20, seed=1)


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(
        np.mean([len(set(a.tolist()) & set(b.tolist())) / k for a, b in zip(found, truth, strict=True)])
    )


def small_index(kind: str, x: np.ndarray, **kw) -> VectorIndex:
    """A small index of ``kind`` ("kind" on faiss, or "kind@engine") over ``x``."""
    kind, _, engine = kind.partition("@")
    kw.setdefault("engine", engine or "faiss")
    kw.setdefault("M", 16)
    kw.setdefault("ef_construction", 64)
    if kind == "ivf-sq8":
        kw.setdefault("nlist", 16)
        kw.setdefault("nprobe", 8)
    return VectorIndex(kind, **kw).fit(x)


@pytest.mark.parametrize("kind", SPECS)
@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_every_kind_and_metric_finds_true_neighbours(kind, metric, synthetic):
    x, q = synthetic
    index = small_index(kind, x, metric=metric, ef_search=64)
    ids, scores = index.search(q, k=10)
    truth, true_scores = knn(q, x, 10, metric)
    assert ids.shape == scores.shape == (len(q), 10)
    assert recall_at(ids, truth) >= (0.999 if kind == "flat" else 0.85)
    # best first: similarities fall, l2 distances rise
    diffs = np.diff(scores, axis=1)
    assert (diffs >= -1e-4).all() if metric == "l2" else (diffs <= 1e-4).all()
    if kind == "flat":
        np.testing.assert_allclose(scores, true_scores, rtol=1e-4, atol=1e-4)


def test_rerank_restores_exact_scores_and_recall(synthetic):
    x, q = synthetic
    truth, true_scores = knn(q, x, 10, "cosine")
    plain = small_index("hnsw-sq8", x, ef_search=64)
    ranked = small_index("hnsw-sq8", x, ef_search=64, rerank=4)
    ids, scores = ranked.search(q, 10)
    assert recall_at(ids, truth) >= recall_at(plain.search(q, 10)[0], truth)
    assert recall_at(ids, truth) >= 0.97
    # re-ranked scores are the exact FP32 cosines of the ids returned
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    expect = np.einsum("qd,qkd->qk", qn, xn[ids])
    np.testing.assert_allclose(scores, expect, atol=1e-5)


@pytest.mark.parametrize("kind", ["hnsw-sq8", "ivf-sq8"])
@pytest.mark.parametrize(
    ("sq", "qtype"), [("uniform", "QT_8bit_uniform"), ("symmetric", "QT_8bit_direct_signed")]
)
@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_sq8_ranges_are_saved_and_score_like_fp32(kind, sq, qtype, metric, synthetic, tmp_path):
    """sq='uniform'/'symmetric' build faiss's one-range quantizers; scores stay on the FP32 scale."""
    import faiss

    x, q = synthetic
    truth, true_scores = knn(q, x, 10, metric)
    index = small_index(kind, x, sq=sq, metric=metric, ef_search=48)
    inner = index.index_.storage if kind == "hnsw-sq8" else index.index_
    assert faiss.downcast_index(inner).sq.qtype == getattr(faiss.ScalarQuantizer, qtype)
    if kind == "ivf-sq8":  # direct INT8 codes hold the rounded vectors themselves, not residuals
        assert faiss.downcast_index(inner).by_residual == (sq != "symmetric")
    assert (index.params.sq_scale > 0) == (sq == "symmetric")
    ids, scores = index.search(q, 10)
    assert recall_at(ids, truth) >= 0.85
    # approximate scores, but in the FP32 units (the symmetric scale is divided back out)
    np.testing.assert_allclose(scores[:, 0], true_scores[:, 0], rtol=0.05, atol=0.05)
    index.set_search(rerank=4)
    ranked, _ = index.search(q, 10)
    assert recall_at(ranked, truth) >= recall_at(ids, truth) - 0.01
    index.save(tmp_path / "u")
    loaded = VectorIndex.load(tmp_path / "u", mmap=True)
    assert loaded.params.sq == sq and loaded.params.sq_scale == index.params.sq_scale
    np.testing.assert_array_equal(loaded.search(q, 10)[0], ranked)
    loaded.add(x[:5] * 3.0)  # beyond the first vectors' range: saturates, still searchable
    assert len(loaded) == len(x) + 5


@pytest.mark.parametrize("sq", ["per-dim", "symmetric"])
def test_an_index_grown_from_one_vector_retrains_its_quantizer(sq, synthetic, tmp_path):
    """SQ8 ranges fitted to a first add of one vector would flatten every later vector; they are refitted."""
    x, q = synthetic
    truth, _ = knn(q, x, 10, "cosine")
    ids = np.arange(len(x)) * 7  # the user's own ids survive every rebuild
    grown = VectorIndex("hnsw-sq8", sq=sq, M=16, ef_construction=64, ef_search=64)
    grown.add(x[:1], ids=ids[:1], texts=["first"])
    grown.delete([ids[0]])
    for start in range(1, len(x), 250):
        grown.add(x[start : start + 250], ids=ids[start : start + 250])
    fitted = small_index("hnsw-sq8", x, sq=sq, ef_search=64)
    found, _ = grown.search(q, 10)
    assert ids[0] not in found
    assert recall_at(found // 7, truth) >= recall_at(fitted.search(q, 10)[0], truth) - 0.03
    assert len(grown) == len(x) - 1
    grown.save(tmp_path / "g")
    loaded = VectorIndex.load(tmp_path / "g", mmap=False)
    np.testing.assert_array_equal(loaded.search(q, 10)[0], found)
    trained_on = grown._trained_on
    assert loaded._trained_on == trained_on >= 1000  # saved with the index
    loaded.add(x[:10] + 0.01, ids=np.arange(10) + 10**6)  # far from 4x: no rebuild
    assert len(loaded) == len(x) + 9 and loaded._trained_on == trained_on


@pytest.mark.parametrize("kind", SPECS)
def test_deleted_id_never_comes_back(kind, synthetic):
    x, q = synthetic
    index = small_index(kind, x, compact_at=0.5)
    first, _ = index.search(q, 10)
    gone = np.unique(first[:, :3])  # the best hits of every query
    assert index.delete(gone.tolist()) == len(gone)
    assert index.n_deleted == len(gone)  # tombstones, below the compaction share
    after, _ = index.search(q, 10)
    assert not np.isin(after, gone).any()
    assert (after >= 0).all()
    assert len(index) == len(x) - len(gone)
    for g in gone[:5]:
        assert g not in index
    # the vector itself cannot be found either: searching with it returns other ids
    own, _ = index.search(x[gone[:5]], 1)
    assert not np.isin(own, gone).any()


@pytest.mark.parametrize("kind", ["hnsw-sq8", "hnsw@hnswlib"])
def test_compaction_rebuilds_past_share(kind, synthetic):
    x, q = synthetic
    index = small_index(kind, x, compact_at=0.1)
    gone = np.arange(0, 250)
    index.delete(gone.tolist())
    assert index.n_deleted == 250  # 8.3% < 10%: tombstones only
    assert index.index_.ntotal == len(x)
    index.delete(range(250, 400))  # 13.3% > 10%: rebuilt without them
    assert index.n_deleted == 0
    assert index.index_.ntotal == len(x) - 400 == len(index)
    ids, _ = index.search(q, 10)
    assert not np.isin(ids, np.arange(400)).any()
    assert recall_at(ids, knn(q, x[400:], 10, "cosine")[0] + 400) >= 0.85
    # the ids of the survivors are unchanged
    np.testing.assert_allclose(index.vectors([2999])[0], x[2999] / np.linalg.norm(x[2999]), rtol=1e-6)


@pytest.mark.parametrize(("kind", "engine"), [("hnsw-sq8", "faiss"), ("hnsw", "hnswlib")])
def test_capacity_grows_and_readd_after_delete(kind, engine, synthetic):
    x, q = synthetic
    index = VectorIndex(kind, engine=engine, M=16, ef_construction=64)
    for start in range(0, len(x), 500):  # many small adds; no capacity declared
        index.add(x[start : start + 500], ids=np.arange(start, start + 500) + 10_000)
    assert len(index) == len(x)
    ids, _ = index.search(x[:5], 1)
    assert ids[:, 0].tolist() == [10_000, 10_001, 10_002, 10_003, 10_004]
    index.delete([10_000])
    index.add(x[1:2] * 1.0, ids=[10_000])  # an id can come back once deleted
    ids, _ = index.search(x[1:2], 2)
    assert set(ids[0].tolist()) == {10_000, 10_001}


@pytest.mark.parametrize("engine", ["faiss", "hnswlib"])
def test_auto_ids_and_string_ids(engine, synthetic):
    x, _ = synthetic
    auto = VectorIndex("hnsw", M=16, engine=engine).fit(x[:100])
    assert auto.add(x[100:110]).tolist() == list(range(100, 110))
    names = [f"doc-{i}" for i in range(200)]
    index = VectorIndex("hnsw", M=16, engine=engine).fit(x[:200], ids=names)
    ids, _ = index.search(x[7], 3)
    assert ids[0, 0] == "doc-7"
    index.delete(["doc-7"])
    ids, _ = index.search(x[7], 3)
    assert "doc-7" not in ids[0].tolist()
    with pytest.raises(InvalidInput, match="string ids"):
        index.add(x[:1], ids=[5])


@pytest.mark.parametrize("kind", SPECS)
def test_filters_are_honoured(kind, synthetic):
    x, q = synthetic
    index = small_index(kind, x)
    even = np.arange(0, len(x), 2)
    ids, _ = index.search(q, 10, filter=even.tolist())  # 1500 allowed: exact path
    assert (ids % 2 == 0).all()
    assert recall_at(ids, even[knn(q, x[even], 10, "cosine")[0]]) >= 0.999
    few = [5, 17, 99]
    ids, scores = index.search(q[:3], 5, filter=few)
    assert set(ids[:, :3].ravel().tolist()) <= set(few)
    assert (ids[:, 3:] == -1).all() and np.isnan(scores[:, 3:]).all()
    index.delete([17])
    ids, _ = index.search(q[:3], 5, filter=few)
    assert 17 not in ids.ravel().tolist()


@pytest.mark.parametrize(("kind", "engine"), [("hnsw-sq8", "faiss"), ("hnsw", "hnswlib")])
def test_filter_through_the_engine_on_large_allowed_set(kind, engine):
    x, q = base_and_queries(12000, 20, 16, clusters=10, seed=2)
    index = VectorIndex(kind, engine=engine, M=16, ef_construction=48, ef_search=64).fit(x)
    index.delete([1, 2])  # filtered and deleted at once
    # 7998 > EXACT_FILTER_MAX: a faiss IDSelectorBatch, or hnswlib's filter callable
    allowed = np.flatnonzero((np.arange(len(x)) % 3 != 0) & (np.arange(len(x)) > 2))
    ids, _ = index.search(q, 10, filter=allowed)
    assert np.isin(ids, allowed).all()
    truth = allowed[knn(q, x[allowed], 10, "cosine")[0]]
    assert recall_at(ids, truth) >= 0.85


@pytest.mark.parametrize("kind", SPECS)
@pytest.mark.parametrize("mmap", [False, True])
def test_save_load_round_trip_is_identical(kind, mmap, synthetic, tmp_path):
    x, q = synthetic
    index = small_index(kind, x, rerank=2 if kind == "hnsw-sq8" else 0, ef_search=48)
    index.delete([1, 2, 3])
    before = index.search(q, 10)
    filtered = index.search(q, 10, filter=range(0, 3000, 7))
    index.save(tmp_path / "idx")
    loaded = VectorIndex.load(tmp_path / "idx", mmap=mmap)
    on_faiss = loaded.engine == "faiss"  # hnswlib reads its graph into memory
    assert loaded.stats()["memory_mapped"] is (mmap and on_faiss)
    assert loaded.params == index.params and len(loaded) == len(index)
    for got, want in zip(loaded.search(q, 10), before, strict=True):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(loaded.search(q, 10, filter=range(0, 3000, 7)), filtered, strict=True):
        np.testing.assert_array_equal(got, want)
    if mmap and on_faiss:
        assert isinstance(loaded._raw_base, np.memmap)
    # a loaded (even memory-mapped) index still grows and deletes
    loaded.add(x[:2] + 0.01, ids=[50_000, 50_001])
    loaded.delete([4])
    ids, _ = loaded.search(x[:1] + 0.01, 2)
    assert 50_000 in ids[0].tolist() and 4 not in loaded


def test_set_search_is_saved(synthetic, tmp_path):
    x, _ = synthetic
    index = small_index("hnsw-sq8", x)
    index.set_search(ef_search=77, rerank=3)
    index.save(tmp_path / "i")
    loaded = VectorIndex.load(tmp_path / "i")
    assert loaded.params.ef_search == 77 and loaded.params.rerank == 3


# ---------------------------------------------------------------------- bad input
def test_dimension_mismatch_names_both(synthetic):
    x, _ = synthetic
    index = small_index("hnsw", x)
    with pytest.raises(InvalidInput, match=r"dimension 16 but the index has dimension 32"):
        index.search(np.zeros((2, 16), np.float32), 5)
    with pytest.raises(InvalidInput, match=r"dimension 31 but the index has dimension 32"):
        index.add(np.zeros((2, 31), np.float32))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_infinite_vectors(bad, synthetic):
    x, _ = synthetic
    poisoned = x[:10].copy()
    poisoned[3, 4] = bad
    with pytest.raises(InvalidInput, match=r"NaN or infinite values \(rows \[3\]"):
        VectorIndex("hnsw").fit(poisoned)
    index = small_index("flat", x)
    with pytest.raises(InvalidInput, match="NaN or infinite"):
        index.search(poisoned, 3)


@pytest.mark.parametrize("k", [0, -1, 2.5, "10"])
def test_k_must_be_positive(k, synthetic):
    x, q = synthetic
    with pytest.raises(InvalidInput, match=r"k must be a positive integer, got"):
        small_index("flat", x).search(q, k)


def test_duplicate_ids_on_add(synthetic):
    x, _ = synthetic
    index = VectorIndex("hnsw")
    with pytest.raises(InvalidInput, match=r"duplicate ids in one add: \[4\]"):
        index.add(x[:3], ids=[4, 4, 5])
    index.add(x[:3], ids=[1, 2, 3])
    with pytest.raises(InvalidInput, match=r"ids already in the index: \[2\]"):
        index.add(x[3:5], ids=[2, 9])
    assert len(index) == 3  # the refused add changed nothing


def test_unknown_kind_and_bad_knobs():
    with pytest.raises(
        ConfigError, match=r"unknown index kind 'hnsw-pq'; use one of flat, hnsw, hnsw-sq8, ivf-sq8"
    ):
        VectorIndex("hnsw-pq")
    with pytest.raises(ConfigError, match="unknown metric 'dot'"):
        VectorIndex("hnsw", metric="dot")
    with pytest.raises(ConfigError, match=r"M must be an integer in \[2, 256\], got 0"):
        VectorIndex("hnsw", M=0)
    with pytest.raises(ConfigError, match="ef_search must be an integer"):
        VectorIndex("hnsw", ef_search=0)
    with pytest.raises(ConfigError, match="ef_construction"):
        VectorIndex("hnsw", ef_construction=2)
    with pytest.raises(ConfigError, match="nprobe 64 is larger than nlist 8"):
        VectorIndex("ivf-sq8", nlist=8, nprobe=64)
    with pytest.raises(ConfigError, match="compact_at"):
        VectorIndex("hnsw", compact_at=0)
    with pytest.raises(ConfigError, match="unknown engine 'annoy'"):
        VectorIndex("hnsw", engine="annoy")
    with pytest.raises(ConfigError, match="the hnswlib engine has no hnsw-sq8 index"):
        VectorIndex("hnsw-sq8", engine="hnswlib")
    with pytest.raises(ConfigError, match="unknown SQ8 range 'int4'; use sq='per-dim'"):
        VectorIndex("hnsw-sq8", sq="int4")
    with pytest.raises(ConfigError, match="applies to the INT8 kinds only, and hnsw stores FP32"):
        VectorIndex("hnsw", sq="symmetric")


def test_missing_hnswlib_is_a_dependency_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "hnswlib", None)  # import hnswlib now raises ImportError
    with pytest.raises(DependencyError, match="needs the hnswlib package") as err:
        VectorIndex("hnsw", engine="hnswlib")
    assert "pip install" in (err.value.fix or "")


def test_hnswlib_engine_uses_the_thread_budget_and_rejects_bad_ones(synthetic, monkeypatch):
    x, q = synthetic
    seen: list[int] = []
    import cpuai.hardware

    monkeypatch.setattr(cpuai.hardware, "core_budget", lambda: seen.append(1) or 1)
    index = VectorIndex("hnsw", engine="hnswlib", M=16).fit(x[:500])
    index.search(q, 5)
    assert seen  # threads came from cpuai.hardware.core_budget()
    assert VectorIndex("hnsw", engine="hnswlib", threads=2).fit(x[:50])._threads() == 2
    with pytest.raises(ConfigError, match="threads must be a positive integer"):
        VectorIndex("hnsw", engine="hnswlib", threads=0)


def test_searching_an_empty_index():
    with pytest.raises(InvalidInput, match="the index is empty"):
        VectorIndex("hnsw-sq8").search(np.zeros((1, 8), np.float32), 5)
    index = VectorIndex("flat").fit(np.eye(4, dtype=np.float32))
    index.delete([0, 1, 2, 3])
    with pytest.raises(InvalidInput, match="the index is empty"):
        index.search(np.ones(4, np.float32), 1)


def test_other_bad_input(synthetic, tmp_path):
    x, _ = synthetic
    index = small_index("hnsw", x[:100])
    with pytest.raises(InvalidInput, match="ids not in the index: \\[12345\\]"):
        index.delete([12345])
    with pytest.raises(InvalidInput, match="got 2 ids for 3 vectors"):
        index.add(x[:3], ids=[1000, 1001])
    with pytest.raises(InvalidInput, match="non-negative"):
        index.add(x[:1], ids=[-5])
    with pytest.raises(InvalidInput, match="ivf-sq8 with nlist=64 needs at least 64 vectors"):
        VectorIndex("ivf-sq8", nlist=64).fit(x[:10])
    with pytest.raises(DataError, match="is not a cpuai vector index"):
        VectorIndex.load(tmp_path)
    errors = [InvalidInput, ConfigError, DataError]
    assert all(issubclass(e, CpuaiError) for e in errors)


# ---------------------------------------------------------------------- the must-show recall
@pytest.mark.slow
@pytest.mark.parametrize(("kind", "ef_search"), [("hnsw", 64), ("hnsw-sq8", 128), ("hnsw@hnswlib", 64)])
def test_recall_at_10_on_50k_x_384_clustered_synthetic(kind, ef_search):
    """recall@10 >= 0.95 on 50k x 384 clustered vectors (synthetic), M=16, ef_construction=100."""
    x, q = base_and_queries(50_000, 200, 384, clusters=100, seed=0)
    truth, _ = knn(q, x, 10, "cosine")
    index = small_index(kind, x, metric="cosine", M=16, ef_construction=100, ef_search=ef_search)
    ids, _ = index.search(q, 10)
    assert recall_at(ids, truth) >= 0.95
