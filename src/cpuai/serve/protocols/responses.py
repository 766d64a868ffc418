"""Helpers every protocol router uses: fast JSON answers and tagging a request with its model."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response

from cpuai.serve.model import ServedModel
from cpuai.serve.registry import Registry


class JSON(Response):
    """A JSON response serialised with orjson (numpy arrays allowed)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def registry(request: Request) -> Registry:
    return request.app.state.registry


def tag(request: Request, protocol: str, model: str) -> None:
    """Label this request for the metrics and access log (read back by the middleware)."""
    request.scope.setdefault("state", {})["cpuai"] = (model, protocol)


def resolve(request: Request, protocol: str, name: str, version: str | None = None) -> ServedModel:
    tag(request, protocol, name)
    return registry(request).get(name, version)
