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


def _search_ids(client: httpx.Client, name: str, vector: np.ndarray, k: int) -> list:
    r = client.post(f"/v1/indexes/{name}/search", json={"vector": vector.tolist(), "k": k})
    assert r.status_code == 200, r.text
    return [h["id"] for h in r.json()["hits"][0]]


def test_adds_and_deletes_survive_a_restart(tmp_path):
    """Add and delete over HTTP, stop the server, start another on the same directory: the changes are there.

    Searches run in another thread throughout the adds and must all succeed.
    """
    import threading

    from cpuai.vectors.changelog import FILE
    from cpuai.vectors.index import VectorIndex
    from cpuai.vectors.synthetic import clustered

    x = clustered(1200, 16, clusters=6, seed=11)  # synthetic clustered vectors
    root = tmp_path / "served"
    VectorIndex("hnsw-sq8", M=16, ef_construction=64).fit(x[:1000]).save(root / "pts")
    added = x[1000:] * 1.0
    with ServerThread(create_app(root)) as url, httpx.Client(base_url=url, timeout=60) as c:
        statuses: list[int] = []
        stop, searching_now = threading.Event(), threading.Event()

        def searching() -> None:
            with httpx.Client(base_url=url, timeout=60) as s:
                while not stop.is_set():
                    r = s.post("/v1/indexes/pts/search", json={"vector": x[7].tolist(), "k": 5})
                    statuses.append(r.status_code)
                    searching_now.set()

        reader = threading.Thread(target=searching)
        reader.start()
        try:
            assert searching_now.wait(30), "the reader never got an answer"  # adds start mid-search
            for start in range(0, 200, 50):  # four adds while the reader searches
                r = c.post(
                    "/v1/indexes/pts/add",
                    json={
                        "vectors": added[start : start + 50].tolist(),
                        "ids": list(range(5000 + start, 5050 + start)),
                    },
                )
                assert r.status_code == 200, r.text
        finally:
            stop.set()
            reader.join()
        assert statuses and set(statuses) == {200}
        assert c.post("/v1/indexes/pts/delete", json={"ids": [7, 5003]}).json()["count"] == 1198
        assert (root / "pts" / FILE).is_file()  # logged before the answer, not yet folded
        # a crash now would lose nothing: a fresh load replays the log over the saved files
        reloaded = VectorIndex.load(root / "pts")
        assert len(reloaded) == 1198 and 5199 in reloaded and 7 not in reloaded
    assert not (root / "pts" / FILE).exists()  # folded into a save on shutdown
    with ServerThread(create_app(root)) as url, httpx.Client(base_url=url, timeout=60) as c:
        assert c.get("/v1/indexes/pts").json()["count"] == 1198
        assert _search_ids(c, "pts", added[10], 1) == [5010]
        assert 7 not in _search_ids(c, "pts", x[7], 10)
        assert 5003 not in _search_ids(c, "pts", added[3], 10)
