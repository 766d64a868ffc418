"""Text search over real MiniLM embeddings of Python's own docstrings (slow: exports and runs MiniLM)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cpuai.cli.app import main
from cpuai.data.docstrings import docstring_records, paraphrase_pairs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    """all-MiniLM-L6-v2 exported offline as an FP32 ONNX text-embedding package."""
    from cpuai.models import minilm

    return minilm.export(tmp_path_factory.mktemp("minilm") / "pkg").path


@pytest.fixture(scope="module")
def corpus():
    """1500 sampled stdlib docstrings plus the targets of the paraphrase pairs."""
    records = docstring_records(limit=1500, seed=0)
    names = {r.name for r in records}
    return records + [d for _, d in paraphrase_pairs() if d.name not in names]


@pytest.fixture(scope="module")
def docs_index(minilm, corpus, tmp_path_factory):
    """An hnsw-sq8 index built by the CLI from a text file through cpuai.runtime."""
    root = tmp_path_factory.mktemp("text")
    (root / "docs.txt").write_text("\n".join(r.text for r in corpus))
    out = root / "index"
    assert (
        main(
            [
                "vectors",
                "build",
                "--input",
                str(root / "docs.txt"),
                "--model",
                str(minilm),
                "--kind",
                "hnsw-sq8",
                "--M",
                "16",
                "--out",
                str(out),
                "--json",
            ]
        )
        == 0
    )
    return out


def test_paraphrased_query_finds_its_docstring(docs_index, minilm, corpus):
    from cpuai.vectors import VectorIndex
    from cpuai.vectors.embedding import TextEmbedder

    index = VectorIndex.load(docs_index)
    assert index.model == str(minilm.resolve()) and len(index) == len(corpus)
    pairs = paraphrase_pairs()
    embedder = TextEmbedder(index.model)
    ids, _ = index.search(embedder.embed([q for q, _ in pairs]), 5)
    texts = [index.texts(row.tolist()) for row in ids]
    top1 = [t[0] == d.text for t, (_, d) in zip(texts, pairs, strict=True)]
    top5 = [d.text in t for t, (_, d) in zip(texts, pairs, strict=True)]
    assert sum(top1) >= 0.7 * len(pairs), list(zip([q for q, _ in pairs], texts, strict=True))
    assert sum(top5) >= 0.9 * len(pairs)
    # the embeddings are real: a docstring's own text is its own nearest neighbour
    own = embedder.embed([corpus[3].text, corpus[10].text])
    ids, scores = index.search(own, 1)
    assert ids[:, 0].tolist() == [3, 10] and (scores[:, 0] > 0.97).all()
    assert np.allclose(np.linalg.norm(index.vectors([3]), axis=1), 1.0, atol=1e-4)


def test_cli_search_prints_hits_with_text(docs_index, capsys):
    capsys.readouterr()
    assert (
        main(
            [
                "vectors",
                "search",
                str(docs_index),
                "find all non-overlapping regex matches in a string",
                "-k",
                "3",
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["k"] == 3 and len(out["hits"]) == 3
    assert out["hits"][0]["text"] == "Return a list of all non-overlapping matches in the string."
    assert main(["vectors", "search", str(docs_index), "delete a whole directory tree", "-k", "2"]) == 0
    assert "Recursively delete a directory tree." in capsys.readouterr().out


def test_embedder_keeps_every_core_busy_and_matches_the_text_task(minilm, corpus):
    """Batches in flight on one-core streams give exactly the text task's vectors, in the caller's order."""
    from cpuai.hardware import core_budget
    from cpuai.runtime.loader import plan_threads
    from cpuai.tasks.text import embed
    from cpuai.vectors.embedding import TextEmbedder

    texts = [r.text for r in corpus[:150]][::-1]  # unsorted lengths, more batches than streams
    embedder = TextEmbedder(minilm, batch_size=8)
    try:
        assert embedder.streams == plan_threads(None, None, "throughput", core_budget())[1]
        done: list[int] = []
        ours = embedder.embed(texts, progress=done.append)
        reference = embed(embedder.engine, texts, 8, package=embedder.package)
    finally:
        embedder.close()
    assert sum(done) == len(texts) and len(done) == -(-len(texts) // 8)  # one progress step per batch
    np.testing.assert_allclose(ours, reference, atol=1e-5)
