"""HTTP routes for vector indexes, mounted by ``cpuai serve`` under ``/v1/indexes``.

    GET  /v1/indexes                  every index with its counts and settings
    GET  /v1/indexes/{name}           one index
    POST /v1/indexes/{name}/search    one of {"vector": [...]}, {"vectors": [[...]]}, {"text": "..."},
                                      {"texts": [...]}; "k": 10, "filter": [ids]
                                      ->  {"hits": [[{"id", "score", "text"}]]}
    POST /v1/indexes/{name}/add       {"vectors": [[...]] or "texts": [...], "ids": [...]}
                                      ->  {"added", "ids", "count"}
    POST /v1/indexes/{name}/delete    {"ids": [...]}  ->  {"deleted", "count"}

Errors are ``CpuaiError`` subclasses; the serve app turns them into 4xx ``{"error": "..."}`` and
applies its auth and metrics middleware to these routes like to the model routes. Adds and deletes
of an index served from a directory are persisted: each change is applied in memory and appended to
the directory's write-ahead log (``cpuai.vectors.changelog``, fsync'd) before the answer; the log is
replayed on load and folded into a full save past its size limit and on shutdown. Indexes passed in
as ``VectorIndex`` objects stay in memory only. Searches keep running while a change is logged.
Texts are embedded with the model the index was built with (its ``model`` setting), loaded once
per index.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from cpuai.errors import ConfigError, InvalidInput
from cpuai.vectors.changelog import FOLD_BYTES, ChangeLog
from cpuai.vectors.index import VectorIndex, as_matrix

try:  # the serve app maps its NotFound to 404; without serve, a plain 4xx error still applies
    from cpuai.serve.errors import NotFound as _NotFoundBase
except ImportError:  # pragma: no cover
    _NotFoundBase = InvalidInput  # type: ignore[misc,assignment]

Id = int | str


class IndexNotFound(_NotFoundBase):  # type: ignore[misc,valid-type]
    """No index of that name is served (404)."""


class SearchRequest(BaseModel):
    """One or more queries as vectors or texts, with k and an optional allowed-id filter."""

    model_config = ConfigDict(extra="forbid")
    vector: list[float] | None = None
    vectors: list[list[float]] | None = None
    text: str | None = None
    texts: list[str] | None = None
    k: int = 10
    filter: list[Id] | None = Field(default=None, description="Only these ids may be returned.")


class AddRequest(BaseModel):
    """Vectors (or texts to embed) to add, with optional ids and texts to keep beside them."""

    model_config = ConfigDict(extra="forbid")
    vectors: list[list[float]] | None = None
    texts: list[str] | None = None
    ids: list[Id] | None = None


class DeleteRequest(BaseModel):
    """Ids to delete."""

    model_config = ConfigDict(extra="forbid")
    ids: list[Id]


IndexSource = Mapping[str, VectorIndex | str | Path] | Callable[[str], VectorIndex | None]


class IndexSet:
    """Named indexes, loaded lazily (memory-mapped) from paths or a loader, with their text embedders."""

    def __init__(
        self, source: IndexSource, *, threads: int | None = None, fold_bytes: int = FOLD_BYTES
    ) -> None:
        self._source = source
        self._threads = threads
        self._fold_bytes = fold_bytes
        self._loaded: dict[str, VectorIndex] = {}
        self._logs: dict[str, ChangeLog] = {}
        self._embedders: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._writers: dict[str, threading.Lock] = {}

    def names(self) -> list[str]:
        return sorted(self._source) if isinstance(self._source, Mapping) else sorted(self._loaded)

    def get(self, name: str) -> VectorIndex:
        with self._lock:
            if name in self._loaded:
                return self._loaded[name]
            if isinstance(self._source, Mapping):
                item = self._source.get(name)
                if isinstance(item, str | Path):
                    self._logs[name] = ChangeLog(item, fold_bytes=self._fold_bytes)
                    item = VectorIndex.load(item, mmap=True, threads=self._threads)
            else:
                item = self._source(name)
            if item is None:
                raise IndexNotFound(
                    f"index {name!r} is not served here (indexes: {', '.join(self.names()) or 'none'})",
                    fix="use GET /v1/indexes for the list",
                )
            self._loaded[name] = item
            return item

    def writer(self, name: str) -> threading.Lock:
        """The lock one index's writers hold across "change it, then log the change"."""
        with self._lock:
            log = self._logs.get(name)
            if log is not None:
                return log.lock
            return self._writers.setdefault(name, threading.Lock())

    def changelog(self, name: str) -> ChangeLog | None:
        """The write-ahead log of an index served from a directory (None for in-memory ones)."""
        return self._logs.get(name)

    def embed(self, name: str, index: VectorIndex, texts: list[str]) -> np.ndarray:
        if not index.model:
            raise InvalidInput(
                f"index {name!r} was built from vectors, so texts cannot be embedded",
                fix="send vectors, or build the index from texts with --model",
            )
        with self._lock:
            embedder = self._embedders.get(name)
            if embedder is None:
                from cpuai.vectors.embedding import TextEmbedder

                embedder = self._embedders[name] = TextEmbedder(index.model, threads=self._threads)
        return embedder.embed(texts)

    def close(self) -> None:
        """Fold every change log into its index's files (the server calls this on shutdown)."""
        for name, log in list(self._logs.items()):
            index = self._loaded.get(name)
            if index is not None:
                log.fold(index)
        for embedder in self._embedders.values():
            embedder.close()


