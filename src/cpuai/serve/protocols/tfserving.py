"""TF-Serving REST: ``:predict`` with ``instances`` (rows) or ``inputs`` (columns), and model status."""

from __future__ import annotations

from fastapi import APIRouter, Request

from cpuai.errors import InvalidInput
from cpuai.serve.codec import parse_json, tf_inputs, tf_instances, tf_outputs
from cpuai.serve.protocols.responses import JSON, registry, resolve, tag

router = APIRouter(tags=["TF-Serving"])


@router.post("/v1/models/{name}:predict")
@router.post("/v1/models/{name}/versions/{version}:predict")
async def tf_predict(request: Request, name: str, version: str | None = None) -> JSON:
    """Run the model on ``instances`` or ``inputs``; answer ``predictions`` or ``outputs``."""
    tag(request, "tfserving", name)
    body = parse_json(await request.body())
    model = resolve(request, "tfserving", name, version)
    if not isinstance(body, dict) or ("instances" in body) == ("inputs" in body):
        raise InvalidInput(
            "a TF-Serving request needs exactly one of 'instances' or 'inputs'",
            fix='send {"instances": [...]} or {"inputs": ...}',
        )
    names = [t.name for t in model.inputs]
    dtypes = {t.name: t.dtype for t in model.inputs}
    rows = "instances" in body
    feeds = (
        tf_instances(body["instances"], names, dtypes) if rows else tf_inputs(body["inputs"], names, dtypes)
    )
    outputs = await model.infer(feeds)
    return JSON(tf_outputs(outputs, rows=rows))


@router.get("/v1/models/{name}")
@router.get("/v1/models/{name}/versions/{version}")
async def status(request: Request, name: str, version: str | None = None) -> JSON:
    """TF-Serving model status: the loaded version is AVAILABLE."""
    model = resolve(request, "tfserving", name, version)
    state = "AVAILABLE" if model.ready() else "UNAVAILABLE"
    return JSON(
        {
            "model_version_status": [
                {
                    "version": str(model.version),
                    "state": state,
                    "status": {"error_code": "OK", "error_message": ""},
                }
            ]
        }
    )


@router.get("/v1/models/{name}/metadata")
async def metadata(request: Request, name: str) -> JSON:
    model = resolve(request, "tfserving", name)
    sig = {
        "inputs": {t.name: {"dtype": t.dtype, "tensor_shape": list(t.shape)} for t in model.inputs},
        "outputs": {t.name: {"dtype": t.dtype, "tensor_shape": list(t.shape)} for t in model.outputs},
    }
    return JSON(
        {
            "model_spec": {"name": name, "version": str(model.version)},
            "metadata": {"signature_def": {"serving_default": sig}},
            "versions": [str(v) for v in registry(request).versions(name)],
        }
    )
