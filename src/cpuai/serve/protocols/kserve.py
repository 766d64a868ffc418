"""KServe v2 / Open Inference Protocol REST, with the binary tensor extension and repository extension.

Binary extension: the body is a JSON header followed by raw tensor bytes; the header's byte length
is in ``Inference-Header-Content-Length``; inputs with ``parameters.binary_data_size`` take their
bytes in order. Outputs asked for with ``parameters.binary_data: true`` (or the request parameter
``binary_data_output: true``) come back the same way.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

import cpuai
from cpuai.errors import InvalidInput
from cpuai.serve.codec import HEADER_LENGTH, V2_TO_NUMPY, decode_v2_inputs, encode_v2_outputs, split_binary
from cpuai.serve.protocols.responses import JSON, registry, resolve, tag

router = APIRouter(tags=["KServe v2"])


@router.get("/v2")
async def server_metadata() -> JSON:
    """Server name, version and protocol extensions."""
    return JSON(
        {
            "name": "cpuai",
            "version": cpuai.__version__,
            "extensions": ["binary_tensor_data", "model_repository"],
        }
    )


@router.get("/v2/health/live")
async def live() -> JSON:
    return JSON({"live": True})


@router.get("/v2/health/ready")
async def ready(request: Request) -> JSON:
    """Ready when every model meant to be served is loaded and none failed to load."""
    reg = registry(request)
    ok = (
        bool(reg.models or request.app.state.indexes)
        and not reg.failed
        and all(m.ready() for m in reg.models.values())
    )
    return JSON({"ready": ok}, status_code=200 if ok else 503)


@router.get("/v2/models/{name}")
@router.get("/v2/models/{name}/versions/{version}")
async def model_metadata(request: Request, name: str, version: str | None = None) -> JSON:
    model = resolve(request, "v2", name, version)
    return JSON(model.metadata(registry(request).versions(name)))


@router.get("/v2/models/{name}/ready")
@router.get("/v2/models/{name}/versions/{version}/ready")
async def model_ready(request: Request, name: str, version: str | None = None) -> JSON:
    model = resolve(request, "v2", name, version)
    return JSON({"name": name, "ready": model.ready()}, status_code=200 if model.ready() else 503)


def _binary_outputs(header: dict[str, Any], names: list[str]) -> tuple[list[str], set[str]]:
    """The outputs asked for (all by default) and those wanted as binary data."""
    default_binary = bool((header.get("parameters") or {}).get("binary_data_output", False))
    asked = header.get("outputs")
    if asked is None:
        return names, set(names) if default_binary else set()
    if not isinstance(asked, list):
        raise InvalidInput(
            "'outputs' must be a list of {name, parameters}", fix='send "outputs": [{"name": ...}]'
        )
    chosen: list[str] = []
    binary: set[str] = set()
    for spec in asked:
        name = spec.get("name") if isinstance(spec, dict) else None
        if name not in names:
            raise InvalidInput(
                f"output {name!r} is not an output of the model (outputs: {', '.join(names)})",
                fix="ask for one of the model's outputs or leave 'outputs' out",
            )
        chosen.append(name)
        if (spec.get("parameters") or {}).get("binary_data", default_binary):
            binary.add(name)
    return chosen, binary


@router.post("/v2/models/{name}/infer")
@router.post("/v2/models/{name}/versions/{version}/infer")
async def infer(request: Request, name: str, version: str | None = None) -> Response:
    """Run the model on the request's tensors (JSON data or binary extension)."""
    tag(request, "v2", name)
    body = await request.body()
    header, binary = split_binary(body, request.headers.get(HEADER_LENGTH))
    model = resolve(request, "v2", name, version)
    feeds, datatypes = decode_v2_inputs(header, binary)
    expected = {t.name: t for t in model.inputs}
    for input_name, datatype in datatypes.items():
        info = expected.get(input_name)
        if info is not None and V2_TO_NUMPY[datatype] != info.dtype:
            want = next((k for k, v in V2_TO_NUMPY.items() if v == info.dtype), info.dtype)
            raise InvalidInput(
                f"input '{input_name}' has datatype {datatype} but model '{name}' takes {want}",
                fix=f"send {want} data",
            )
    outputs = await model.infer(feeds)
    chosen, binary_names = _binary_outputs(header, list(outputs))
    specs, raw = encode_v2_outputs({k: outputs[k] for k in chosen}, binary_names)
    answer = {
        "model_name": name,
        "model_version": str(model.version),
        "id": header.get("id") or request.scope.get("cpuai_request_id", ""),
        "outputs": specs,
    }
    head = orjson.dumps(answer)
    if not raw:
        return Response(head, media_type="application/json")
    return Response(
        head + raw,
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(len(head))},
    )


@router.get("/v2/repository/index")
@router.post("/v2/repository/index")
async def repository_index(request: Request) -> JSON:
    """Every model version on disk and its state (READY, UNAVAILABLE, ...)."""
    return JSON(registry(request).index())


@router.post("/v2/repository/models/{name}/load")
async def load_model(request: Request, name: str) -> JSON:
    tag(request, "repository", name)
    model = await registry(request).load(name)
    return JSON({"name": name, "version": str(model.version), "state": model.state})


@router.post("/v2/repository/models/{name}/unload")
async def unload_model(request: Request, name: str) -> JSON:
    tag(request, "repository", name)
    await registry(request).unload(name)
    return JSON({"name": name, "state": "UNAVAILABLE"})