def _queries(req: SearchRequest) -> tuple[str, Any]:
    given = [
        (f, getattr(req, f)) for f in ("vector", "vectors", "text", "texts") if getattr(req, f) is not None
    ]
    if len(given) != 1:
        names = ", ".join(f for f, _ in given) or "none"
        raise InvalidInput(
            f"give exactly one of vector, vectors, text, texts (got {names})",
            fix='e.g. {"text": "read a file", "k": 5}',
        )
    field, value = given[0]
    if field in ("vector", "text"):
        value = [value]
    if len(value) == 0:
        raise InvalidInput(f"{field} is empty", fix="send at least one query")
    return ("texts" if field.startswith("text") else "vectors"), value


def _jsonable(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def make_router(
    indexes: IndexSource, *, threads: int | None = None, fold_bytes: int = FOLD_BYTES
) -> APIRouter:
    """An APIRouter serving ``indexes`` (name -> VectorIndex or index directory, or a loader function).

    Changes to directory-backed indexes are logged and folded past ``fold_bytes`` (see module doc).
    """
    if not isinstance(indexes, Mapping) and not callable(indexes):
        raise ConfigError(
            f"indexes must be a mapping of name to index or a loader, got {type(indexes).__name__}",
            fix="pass {'docs': 'path/to/index'}",
        )
    store = IndexSet(indexes, threads=threads, fold_bytes=fold_bytes)
    router = APIRouter(prefix="/v1/indexes", tags=["vectors"])
    router.state = store  # type: ignore[attr-defined]

    @router.get("")
    def list_indexes() -> dict[str, Any]:
        return {"indexes": [{"name": n, **store.get(n).stats()} for n in store.names()]}

    @router.get("/{name}")
    def describe(name: str) -> dict[str, Any]:
        return {"name": name, **store.get(name).stats()}

    @router.post("/{name}/search")
    def search(name: str, req: SearchRequest) -> dict[str, Any]:
        index = store.get(name)
        what, value = _queries(req)
        q = store.embed(name, index, value) if what == "texts" else value
        ids, scores = index.search(q, req.k, filter=req.filter)
        hits = []
        for row_ids, row_scores in zip(ids, scores, strict=True):
            found = [
                (_jsonable(i), float(s))
                for i, s in zip(row_ids.tolist(), row_scores.tolist(), strict=True)
                if i is not None and i != -1
            ]
            texts = index.texts([i for i, _ in found])
            hits.append(
                [
                    {"id": i, "score": s, **({"text": t} if t is not None else {})}
                    for (i, s), t in zip(found, texts, strict=True)
                ]
            )
        return {"index": name, "k": req.k, "hits": hits}

    @router.post("/{name}/add")
    def add(name: str, req: AddRequest) -> dict[str, Any]:
        index = store.get(name)
        if (req.vectors is None) == (req.texts is None) and req.vectors is None:
            raise InvalidInput("give vectors or texts to add", fix='e.g. {"texts": ["..."], "ids": [1]}')
        vectors: Any
        if req.vectors is not None:
            vectors = req.vectors
        else:
            assert req.texts is not None
            if not req.texts:
                raise InvalidInput("texts is empty", fix="send at least one text")
            vectors = store.embed(name, index, req.texts)
        x = as_matrix(vectors, index.dim)
        log = store.changelog(name)
        with store.writer(name):
            added = index.add(x, ids=req.ids, texts=req.texts)
            if log is not None:
                log.record_add(added, x, req.texts)
        if log is not None:
            log.maybe_fold(index)
        return {
            "index": name,
            "added": len(added),
            "ids": [_jsonable(i) for i in added.tolist()],
            "count": len(index),
        }

    @router.post("/{name}/delete")
    def delete(name: str, req: DeleteRequest) -> dict[str, Any]:
        index = store.get(name)
        log = store.changelog(name)
        with store.writer(name):
            n = index.delete(req.ids)
            if log is not None:
                log.record_delete(req.ids)
        if log is not None:
            log.maybe_fold(index)
        return {"index": name, "deleted": n, "count": len(index)}

    return router
