"""``cpuai vectors build|search|bench`` in-process on synthetic vectors (labelled synthetic)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cpuai.cli.app import main
from cpuai.vectors import VectorIndex
from cpuai.vectors.synthetic import clustered


@pytest.fixture(scope="module")
def npy(tmp_path_factory):
    """2000 synthetic clustered vectors of dim 24 in a .npy file."""
    path = tmp_path_factory.mktemp("cli") / "vectors.npy"
    np.save(path, clustered(2000, 24, clusters=10, seed=5))
    return path


@pytest.fixture(scope="module")
def built(npy):
    out = npy.parent / "index"
    assert (
        main(
            [
                "vectors",
                "build",
                "--input",
                str(npy),
                "--out",
                str(out),
                "--kind",
                "hnsw-sq8",
                "--M",
                "16",
                "--ef-construction",
                "64",
                "--json",
            ]
        )
        == 0
    )
    return out


def test_build_writes_a_loadable_index(built, npy, capsys):
    index = VectorIndex.load(built)
    assert len(index) == 2000 and index.kind == "hnsw-sq8" and index.dim == 24
    x = np.load(npy)
    ids, _ = index.search(x[:20], 1)
    assert (ids[:, 0] == np.arange(20)).mean() >= 0.95


def test_search_by_vector_json(built, npy, tmp_path, capsys):
    q = tmp_path / "q.npy"
    np.save(q, np.load(npy)[42])
    capsys.readouterr()
    assert main(["vectors", "search", str(built), "--vector", str(q), "-k", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [h["rank"] for h in out["hits"]] == [1, 2, 3, 4] and out["hits"][0]["id"] == 42


def test_bench_sweeps_and_writes_the_smallest_ef(built, capsys, tmp_path):
    before = VectorIndex.load(built).params.ef_search
    capsys.readouterr()
    assert (
        main(
            [
                "vectors",
                "bench",
                str(built),
                "--queries",
                "60",
                "--values",
                "10,20,40,400",
                "--threads",
                "1",
                "--target",
                "0.9",
                "--json",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    rows = report["rows"]
    assert {(r["value"], r["mode"]) for r in rows} == {
        (v, m) for v in (10, 20, 40, 400) for m in ("single", "batch")
    }
    assert all(0 <= r["recall"] <= 1 and r["qps"] > 0 for r in rows)
    chosen = report["chosen"]
    assert chosen["recall"] >= 0.9
    assert all(r["recall"] < 0.9 for r in rows if r["value"] < chosen["value"])
    assert (
        report["written"]
        and VectorIndex.load(built).params.ef_search == chosen["value"] != before
        or chosen["value"] == before
    )
    assert (built / "recall_qps.png").stat().st_size > 1000 and (built / "bench.json").exists()


def test_bench_from_input_holds_out_queries(npy, tmp_path, capsys):
    capsys.readouterr()
    assert (
        main(
            [
                "vectors",
                "bench",
                "--input",
                str(npy),
                "--kind",
                "hnsw",
                "--M",
                "16",
                "--queries",
                "50",
                "--values",
                "16,64",
                "--threads",
                "1",
                "--out",
                str(tmp_path),
                "--json",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["queries"] == 50 and report["count"] == 1950
    assert (tmp_path / "recall_qps.png").exists()


def test_build_on_the_hnswlib_engine_then_search_and_bench(npy, tmp_path, capsys):
    out = tmp_path / "hnswlib-index"
    argv = ["vectors", "build", "--input", str(npy), "--out", str(out), "--kind", "hnsw"]
    assert main([*argv, "--engine", "hnswlib", "--M", "16", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["engine"] == "hnswlib" and summary["count"] == 2000
    assert (out / "index.hnswlib").is_file() and not (out / "index.faiss").exists()
    q = tmp_path / "q.npy"
    np.save(q, np.load(npy)[42])
    assert main(["vectors", "search", str(out), "--vector", str(q), "-k", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["hits"][0]["id"] == 42
    bench = ["vectors", "bench", str(out), "--queries", "40", "--values", "16,64", "--threads", "1"]
    assert main([*bench, "--target", "0.9", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["chosen"]["recall"] >= 0.9
    assert VectorIndex.load(out).engine == "hnswlib"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--kind", "hnsw-sq8", "--engine", "hnswlib"], ["the hnswlib engine has no hnsw-sq8 index"]),
        (["--engine", "annoy"], ["unknown engine 'annoy'"]),
        (["--kind", "hnsw-pq"], ["unknown index kind 'hnsw-pq'", "flat, hnsw, hnsw-sq8, ivf-sq8"]),
        (["--M", "0"], ["M must be an integer in [2, 256], got 0"]),
        (["--metric", "dot"], ["unknown metric 'dot'"]),
    ],
)
def test_build_bad_options_are_one_line_errors(npy, tmp_path, capsys, args, words):
    assert main(["vectors", "build", "--input", str(npy), "--out", str(tmp_path / "x"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    for w in words:
        assert w in err


def test_bad_inputs_on_the_command_line(npy, built, tmp_path, capsys):
    bad = tmp_path / "nan.npy"
    x = np.load(npy)[:10].copy()
    x[2, 0] = np.nan
    np.save(bad, x)
    cases = [
        (["vectors", "build", "--input", str(bad), "--out", str(tmp_path / "y")], "NaN or infinite"),
        (
            ["vectors", "build", "--input", str(tmp_path / "missing.npy"), "--out", str(tmp_path / "y")],
            "does not exist",
        ),
        (["vectors", "search", str(built), "some text"], "built from vectors"),
        (
            ["vectors", "search", str(built), "--vector", str(npy), "-k", "0"],
            "k must be a positive integer, got 0",
        ),
        (["vectors", "search", str(tmp_path)], "is not a cpuai vector index"),
        (["vectors", "bench", str(built), "--target", "1.5"], "--target must be a recall"),
    ]
    for argv, words in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and words in err and len(err.splitlines()) == 1, err
    q = tmp_path / "q16.npy"
    np.save(q, np.zeros((1, 16), np.float32))
    assert main(["vectors", "search", str(built), "--vector", str(q)]) == 2
    assert "dimension 16 but the index has dimension 24" in capsys.readouterr().err


def test_text_input_needs_a_model(tmp_path, capsys):
    (tmp_path / "t.txt").write_text("one text\nanother text\n")
    assert main(["vectors", "build", "--input", str(tmp_path / "t.txt"), "--out", str(tmp_path / "i")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--model" in err and len(err.strip().splitlines()) == 1
