"""cpuai serve over real HTTP on loopback: protocols, batching, repository, handlers, operations.

Every test talks to a real uvicorn server (in a thread) running the digits CNN on ONNX Runtime.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from cpuai import package as pkgmod
from cpuai.serve import ServeConfig, ServerThread, create_app

HANDLER_CODE = '''
import time

from cpuai.errors import InvalidInput


class Echo:
    """A custom handler: answers each body's length; 'boom' raises, 'sleep:S' sleeps S seconds."""

    def load_model(self, model_dir):
        self.model_dir = model_dir

    def execute(self, data, batch_size):
        assert len(data) == batch_size
        out = []
        for item in data:
            if "inputs" in item:
                out.append({k: v * 2 for k, v in item["inputs"].items()})
                continue
            body = item["body"]
            if body == b"boom":
                raise RuntimeError("the handler exploded on purpose")
            if body == b"bad":
                raise InvalidInput("the handler refuses 'bad'", fix="send something else")
            if body.startswith(b"sleep:"):
                time.sleep(float(body[6:]))
            out.append({"length": len(body), "batch": batch_size})
        return out
'''


def png_bytes(image01: np.ndarray) -> bytes:
    """A float image in [0, 1] (H×W) as PNG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.round(image01 * 255).astype(np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def repo(digits_onnx_package, tmp_path_factory) -> Path:
    """A repository: digits v1, and 'echo', a custom handler package."""
    root = tmp_path_factory.mktemp("repo")
    repository = pkgmod.Repository(root)
    source = pkgmod.read(digits_onnx_package)
    repository.add(source, name="digits", version=1)
    echo = repository.add(source, name="echo", version=1)
    (echo.path / "echo_handler.py").write_text(HANDLER_CODE)
    pkgmod.update_manifest(echo, handler="echo_handler:Echo", task="generic")
    return root


@pytest.fixture(scope="module")
def server(repo):
    app = create_app(repo, ServeConfig(max_batch=32, max_delay_ms=5))
    with ServerThread(app) as url:
        yield url


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def expected(digits_arrays, digits_onnx_package):
    """The engine's own logits for the first 64 digits, straight from onnxruntime (no server)."""
    import onnxruntime as ort

    x, y = digits_arrays
    session = ort.InferenceSession(
        str(Path(digits_onnx_package) / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    return x[:64], y[:64], session.run(["logits"], {"input": x[:64]})[0]


def v2_body(x: np.ndarray, **extra) -> dict:
    return {
        "inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}],
        **extra,
    }


def assert_error(r: httpx.Response, status: int, *words: str) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert list(body) == ["error"] and isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in body["error"]
    for w in words:
        assert w.lower() in body["error"].lower(), body["error"]
    return body["error"]


def assert_still_serving(client: httpx.Client, x: np.ndarray) -> None:
    r = client.post("/v2/models/digits/infer", json=v2_body(x[:1]))
    assert r.status_code == 200, r.text


# -- KServe v2 ---------------------------------------------------------------------------------


def test_v2_server_and_model_metadata(client):
    assert client.get("/v2").json()["extensions"] == ["binary_tensor_data", "model_repository"]
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    meta = client.get("/v2/models/digits").json()
    assert meta["name"] == "digits" and meta["versions"] == ["1"] and meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 32, 32]}]
    assert meta["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}]
    assert client.get("/v2/models/digits/versions/1").json()["name"] == "digits"
    assert client.get("/v2/models/digits/ready").json() == {"name": "digits", "ready": True}
    assert client.get("/v2/models/digits/versions/1/ready").status_code == 200


def test_v2_infer_json_answers_the_engines_logits(client, expected):
    x, y, logits = expected
    r = client.post("/v2/models/digits/versions/1/infer", json=v2_body(x[:16], id="req-7"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_name"] == "digits" and body["model_version"] == "1" and body["id"] == "req-7"
    (out,) = body["outputs"]
    assert out["name"] == "logits" and out["datatype"] == "FP32" and out["shape"] == [16, 10]
    got = np.asarray(out["data"], dtype=np.float32).reshape(16, 10)
    np.testing.assert_allclose(got, logits[:16], rtol=1e-4, atol=1e-5)
    assert (got.argmax(1) == y[:16]).mean() >= 0.75  # a real, trained model


def test_v2_infer_binary_extension_both_ways(client, expected):
    x, _, logits = expected
    header = {
        "inputs": [
            {
                "name": "input",
                "shape": [8, 1, 32, 32],
                "datatype": "FP32",
                "parameters": {"binary_data_size": x[:8].nbytes},
            }
        ],
        "outputs": [{"name": "logits", "parameters": {"binary_data": True}}],
    }
    head = json.dumps(header).encode()
    r = client.post(
        "/v2/models/digits/infer",
        content=head + x[:8].tobytes(),
        headers={
            "Inference-Header-Content-Length": str(len(head)),
            "content-type": "application/octet-stream",
        },
    )
    assert r.status_code == 200, r.text
    n = int(r.headers["inference-header-content-length"])
    meta = json.loads(r.content[:n])
    (out,) = meta["outputs"]
    assert out["parameters"]["binary_data_size"] == 8 * 10 * 4 and "data" not in out
    got = np.frombuffer(r.content[n:], dtype=np.float32).reshape(out["shape"])
    np.testing.assert_allclose(got, logits[:8], rtol=1e-4, atol=1e-5)


def test_v2_binary_input_with_json_output(client, expected):
    x, _, logits = expected
    header = {
        "inputs": [
            {
                "name": "input",
                "shape": [2, 1, 32, 32],
                "datatype": "FP32",
                "parameters": {"binary_data_size": x[:2].nbytes},
            }
        ]
    }
    head = json.dumps(header).encode()
    r = client.post(
        "/v2/models/digits/infer",
        content=head + x[:2].tobytes(),
        headers={"Inference-Header-Content-Length": str(len(head))},
    )
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    np.testing.assert_allclose(
        np.asarray(r.json()["outputs"][0]["data"]).reshape(2, 10), logits[:2], rtol=1e-4, atol=1e-5
    )


# -- TF-Serving --------------------------------------------------------------------------------


def test_tfserving_predict_instances_and_inputs(client, expected):
    x, _, logits = expected
    r = client.post("/v1/models/digits:predict", json={"instances": x[:4].tolist()})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(np.asarray(r.json()["predictions"]), logits[:4], rtol=1e-4, atol=1e-5)
    r = client.post("/v1/models/digits/versions/1:predict", json={"inputs": {"input": x[4:6].tolist()}})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(np.asarray(r.json()["outputs"]), logits[4:6], rtol=1e-4, atol=1e-5)
    status = client.get("/v1/models/digits").json()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    sig = client.get("/v1/models/digits/metadata").json()["metadata"]["signature_def"]["serving_default"]
    assert sig["inputs"]["input"]["tensor_shape"] == [-1, 1, 32, 32]


# -- plain endpoint ----------------------------------------------------------------------------


def test_raw_png_upload_answers_the_right_label(client, expected):
    x, y, logits = expected
    right = 0
    for i in range(12):
        r = client.post(
            "/v1/models/digits/predict?top_k=3",
            content=png_bytes(x[i, 0]),
            headers={"content-type": "image/png"},
        )
        assert r.status_code == 200, r.text
        preds = r.json()["predictions"]
        assert len(preds) == 3 and preds[0]["score"] >= preds[1]["score"]
        assert preds[0]["label"] == str(int(logits[i].argmax()))  # what the engine says on the tensor
        right += preds[0]["label"] == str(int(y[i]))
    assert right >= 9  # and it is mostly the true digit


def test_service_needs_one_model(client, expected):
    r = client.post("/service", content=png_bytes(expected[0][0, 0]))
    assert_error(r, 404, "exactly one model")


def test_one_model_server_answers_at_service(digits_onnx_package, expected):
    x, y, logits = expected
    app = create_app(digits_onnx_package, ServeConfig())
    with ServerThread(app) as url:
        for method in ("POST", "PUT"):  # curl -T sends PUT unless -X POST
            r = httpx.request(method, f"{url}/service", content=png_bytes(x[3, 0]))
            assert r.status_code == 200, r.text
            assert r.json()["predictions"][0]["label"] == str(int(logits[3].argmax()))
        files = {"file": ("digit.png", png_bytes(x[5, 0]), "image/png")}
        r = httpx.post(f"{url}/service", files=files)
        assert r.status_code == 200 and r.json()["predictions"][0]["label"] == str(int(logits[5].argmax()))


# -- batching ----------------------------------------------------------------------------------


def _batch_histogram(client: httpx.Client, model: str) -> tuple[float, float]:
    """(batches of size 1, all batches) from /metrics."""
    text = client.get("/metrics").text
    ones = total = 0.0
    for line in text.splitlines():
        if line.startswith("cpuai_batch_size_bucket") and f'model="{model}"' in line and 'le="1.0"' in line:
            ones = float(line.split()[-1])
        if line.startswith("cpuai_batch_size_count") and f'model="{model}"' in line:
            total = float(line.split()[-1])
    return ones, total


def test_batching_under_concurrency_keeps_every_answer_its_own(server, client, expected):
    x, _, logits = expected
    want = logits.argmax(1)
    pngs = [png_bytes(x[i, 0]) for i in range(len(x))]

    async def burst() -> list[tuple[int, dict]]:
        async with httpx.AsyncClient(
            base_url=server, timeout=30, limits=httpx.Limits(max_connections=64)
        ) as ac:

            async def one(i: int):
                if i % 2:
                    r = await ac.post("/v1/models/digits/predict", content=pngs[i])
                    return i, r.json()["predictions"][0]["label"]
                r = await ac.post("/v2/models/digits/infer", json=v2_body(x[i : i + 1]))
                return i, str(int(np.argmax(r.json()["outputs"][0]["data"])))

            return await asyncio.gather(*(one(i) for i in range(len(x))))

    before_ones, before_total = _batch_histogram(client, "digits")
    for _attempt in range(5):  # bounded: stop as soon as a batch above 1 was seen
        for i, label in asyncio.run(burst()):
            assert label == str(int(want[i])), f"request {i} got another request's answer"
        ones, total = _batch_histogram(client, "digits")
        if total - before_total > ones - before_ones:
            break
    assert total - before_total > ones - before_ones, "no batch above 1 under 64 concurrent requests"
    assert total - before_total < 5 * len(x)  # fewer batches than requests


def test_uploads_batch_with_one_preprocessing_thread(digits_onnx_package, expected):
    """A 1-core server (one preprocessing thread) still batches raw uploads: the pool thread runs
    an idle model's engine call itself only when no other request waits for it (before, it ran
    every upload batch-1 itself while the rest queued behind it)."""
    x, _, logits = expected
    want = logits.argmax(1)
    pngs = [png_bytes(x[i, 0]) for i in range(len(x))]
    app = create_app(digits_onnx_package, ServeConfig(cores=1, preprocess_workers=1, access_log=False))
    with ServerThread(app) as url, httpx.Client(base_url=url, timeout=30) as client:

        async def burst() -> list[tuple[int, str]]:
            async with httpx.AsyncClient(
                base_url=url, timeout=30, limits=httpx.Limits(max_connections=64)
            ) as ac:

                async def one(i: int) -> tuple[int, str]:
                    r = await ac.post("/v1/models/digits/predict", content=pngs[i])
                    return i, r.json()["predictions"][0]["label"]

                return await asyncio.gather(*(one(i) for i in range(len(x))))

        seen = 0.0
        for _attempt in range(5):  # bounded: stop once a burst ran mostly in batches
            for i, label in asyncio.run(burst()):
                assert label == str(want[i]), f"upload {i} got another request's answer"
            ones, total = _batch_histogram(client, "digits")
            batches, seen = total - seen, total
            if total > ones and batches < 0.8 * len(x):
                break
        # fewer engine calls than uploads (it was one call per upload, all batch 1)
        assert total > ones and batches < 0.8 * len(x), f"{batches:.0f} engine calls for {len(x)} uploads"


def _engine_batches(client: httpx.Client, model: str) -> dict[str, float]:
    """Batches run per engine kind (all-cores, per-core) from /metrics."""
    out = {"all-cores": 0.0, "per-core": 0.0}
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("cpuai_engine_batches_total") and f'model="{model}"' in line:
            kind = line.split('engine="')[1].split('"')[0]
            out[kind] = float(line.split()[-1])
    return out


def test_split_engines_take_batches_under_load_while_a_lone_request_keeps_every_core(
    digits_onnx_package, expected, monkeypatch
):
    from cpuai.serve import model as served

    # the digits CNN's rows take well under SPLIT_MIN_ROW_S, so it splits only when told to
    default_min_row_s = served.SPLIT_MIN_ROW_S
    monkeypatch.setattr(served, "SPLIT_MIN_ROW_S", 0.0)
    placed: list[list[int] | None] = []  # where each engine call was pinned (None: not pinned)
    real_pinned = served.pinned

    def recording(cpus: list[int] | None) -> Any:
        placed.append(cpus)
        return real_pinned(cpus)

    monkeypatch.setattr(served, "pinned", recording)
    x, _, logits = expected
    want = logits.argmax(1)
    app = create_app(digits_onnx_package, ServeConfig(cores=2, access_log=False))
    with ServerThread(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        params = client.get("/v2/models/digits").json()["parameters"]
        assert (params["threads"], params["split_engines"], params["split_threads"]) == (2, 2, 1)
        for i in range(3):  # one at a time: each runs alone on the all-core engine
            r = client.post("/v2/models/digits/infer", json=v2_body(x[i : i + 1]))
            assert int(np.argmax(r.json()["outputs"][0]["data"])) == want[i]
        assert _engine_batches(client, "digits") == {"all-cores": 3.0, "per-core": 0.0}
        assert placed == [None, None, None]  # the all-core engine floats over every core

        async def burst() -> list[tuple[int, int]]:
            async with httpx.AsyncClient(base_url=url, timeout=30) as ac:

                async def one(i: int) -> tuple[int, int]:
                    r = await ac.post("/v2/models/digits/infer", json=v2_body(x[i : i + 1]))
                    return i, int(np.argmax(r.json()["outputs"][0]["data"]))

                return await asyncio.gather(*(one(i) for i in range(len(x))))

        for _attempt in range(5):  # bounded: stop once batches ran side by side
            for i, label in asyncio.run(burst()):
                assert label == want[i], f"request {i} got another request's answer"
            if _engine_batches(client, "digits")["per-core"] > 0:
                break
        split = _engine_batches(client, "digits")["per-core"]
        assert split > 0, "no per-core batch under 64 requests"
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        pins = [p for p in placed if p is not None]
        if len(cpus) >= 2:  # each per-core engine's batches ran on its own core
            assert pins and {tuple(p) for p in pins} <= {(cpus[0],), (cpus[1],)}
        # with the real threshold the digits CNN, whose rows cost the engine far less CPU than the
        # server's Python costs a request, stays on the all-core engine however loaded
        monkeypatch.setattr(served, "SPLIT_MIN_ROW_S", default_min_row_s)
        time.sleep(served.SPLIT_HOLD_S * 2)  # past the hold: a lone request takes the all-core engine,
        client.post("/v2/models/digits/infer", json=v2_body(x[:1]))  # whose batch renews the decision
        split = _engine_batches(client, "digits")["per-core"]
        for i, label in asyncio.run(burst()):
            assert label == want[i]
        assert _engine_batches(client, "digits")["per-core"] == split
    off = create_app(digits_onnx_package, ServeConfig(cores=2, access_log=False, split=False))
    with ServerThread(off) as url:
        params = httpx.get(url + "/v2/models/digits").json()["parameters"]
        assert (params["threads"], params["split_engines"]) == (2, 0)


# -- bad input ---------------------------------------------------------------------------------


BAD_V2 = [
    ("malformed JSON", b'{"inputs": [', {}, 400, ["not valid json"]),
    ("missing inputs", b'{"id": "x"}', {}, 400, ["no 'inputs'"]),
    (
        "missing shape",
        json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "data": [1]}]}).encode(),
        {},
        400,
        ["no 'shape'"],
    ),
    (
        "missing data",
        json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1, 32, 32]}]}).encode(),
        {},
        400,
        ["no 'data'"],
    ),
    (
        "wrong datatype",
        json.dumps(
            {"inputs": [{"name": "input", "datatype": "INT64", "shape": [1, 1, 32, 32], "data": [0] * 1024}]}
        ).encode(),
        {},
        400,
        ["INT64", "FP32"],
    ),
    (
        "unknown datatype",
        json.dumps({"inputs": [{"name": "input", "datatype": "FP99", "shape": [1], "data": [0]}]}).encode(),
        {},
        400,
        ["FP99"],
    ),
    (
        "wrong shape",
        json.dumps(
            {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1, 16, 16], "data": [0.0] * 256}]}
        ).encode(),
        {},
        400,
        ["dimension 2 is 16", "32"],
    ),
    (
        "data does not fit shape",
        json.dumps(
            {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1, 32, 32], "data": [0.0] * 10}]}
        ).encode(),
        {},
        400,
        ["10 values", "1024"],
    ),
    (
        "strings for FP32",
        json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1], "data": ["a"]}]}).encode(),
        {},
        400,
        ["string"],
    ),
    (
        "unknown input",
        json.dumps(
            {
                "inputs": [
                    {"name": "pixels", "datatype": "FP32", "shape": [1, 1, 32, 32], "data": [0.0] * 1024}
                ]
            }
        ).encode(),
        {},
        400,
        ["pixels"],
    ),
    (
        "binary header length beyond body",
        b'{"inputs": []}',
        {"Inference-Header-Content-Length": "999"},
        400,
        ["999"],
    ),
    (
        "binary size mismatch",
        json.dumps(
            {
                "inputs": [
                    {
                        "name": "input",
                        "datatype": "FP32",
                        "shape": [1, 1, 32, 32],
                        "parameters": {"binary_data_size": 12},
                    }
                ]
            }
        ).encode(),
        {"Inference-Header-Content-Length": "{len}"},
        400,
        ["binary_data_size 12", "4096"],
    ),
]


@pytest.mark.parametrize(("case", "body", "headers", "status", "words"), BAD_V2, ids=[c[0] for c in BAD_V2])
def test_bad_v2_requests_get_one_line_errors(client, expected, case, body, headers, status, words):
    headers = {k: v.replace("{len}", str(len(body))) for k, v in headers.items()}
    r = client.post("/v2/models/digits/infer", content=body, headers=headers)
    assert_error(r, status, *words)
    assert_still_serving(client, expected[0])


def test_unknown_model_and_version(client, expected):
    assert_error(client.post("/v2/models/nope/infer", json=v2_body(expected[0][:1])), 404, "'nope'", "digits")
    assert_error(client.get("/v2/models/digits/versions/9"), 404, "version 9", "does not exist")
    assert_error(
        client.post("/v2/models/digits/versions/abc/infer", json=v2_body(expected[0][:1])), 404, "'abc'"
    )
    assert_error(client.post("/v1/models/nope:predict", json={"instances": [1]}), 404, "'nope'")
    assert_error(client.post("/v1/models/nope/predict", content=b"x"), 404, "'nope'")
    assert_error(client.get("/v2/nothing/here"), 404, "no route")
    assert_still_serving(client, expected[0])


def test_bad_tfserving_and_plain_requests(client, expected):
    assert_error(client.post("/v1/models/digits:predict", json={"rows": []}), 400, "instances", "inputs")
    assert_error(client.post("/v1/models/digits:predict", json={"instances": [["a"]]}), 400, "not numbers")
    assert_error(client.post("/v1/models/digits:predict", json={"instances": [[1.0, 2.0]]}), 400, "rank")
    assert_error(client.post("/v1/models/digits:predict", content=b"{nope"), 400, "not valid json")
    assert_error(
        client.post("/v1/models/digits/predict", content=b"this is not an image"), 400, "not an image"
    )
    assert_error(client.post("/v1/models/digits/predict", content=b""), 400, "empty")
    assert_error(client.post("/v1/models/digits/predict", json={"text": "hi"}), 400, "raw image")
    assert_error(client.post("/v1/models/digits/predict?top_k=zero", content=b"x"), 400, "top_k")
    assert_error(client.get("/v1/models/digits/predict"), 405, "GET")
    assert_still_serving(client, expected[0])


def test_oversized_body_is_413_and_server_keeps_serving(digits_onnx_package, expected):
    app = create_app(digits_onnx_package, ServeConfig(max_body_bytes=2000))
    with ServerThread(app) as url, httpx.Client(base_url=url) as c:
        assert_error(c.post("/service", content=b"x" * 5000), 413, "5000", "2000")

        def chunks():  # no Content-Length: the limit is enforced while reading
            for _ in range(10):
                yield b"y" * 500

        assert_error(c.post("/service", content=chunks()), 413, "2000")
        r = c.post("/service", content=png_bytes(expected[0][0, 0]))  # a 32x32 PNG is well under 2000 bytes
        assert r.status_code == 200, r.text


# -- custom handlers ---------------------------------------------------------------------------


def test_handler_answers_and_its_failure_stays_its_own(client, expected):
    r = client.post("/v1/models/echo/predict", content=b"hello")
    assert r.status_code == 200 and r.json()["result"] == {"length": 5, "batch": 1}
    assert_error(client.post("/v1/models/echo/predict", content=b"boom"), 500, "exploded on purpose")
    assert_error(client.post("/v1/models/echo/predict", content=b"bad"), 400, "refuses")
    # the handler model and the other model keep serving
    assert client.post("/v1/models/echo/predict", content=b"again").json()["result"]["length"] == 5
    assert_still_serving(client, expected[0])
    # tensors through a handler (v2)
    r = client.post("/v2/models/echo/infer", json=v2_body(expected[0][:1]))
    assert r.status_code == 200
    np.testing.assert_allclose(
        np.asarray(r.json()["outputs"][0]["data"]), expected[0][:1].ravel() * 2, rtol=1e-6
    )


def test_handler_exception_fails_only_its_own_request_in_a_shared_batch(server):
    async def go():
        async with httpx.AsyncClient(base_url=server, timeout=30) as ac:
            slow = asyncio.ensure_future(ac.post("/v1/models/echo/predict", content=b"sleep:0.3"))
            await asyncio.sleep(0.1)  # the slow batch holds the engine slot; the next ones queue and batch
            rest = [ac.post("/v1/models/echo/predict", content=b"boom")]
            rest += [ac.post("/v1/models/echo/predict", content=b"ok%d" % i) for i in range(4)]
            return await slow, await asyncio.gather(*rest)

    slow, (boom, *good) = asyncio.run(go())
    assert slow.status_code == 200
    assert_error(boom, 500, "exploded on purpose")
    assert [g.status_code for g in good] == [200] * 4
    assert max(g.json()["result"]["batch"] for g in good) >= 1


# -- repository --------------------------------------------------------------------------------


def test_repository_index_load_and_unload(repo, expected):
    app = create_app(repo, ServeConfig())
    with ServerThread(app) as url, httpx.Client(base_url=url) as c:
        index = {(m["name"], m["version"]): m["state"] for m in c.get("/v2/repository/index").json()}
        assert index == {("digits", "1"): "READY", ("echo", "1"): "READY"}
        assert c.post("/v2/repository/models/digits/unload").json()["state"] == "UNAVAILABLE"
        assert_error(
            c.post("/v2/models/digits/infer", json=v2_body(expected[0][:1])), 503, "not loaded", "load"
        )
        assert {m["name"]: m["state"] for m in c.post("/v2/repository/index").json()}[
            "digits"
        ] == "UNAVAILABLE"
        assert c.get("/v2/health/ready").status_code == 200  # the loaded models are ready
        r = c.post("/v2/repository/models/digits/load")
        assert r.status_code == 200 and r.json()["state"] == "READY"
        assert c.post("/v2/models/digits/infer", json=v2_body(expected[0][:1])).status_code == 200
        assert_error(c.post("/v2/repository/models/ghost/load"), 404, "'ghost'")


def test_hot_reload_switches_version_without_dropping_requests(digits_onnx_package, tmp_path, expected):
    repository = pkgmod.Repository(tmp_path / "repo")
    source = pkgmod.read(digits_onnx_package)
    repository.add(source, name="digits", version=1)
    app = create_app(repository.root, ServeConfig(poll_seconds=0.2))
    x = expected[0]
    statuses: list[int] = []
    with ServerThread(app) as url, httpx.Client(base_url=url) as c:
        assert c.get("/v2/models/digits").json()["versions"] == ["1"]
        repository.add(source, name="digits", version=2)
        version = "1"
        deadline = time.monotonic() + 30
        while version != "2" and time.monotonic() < deadline:  # keep traffic flowing during the switch
            r = c.post("/v2/models/digits/infer", json=v2_body(x[:1]))
            statuses.append(r.status_code)
            version = r.json().get("model_version", version)
        assert version == "2"
        assert set(statuses) == {200}
        assert_error(c.get("/v2/models/digits/versions/1"), 404, "exists but is not loaded")


# -- operations --------------------------------------------------------------------------------


def test_bearer_token_guards_everything_but_health(digits_onnx_package, expected):
    app = create_app(digits_onnx_package, ServeConfig(token="s3cret"))
    with ServerThread(app) as url, httpx.Client(base_url=url) as c:
        assert_error(c.post("/v2/models/digits/infer", json=v2_body(expected[0][:1])), 401, "no bearer token")
        r = c.get("/metrics", headers={"authorization": "Bearer wrong"})
        assert_error(r, 401, "wrong bearer token")
        assert r.headers["www-authenticate"] == "Bearer"
        assert c.get("/v2/health/live").status_code == 200 and c.get("/v2/health/ready").status_code == 200
        ok = c.post(
            "/v2/models/digits/infer",
            json=v2_body(expected[0][:1]),
            headers={"authorization": "Bearer s3cret"},
        )
        assert ok.status_code == 200


def test_request_ids_access_log_metrics_and_docs(client, expected, caplog):
    with caplog.at_level(logging.INFO, logger="cpuai.serve.access"):
        r = client.post(
            "/v2/models/digits/infer", json=v2_body(expected[0][:1]), headers={"x-request-id": "abc-123"}
        )
        time.sleep(0.05)
    assert r.headers["x-request-id"] == "abc-123" and r.json()["id"] == "abc-123"
    assert any("abc-123" in m and "/v2/models/digits/infer" in m and " 200 " in m for m in caplog.messages)
    made = {client.get("/v2").headers["x-request-id"] for _ in range(3)}  # generated when not given
    assert len(made) == 3 and all(len(rid) == 32 and int(rid, 16) >= 0 for rid in made)
    metrics = client.get("/metrics").text
    assert 'cpuai_requests_total{code="200",model="digits",protocol="v2"}' in metrics
    assert "cpuai_request_seconds_bucket" in metrics and 'cpuai_queue_depth{model="digits"}' in metrics
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert "/v2/models/{name}/infer" in client.get("/openapi.json").json()["paths"]


def test_full_queue_answers_503_with_retry_after(repo):
    app = create_app(repo, ServeConfig(max_queue=1, max_batch=1))
    with ServerThread(app) as url:

        async def go():
            async with httpx.AsyncClient(base_url=url, timeout=30) as ac:
                return await asyncio.gather(
                    *(ac.post("/v1/models/echo/predict", content=b"sleep:0.2") for _ in range(6))
                )

        answers = asyncio.run(go())
    codes = sorted(r.status_code for r in answers)
    assert 200 in codes and 503 in codes
    full = next(r for r in answers if r.status_code == 503)
    assert full.headers["retry-after"] == "1"
    assert_error(full, 503, "requests waiting", "retry")


def test_graceful_shutdown_drains_requests_in_flight(repo):
    app = create_app(repo, ServeConfig())
    thread = ServerThread(app)
    url = thread.start()
    results: list[httpx.Response] = []

    async def go():
        async with httpx.AsyncClient(base_url=url, timeout=30) as ac:
            task = asyncio.ensure_future(ac.post("/v1/models/echo/predict", content=b"sleep:0.5"))
            await asyncio.sleep(0.15)
            thread.server.should_exit = True  # what SIGTERM does
            results.append(await task)

    asyncio.run(go())
    thread.thread.join(timeout=30)
    assert results[0].status_code == 200 and results[0].json()["result"]["length"] == 9
    assert not thread.thread.is_alive()


def test_deploy_section_from_tune_sizes_the_engines(digits_onnx_package, tmp_path, expected):
    tuned = pkgmod.copy_with(
        pkgmod.read(digits_onnx_package),
        tmp_path / "tuned",
        deploy=pkgmod.Deploy(backend="onnxruntime", threads=1, streams=2, hint="throughput"),
    )
    x, _, logits = expected
    with ServerThread(create_app(tuned.path, ServeConfig(cores=2))) as url, httpx.Client(base_url=url) as c:
        params = c.get("/v2/models/digits").json()["parameters"]
        assert (params["threads"], params["streams"], params["instances"], params["plan_source"]) == (
            1,
            2,
            1,
            "deploy",
        )

        async def burst():
            async with httpx.AsyncClient(base_url=url, timeout=30) as ac:
                return await asyncio.gather(
                    *(ac.post("/v2/models/digits/infer", json=v2_body(x[i : i + 1])) for i in range(32))
                )

        for i, r in enumerate(asyncio.run(burst())):  # two streams in flight, every answer still its own
            np.testing.assert_allclose(
                np.asarray(r.json()["outputs"][0]["data"]), logits[i], rtol=1e-4, atol=1e-5
            )
