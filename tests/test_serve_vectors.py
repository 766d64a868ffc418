"""cpuai serve mounts vector indexes found in the served directory under /v1/indexes (real HTTP)."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from cpuai import package as pkgmod
from cpuai.serve import ServeConfig, ServerThread, create_app


@pytest.fixture(scope="module")
def served(digits_onnx_package, digits_arrays, tmp_path_factory):
    """A repository holding the digits model and 'digits-pixels', an index of real digit images as vectors."""
    pytest.importorskip("faiss")
    from cpuai.vectors.index import VectorIndex

    root = tmp_path_factory.mktemp("served")
    pkgmod.Repository(root).add(pkgmod.read(digits_onnx_package), name="digits", version=1)
    x, _ = digits_arrays
    vectors = x[:300, 0, ::4, ::4].reshape(300, -1).astype(np.float32)  # the 8x8 digits as 64-d vectors
    VectorIndex("flat", metric="cosine").fit(vectors, ids=np.arange(300)).save(root / "digits-pixels")
    app = create_app(root, ServeConfig(token="tok"))
    with ServerThread(app) as url:
        yield url, vectors


def test_index_routes_share_auth_errors_and_metrics(served):
    url, vectors = served
    auth = {"authorization": "Bearer tok"}
    with httpx.Client(base_url=url, headers=auth, timeout=30) as c:
        r = c.post("/v1/indexes/digits-pixels/search", json={"vector": vectors[7].tolist(), "k": 3})
        assert r.status_code == 200, r.text
        assert r.json()["hits"][0][0]["id"] == 7  # a vector is its own nearest neighbour
        added = c.post(
            "/v1/indexes/digits-pixels/add", json={"vectors": [vectors[0].tolist()], "ids": [1000]}
        )
        assert added.status_code == 200 and added.json()["count"] == 301
        assert c.post("/v1/indexes/digits-pixels/delete", json={"ids": [1000]}).json()["count"] == 300
        missing = c.post("/v1/indexes/nope/search", json={"vector": [0.0] * 64})
        assert (
            missing.status_code == 404
            and list(missing.json()) == ["error"]
            and "nope" in missing.json()["error"]
        )
        bad = c.post("/v1/indexes/digits-pixels/search", json={"k": 3})
        assert bad.status_code == 400 and list(bad.json()) == ["error"]
        assert (
            c.post(
                "/v2/models/digits/infer",
                json={
                    "inputs": [
                        {"name": "input", "shape": [1, 1, 32, 32], "datatype": "FP32", "data": [0.0] * 1024}
                    ]
                },
            ).status_code
            == 200
        )
        assert 'model="digits-pixels",protocol="vectors"' in c.get("/metrics").text
    r = httpx.post(f"{url}/v1/indexes/digits-pixels/search", json={"vector": vectors[0].tolist()})
    assert r.status_code == 401
