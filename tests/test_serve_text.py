"""cpuai serve on MiniLM (all-MiniLM-L6-v2, real weights, offline) over real HTTP: v2 and plain text.

Texts are Python's own docstrings, short and of different lengths (never padded to max_length).
"""

from __future__ import annotations

import asyncio
import json
import os
import re

import httpx
import numpy as np
import pytest

from cpuai.serve import ServeConfig, ServerThread, create_app

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytestmark = pytest.mark.slow

TEXTS = [
    (len.__doc__ or "").split("\n")[0],
    (str.split.__doc__ or "").split("\n")[0],
    (sorted.__doc__ or "").split("\n")[0],
    "Return the absolute value of the argument.",
    (dict.get.__doc__ or "").split("\n")[0],
    (zip.__doc__ or "").strip().split("\n")[0],
    "Return True if all elements of the iterable are true (or if the iterable is empty).",
    (print.__doc__ or "").split("\n")[0],
]


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    from cpuai.models import minilm

    return minilm.export(tmp_path_factory.mktemp("minilm") / "minilm", max_length=128)


@pytest.fixture(scope="module")
def reference(minilm):
    """Token ids and mean-pooled, normalised embeddings straight from onnxruntime, one text at a time."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(minilm.path / "tokenizer.json"))
    tok.no_padding()
    session = ort.InferenceSession(str(minilm.model_file), providers=["CPUExecutionProvider"])
    feeds, vectors = [], []
    for text in TEXTS:
        e = tok.encode(text)
        f = {
            "input_ids": np.asarray([e.ids], np.int64),
            "attention_mask": np.asarray([e.attention_mask], np.int64),
            "token_type_ids": np.asarray([e.type_ids], np.int64),
        }
        hidden = session.run(["last_hidden_state"], f)[0]
        v = hidden[0].mean(axis=0)
        vectors.append(v / np.linalg.norm(v))
        feeds.append(f)
    assert len({f["input_ids"].shape[1] for f in feeds}) > 3  # the texts really differ in length
    return feeds, np.stack(vectors)


@pytest.fixture(scope="module")
def server(minilm):
    with ServerThread(create_app(minilm.path, ServeConfig(max_batch=16, max_delay_ms=5))) as url:
        yield url


def test_v2_metadata_and_json_infer_on_minilm(server, minilm, reference):
    feeds, _ = reference
    name = minilm.manifest.name
    with httpx.Client(base_url=server, timeout=60) as c:
        meta = c.get(f"/v2/models/{name}").json()
        assert [i["name"] for i in meta["inputs"]] == ["input_ids", "attention_mask", "token_type_ids"]
        assert meta["inputs"][0]["datatype"] == "INT64" and meta["outputs"][0]["shape"] == [-1, -1, 384]
        f = feeds[0]
        body = {
            "inputs": [
                {"name": k, "shape": list(v.shape), "datatype": "INT64", "data": v.ravel().tolist()}
                for k, v in f.items()
            ]
        }
        r = c.post(f"/v2/models/{name}/infer", json=body)
        assert r.status_code == 200, r.text
        out = r.json()["outputs"][0]
        hidden = np.asarray(out["data"], np.float32).reshape(out["shape"])
        assert hidden.shape == (1, f["input_ids"].shape[1], 384)
        v = hidden[0].mean(axis=0)
        np.testing.assert_allclose(v / np.linalg.norm(v), reference[1][0], atol=1e-4)
        bad = dict(body, inputs=[dict(body["inputs"][0], datatype="FP32")] + body["inputs"][1:])
        r = c.post(f"/v2/models/{name}/infer", json=bad)
        assert r.status_code == 400 and "INT64" in r.json()["error"]


def test_v2_binary_infer_on_minilm(server, minilm, reference):
    feeds, vectors = reference
    f = feeds[3]
    header = {
        "inputs": [
            {
                "name": k,
                "shape": list(v.shape),
                "datatype": "INT64",
                "parameters": {"binary_data_size": v.nbytes},
            }
            for k, v in f.items()
        ],
        "parameters": {"binary_data_output": True},
    }
    head = json.dumps(header).encode()
    raw = b"".join(v.tobytes() for v in f.values())
    r = httpx.post(
        f"{server}/v2/models/{minilm.manifest.name}/infer",
        content=head + raw,
        timeout=60,
        headers={"Inference-Header-Content-Length": str(len(head))},
    )
    assert r.status_code == 200, r.text
    n = int(r.headers["inference-header-content-length"])
    out = json.loads(r.content[:n])["outputs"][0]
    hidden = np.frombuffer(r.content[n:], np.float32).reshape(out["shape"])
    v = hidden[0].mean(axis=0)
    np.testing.assert_allclose(v / np.linalg.norm(v), vectors[3], atol=1e-4)


def test_plain_text_endpoint_batches_by_length_and_answers_each_its_own(server, reference):
    _, vectors = reference

    async def burst():
        async with httpx.AsyncClient(base_url=server, timeout=60) as ac:
            return await asyncio.gather(
                *(ac.post("/service", json={"text": TEXTS[i % len(TEXTS)]}) for i in range(48))
            )

    answers = asyncio.run(burst())
    for i, r in enumerate(answers):
        assert r.status_code == 200, r.text
        got = np.asarray(r.json()["embedding"])
        assert float(got @ vectors[i % len(TEXTS)]) > 0.9999, f"request {i} got another text's embedding"
    many = httpx.post(f"{server}/service", json={"texts": TEXTS}, timeout=60).json()["embeddings"]
    np.testing.assert_allclose(np.asarray(many), vectors, atol=1e-4)
    text = httpx.get(f"{server}/metrics").text
    count = next(float(x.split()[-1]) for x in text.splitlines() if x.startswith("cpuai_batch_size_count"))
    assert count < 48 + 1 + len(TEXTS)  # some requests shared a batch


def test_plain_embeddings_are_written_as_float32_in_their_shortest_form(server, reference):
    """float32 values as float32 (at most 9 significant digits), not as the longer float64 of each."""
    _, vectors = reference
    r = httpx.post(f"{server}/service", json={"text": TEXTS[3]}, timeout=60)
    assert r.status_code == 200, r.text
    written = r.content.split(b'"embedding":[')[1].split(b"]")[0]
    numbers = re.findall(rb"-?[0-9][0-9.]*(?:e-?[0-9]+)?", written)
    assert len(numbers) == 384
    assert max(len(n.lstrip(b"-").split(b"e")[0].replace(b".", b"").lstrip(b"0")) for n in numbers) <= 9
    got = np.asarray(r.json()["embedding"], dtype=np.float32)
    np.testing.assert_allclose(got, vectors[3], atol=1e-4)
    assert r.json()["dim"] == 384 and len(r.content) < 384 * 14  # 8 kB when written as float64


def test_minilm_rows_are_slow_enough_to_split_under_the_real_threshold(minilm, reference):
    """MiniLM rows cost the engine more CPU than ``SPLIT_MIN_ROW_S``: under load it runs per-core engines."""
    _, vectors = reference
    app = create_app(minilm.path, ServeConfig(cores=2, max_batch=8, access_log=False))
    with ServerThread(app) as url, httpx.Client(base_url=url, timeout=60) as c:
        assert c.get(f"/v2/models/{minilm.manifest.name}").json()["parameters"]["split_engines"] == 2

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url, timeout=60) as ac:
                calls = (ac.post("/service", json={"text": TEXTS[i % len(TEXTS)]}) for i in range(32))
                return await asyncio.gather(*calls)

        split = 0.0
        for _attempt in range(4):  # bounded: stop once batches ran on the per-core engines
            for i, r in enumerate(asyncio.run(burst())):
                assert float(np.asarray(r.json()["embedding"]) @ vectors[i % len(TEXTS)]) > 0.9999
            lines = c.get("/metrics").text.splitlines()
            split = sum(
                float(x.split()[-1])
                for x in lines
                if x.startswith("cpuai_engine_batches_total") and 'engine="per-core"' in x
            )
            if split:
                break
        assert split > 0, "MiniLM never split: its rows read below SPLIT_MIN_ROW_S"


def test_bad_text_requests(server):
    with httpx.Client(base_url=server, timeout=60) as c:
        for body, words in [
            ({"txt": "a"}, "'text' or 'texts'"),
            ({"text": ""}, "non-empty"),
            ({"texts": []}, "1 to 256"),
            ({"text": 5}, "non-empty string"),
        ]:
            r = c.post("/service", json=body)
            assert r.status_code == 400 and words in r.json()["error"], r.text
        assert (
            c.post("/service", content=b"\xff\xfe\xfa", headers={"content-type": "text/plain"}).status_code
            == 400
        )
        assert c.post("/service", json={"text": "still serving"}).status_code == 200
