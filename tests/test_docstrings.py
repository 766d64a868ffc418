"""Python's own docstrings as a corpus: deterministic, clean, de-duplicated, sampled by seed."""

from __future__ import annotations

import pytest

from cpuai.data import docstrings as ds
from cpuai.errors import ConfigError


def test_corpus_is_real_clean_and_unique():
    records = ds.docstring_records()
    assert len(records) > 3000
    texts = [r.text for r in records]
    assert len({t.lower() for t in texts}) == len(texts)
    assert all("\n" not in t and len(t.split()) >= 4 for t in texts)
    by_name = {r.name: r.text for r in records}
    assert "JSON" in by_name["json.dumps"]
    assert "square root" in by_name["math.sqrt"]


def test_sample_is_deterministic_and_seeded():
    a, b = ds.docstrings(limit=200, seed=3), ds.docstrings(limit=200, seed=3)
    assert a == b and len(a) == 200
    assert ds.docstrings(limit=200, seed=4) != a
    full = ds.docstrings()
    assert set(a) <= set(full)


def test_sentence_unit_is_larger_and_split():
    sentences = ds.docstrings(unit="sentence")
    assert len(sentences) > len(ds.docstrings())
    assert "Return the square root of x." in sentences


def test_cache_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("CPUAI_CACHE_DIR", str(tmp_path))
    ds._records.cache_clear()
    first = ds.docstrings(limit=50)
    assert list(tmp_path.rglob("*.json"))
    ds._records.cache_clear()
    assert ds.docstrings(limit=50) == first
    ds._records.cache_clear()


def test_paraphrase_pairs_point_into_corpus():
    pairs = ds.paraphrase_pairs()
    assert len(pairs) >= 8
    texts = set(ds.docstrings())
    assert all(d.text in texts and q != d.text for q, d in pairs)


@pytest.mark.parametrize(("kwargs", "needle"), [({"limit": 0}, "limit"), ({"unit": "word"}, "unit")])
def test_bad_arguments(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        ds.docstrings(**kwargs)


def test_clean_drops_signatures_and_short_text():
    assert (
        ds.clean("f(x) -> int\n\nReturn the thing that is asked for.")
        == "Return the thing that is asked for."
    )
    assert ds.clean("Short.") is None
