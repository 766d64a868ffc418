"""The plain task endpoint: a raw image body (or JSON text) in, labels with scores (or embeddings) out.

``curl -X POST http://localhost:8080/service -T cat.jpg`` works on a one-model server; with several
models use ``/v1/models/{name}/predict``. Text models take ``{"text": "..."}``, ``{"texts": [...]}``
(each text is its own request inside the batcher), a JSON string, or a ``text/plain`` body.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query, Request

from cpuai.errors import InvalidInput
from cpuai.serve.codec import parse_json
from cpuai.serve.model import ServedModel
from cpuai.serve.multipart_form import first_item
from cpuai.serve.protocols.responses import JSON, registry, resolve, tag

router = APIRouter(tags=["plain"])
MAX_TEXTS = 256


def items_from_body(body: bytes, content_type: str, model: ServedModel) -> tuple[list[Any], bool]:
    """A body's items: one image, one text, the texts of ``{"texts": [...]}``, or a multipart
    form's first file (else its first text field)."""
    ctype = content_type.split(";")[0].strip().lower()
    if not body:
        raise InvalidInput(
            "the request body is empty", fix="send an image file (curl -T cat.jpg) or JSON text"
        )
    if ctype == "multipart/form-data":
        return [first_item(body, content_type)], False
    task = model.package.manifest.task
    is_text = task == "text-embedding"
    looks_json = ctype == "application/json" or (is_text and body[:1] in (b"{", b'"', b"["))
    if model.handler is not None:
        return [body], False
    if looks_json:
        if not is_text:
            raise InvalidInput(
                f"model '{model.name}' takes a raw image body, not JSON",
                fix="send the image bytes: curl -X POST URL -T image.png",
            )
        data = parse_json(body)
        if isinstance(data, str):
            data = {"text": data}
        if not isinstance(data, dict) or ("text" in data) == ("texts" in data):
            raise InvalidInput(
                "a text request needs exactly one of 'text' or 'texts'",
                fix='send {"text": "..."} or {"texts": ["...", "..."]}',
            )
        texts = data.get("texts", [data.get("text")])
        many = "texts" in data
        if not isinstance(texts, list) or not texts or len(texts) > MAX_TEXTS:
            raise InvalidInput(f"'texts' must be a list of 1 to {MAX_TEXTS} strings", fix="split the request")
        for i, t in enumerate(texts):
            if not isinstance(t, str) or not t.strip():
                where = f"texts[{i}]" if many else "text"
                raise InvalidInput(f"{where} must be a non-empty string, got {t!r:.60}", fix="send text")
        return texts, many
    if is_text:
        try:
            return [body.decode("utf-8")], False
        except UnicodeDecodeError:
            raise InvalidInput(
                "the body is not UTF-8 text", fix='send UTF-8 text or {"text": "..."}'
            ) from None
    return [body], False


async def answer(
    model: ServedModel, items: list[Any], many: bool, content_type: str, top_k: int
) -> dict[str, Any]:
    """The plain endpoint's answer: labels with scores, an embedding (or several), or a handler's result."""
    if len(items) == 1:  # the usual request: awaited here, not wrapped in a task of its own by gather
        answers = [await model.predict(items[0], content_type=content_type, top_k=top_k)]
    else:
        calls = (model.predict(i, content_type=content_type, top_k=top_k) for i in items)
        answers = await asyncio.gather(*calls)
    out: dict[str, Any] = {"model_name": model.name, "model_version": str(model.version)}
    if model.handler is not None:
        out["result"] = answers[0]
    elif model.package.manifest.task == "text-embedding":
        vectors = [a["embedding"] if isinstance(a, dict) else a for a in answers]
        if many:
            out["embeddings"] = vectors
        else:
            out["embedding"] = vectors[0]
        out["dim"] = len(vectors[0])
    else:
        out["predictions"] = answers[0]
    return out


async def _answer(request: Request, model: ServedModel, top_k: int) -> JSON:
    items, many = items_from_body(await request.body(), request.headers.get("content-type", ""), model)
    return JSON(await answer(model, items, many, request.headers.get("content-type", ""), top_k))


@router.post("/v1/models/{name}/predict")
@router.put("/v1/models/{name}/predict", include_in_schema=False)
async def predict(
    request: Request, name: str, top_k: int = Query(5, ge=1, le=1000, description="labels to return")
) -> JSON:
    """Answer a raw image with its top labels, or a text with its embedding."""
    model = resolve(request, "plain", name)
    return await _answer(request, model, top_k)


@router.post("/service")
@router.put("/service", include_in_schema=False)
async def service(request: Request, top_k: int = Query(5, ge=1, le=1000)) -> JSON:
    """The one model of a one-model server (``curl -X POST host:8080/service -T cat.jpg``)."""
    model = registry(request).only()
    tag(request, "plain", model.name)
    return await _answer(request, model, top_k)
