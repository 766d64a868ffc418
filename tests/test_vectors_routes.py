"""Vector indexes served by the real cpuai serve app over loopback HTTP: search, add, delete, errors, auth."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from cpuai.serve import ServeConfig, ServerThread, create_app
from cpuai.vectors import VectorIndex
from cpuai.vectors.synthetic import clustered

TOKEN = "s3cret"


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    """600 synthetic clustered vectors of dim 16."""
    return clustered(600, 16, clusters=8, seed=3)


@pytest.fixture(scope="module")
def server(digits_onnx_package, vectors, tmp_path_factory):
    path = tmp_path_factory.mktemp("idx") / "points"
    VectorIndex("hnsw-sq8", M=16, ef_construction=64).fit(
        vectors, texts=[f"point {i}" for i in range(600)]
    ).save(path)
    live = VectorIndex("hnsw", M=16).fit(vectors[:100], ids=[f"p{i}" for i in range(100)])
    app = create_app(digits_onnx_package, ServeConfig(token=TOKEN), indexes={"points": path, "named": live})
    with ServerThread(app) as url:
        yield url


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server, timeout=30, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        yield c


def error_of(r: httpx.Response, status: int, *words: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    for w in words:
        assert w in body["error"]
    return body["error"]


def test_search_add_delete_round_trip(client, vectors):
    r = client.post("/v1/indexes/points/search", json={"vector": vectors[5].tolist(), "k": 3})
    assert r.status_code == 200, r.text
    hits = r.json()["hits"][0]
    assert hits[0]["id"] == 5 and hits[0]["text"] == "point 5" and len(hits) == 3
    r = client.post(
        "/v1/indexes/points/search", json={"vectors": vectors[:4].tolist(), "k": 2, "filter": [1, 2, 3]}
    )
    rows = r.json()["hits"]
    assert len(rows) == 4 and all({h["id"] for h in row} <= {1, 2, 3} for row in rows)
    assert rows[1][0]["id"] == 1
    r = client.post("/v1/indexes/points/delete", json={"ids": [5]})
    assert r.json() == {"index": "points", "deleted": 1, "count": 599}
    r = client.post("/v1/indexes/points/search", json={"vector": vectors[5].tolist(), "k": 10})
    assert 5 not in [h["id"] for h in r.json()["hits"][0]]
    new = (vectors[5] * 1.01).tolist()
    r = client.post("/v1/indexes/points/add", json={"vectors": [new], "ids": [9000]})
    assert r.json()["added"] == 1 and r.json()["ids"] == [9000]
    r = client.post("/v1/indexes/points/search", json={"vector": new, "k": 1})
    assert r.json()["hits"][0][0]["id"] == 9000


def test_string_ids_and_listing(client, vectors):
    r = client.post("/v1/indexes/named/search", json={"vector": vectors[7].tolist(), "k": 1})
    assert r.json()["hits"][0][0]["id"] == "p7"
    listing = client.get("/v1/indexes").json()["indexes"]
    assert {i["name"] for i in listing} == {"points", "named"}
    assert client.get("/v1/indexes/named").json()["count"] == 100


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/v1/indexes/points/search", {"vector": [0.0] * 8, "k": 3}, 400, ("dimension 8", "dimension 16")),
        ("/v1/indexes/points/search", {"vector": [0.0] * 16, "k": 0}, 400, ("k must be a positive integer",)),
        ("/v1/indexes/points/search", {"k": 3}, 400, ("exactly one of vector",)),
        ("/v1/indexes/points/search", {"text": "hello"}, 400, ("built from vectors",)),
        (
            "/v1/indexes/points/add",
            {"vectors": [[0.0] * 16], "ids": [1]},
            400,
            ("already in the index", "[1]"),
        ),
        (
            "/v1/indexes/points/add",
            {"vectors": [[0.0] * 16, [1.0] * 16], "ids": [7777, 7777]},
            400,
            ("duplicate",),
        ),
        ("/v1/indexes/points/delete", {"ids": [123456]}, 400, ("not in the index", "123456")),
        ("/v1/indexes/nope/search", {"vector": [0.0] * 16}, 404, ("'nope'", "points")),
        ("/v1/indexes/points/search", {"vector": [0.0] * 16, "bogus": 1}, 400, ("bogus",)),
    ],
)
def test_bad_requests_are_one_line_4xx(client, path, body, status, words):
    error_of(client.post(path, json=body), status, *words)


def test_nan_vector_is_refused(client):
    r = client.post(
        "/v1/indexes/points/search",
        content=b'{"vector": [NaN' + b", 0.0" * 15 + b"]}",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400


def test_auth_applies_to_index_routes(server):
    with httpx.Client(base_url=server, timeout=30) as anonymous:
        error_of(anonymous.post("/v1/indexes/points/search", json={"vector": [0.0] * 16}), 401)
