"""The write-ahead log of served adds/deletes: replay on load, torn last lines, folding (synthetic data)."""

from __future__ import annotations

import numpy as np
import pytest

from cpuai.errors import DataError
from cpuai.vectors import VectorIndex
from cpuai.vectors.changelog import FILE, ChangeLog, replay
from cpuai.vectors.synthetic import clustered


@pytest.fixture()
def saved(tmp_path):
    x = clustered(800, 12, clusters=5, seed=4)  # synthetic clustered vectors
    VectorIndex("hnsw", M=16, ef_construction=48).fit(x[:600], texts=[f"t{i}" for i in range(600)]).save(
        tmp_path / "idx"
    )
    return tmp_path / "idx", x


@pytest.mark.parametrize("engine", ["faiss", "hnswlib"])
def test_logged_changes_are_replayed_on_load(tmp_path, engine):
    x = clustered(700, 12, clusters=5, seed=4)
    root = tmp_path / engine
    VectorIndex("hnsw", M=16, engine=engine).fit(x[:600]).save(root)
    index = VectorIndex.load(root)
    log = ChangeLog(root)
    ids = index.add(x[600:650])
    log.record_add(ids, x[600:650], None)
    index.delete([0, 601])
    log.record_delete([0, 601])
    again = VectorIndex.load(root)  # the saved files are unchanged: the log carries the changes
    assert len(again) == len(index) == 648 and 649 in again and 0 not in again and 601 not in again
    for got, want in zip(again.search(x[:20], 5), index.search(x[:20], 5), strict=True):
        np.testing.assert_array_equal(got, want)


def test_a_torn_last_line_is_skipped_and_a_damaged_middle_is_an_error(saved):
    root, x = saved
    log = ChangeLog(root)
    log.record_add(np.array([900]), x[600:601], ["new"])
    with open(root / FILE, "a") as f:
        f.write('{"op": "add", "ids": [901], "dim": 12, "vec')  # a crash mid-append
    index = VectorIndex.load(root)
    assert 900 in index and 901 not in index and index.texts([900]) == ["new"]
    with open(root / FILE, "a") as f:
        f.write("\n" + '{"op": "delete", "ids": [1]}' + "\n")
    with pytest.raises(DataError, match=r"changes.log line 2 is not valid JSON"):
        VectorIndex.load(root)


def test_fold_saves_over_the_directory_and_drops_the_log(saved):
    root, x = saved
    index = VectorIndex.load(root, mmap=True)
    log = ChangeLog(root, fold_bytes=1)
    index.delete([3])  # on the memory-mapped index
    log.record_delete([3])
    assert log.maybe_fold(index) and not (root / FILE).exists()
    ids = index.add(x[600:610])  # after the fold the index still grows
    log.record_add(ids, x[600:610], None)
    assert replay(VectorIndex._load_files(root, mmap=True, threads=None), root) == 1
    log.fold(index)
    again = VectorIndex.load(root)
    assert not (root / FILE).exists() and len(again) == 609 and 3 not in again and 609 in again
    assert again.texts([4, 605]) == ["t4", None]
