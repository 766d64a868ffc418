"""The plain endpoint's bare-ASGI fast path: same answers and errors as the FastAPI route, over real HTTP."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest

from cpuai.serve import ServeConfig, ServerThread, create_app
from cpuai.serve.fast_path import route, top_k_of


def png(image01: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.round(image01 * 255).astype(np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def test_route_and_top_k_decide_what_the_fast_path_takes():
    assert route("/service") == ""
    assert route("/v1/models/digits/predict") == "digits"
    for other in ("/v1/models//predict", "/v1/models/a/b/predict", "/v2/models/x/infer", "/metrics"):
        assert route(other) is None
    assert top_k_of(b"") == 5 and top_k_of(b"top_k=3") == 3
    for left_to_fastapi in (b"top_k=0", b"top_k=1001", b"top_k=x", b"top_k=2&debug=1", b"via=fastapi"):
        assert top_k_of(left_to_fastapi) is None  # FastAPI answers (or validates) these


@pytest.fixture(scope="module")
def served(digits_onnx_package):
    app = create_app(digits_onnx_package, ServeConfig(token="s3cret", max_body_bytes=64 * 1024))
    auth = {"authorization": "Bearer s3cret"}
    with ServerThread(app) as url, httpx.Client(base_url=url, timeout=30, headers=auth) as c:
        yield c


def test_fast_path_answers_like_the_fastapi_route(served, digits_arrays):
    x, _ = digits_arrays
    for i in range(4):
        body = png(x[i, 0])
        fast = served.post("/service?top_k=3", content=body)
        via_router = served.post("/service?top_k=3&via=router", content=body)  # an extra parameter: FastAPI
        files = {"file": ("d.png", body, "image/png")}
        multipart = served.post("/service?top_k=3", files=files)
        multipart_router = served.post("/service?top_k=3&via=router", files=files)
        answers = [fast, via_router, multipart, multipart_router]
        assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
        assert fast.json() == via_router.json() == multipart.json() == multipart_router.json()
        assert len(fast.json()["predictions"]) == 3
        assert fast.headers["content-type"] == "application/json" and fast.headers["x-request-id"]


def test_fast_path_errors_match_the_route_and_keep_the_operations_layer(served, digits_arrays):
    x, _ = digits_arrays
    for path in ("/service", "/service?via=router"):
        r = served.post(path, content=b"")
        assert r.status_code == 400 and "body is empty" in r.json()["error"]
        r = served.post(path, content=b'{"text": "hi"}', headers={"content-type": "application/json"})
        assert r.status_code == 400 and "raw image body, not JSON" in r.json()["error"]
        r = served.post(path, data={"note": ""}, files={"empty": ("e.txt", b"", "text/plain")})
        assert r.status_code == 400, r.text
    empty_form = b'--B\r\nContent-Disposition: form-data; name="note"\r\n\r\n\r\n--B--\r\n'
    for path in ("/service", "/service?via=router"):  # a form with neither file nor text
        r = served.post(path, content=empty_form, headers={"content-type": "multipart/form-data; boundary=B"})
        assert r.status_code == 400 and "no file and no text" in r.json()["error"]
        r = served.post(path, content=empty_form, headers={"content-type": "multipart/form-data"})
        assert r.status_code == 400 and "no boundary" in r.json()["error"], r.text
        cut = empty_form[:-8]  # the client stopped before the closing boundary
        r = served.post(path, content=cut, headers={"content-type": "multipart/form-data; boundary=B"})
        assert r.status_code == 400 and "closing boundary" in r.json()["error"], r.text
        files = {"meta": (None, b"a note"), "file": ("d.png", png(x[0, 0]), "image/png")}
        r = served.post(path, files=files)  # a text field before the file: the file is the item
        raw = served.post("/service", content=png(x[0, 0]))
        assert r.status_code == 200 and r.json()["predictions"] == raw.json()["predictions"], r.text
    r = served.post("/v1/models/nope/predict", content=png(x[0, 0]))
    assert r.status_code == 404 and "nope" in r.json()["error"]
    r = served.post("/service?top_k=0", content=png(x[0, 0]))  # out of range: FastAPI's validation answers
    assert r.status_code == 400 and "top_k" in r.json()["error"]
    # the operations layer still wraps the fast path: token, body limit, request id, metrics
    r = served.post("/service", content=png(x[0, 0]), headers={"authorization": "Bearer wrong"})
    assert r.status_code == 401
    big = served.post("/service", content=b"\x89PNG" + b"0" * (70 * 1024))
    assert big.status_code == 413 and "limit" in big.json()["error"]
    r = served.post("/service", content=png(x[1, 0]), headers={"x-request-id": "abc-123"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "abc-123"
    metrics = served.get("/metrics").text
    assert 'cpuai_requests_total{code="200",model="' in metrics and 'protocol="plain"' in metrics
    assert 'code="404",model="nope",protocol="plain"' in metrics
    # a bad body is not an image: 400, and the server keeps answering
    r = served.post("/service", content=b"not an image at all")
    assert r.status_code == 400
    assert served.post("/service", content=png(x[2, 0])).status_code == 200
