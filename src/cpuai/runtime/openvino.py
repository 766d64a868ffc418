"""The OpenVINO backend: one compiled CPU model with a performance hint, explicit streams and threads.

OpenVINO runs FP32 models in BF16 by default on CPUs with AVX512-BF16 or AMX. An FP32 package
therefore compiles with ``INFERENCE_PRECISION_HINT=f32`` unless ``precision="bf16"`` (or fp16) is
asked for, and ``precision`` reports what the compiled model says it runs, read back from it.
``submit`` runs on ``streams`` infer requests from cpuai's own small thread pool (``PooledEngine``),
not OpenVINO's ``AsyncInferQueue``: its Python completion callbacks run on OpenVINO's threads, and
freeing a compiled model then deadlocks (the main thread holds the GIL while joining a thread that
waits for it) or aborts ("Resource deadlock avoided"). ``InferRequest.infer`` releases the GIL, so
the requests still run in parallel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cpuai.errors import ModelError
from cpuai.runtime.engine import TensorInfo
from cpuai.runtime.pool import PooledEngine

#: OpenVINO element type names to numpy dtype names.
OV_DTYPES = {
    "f32": "float32",
    "f16": "float16",
    "bf16": "bfloat16",
    "f64": "float64",
    "i64": "int64",
    "i32": "int32",
    "i8": "int8",
    "u8": "uint8",
    "boolean": "bool",
}
#: cpuai precision -> INFERENCE_PRECISION_HINT value, and back.
HINT_OF = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}
PRECISION_OF = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}


def _info(port: Any) -> TensorInfo:
    shape = tuple(d.get_length() if d.is_static else -1 for d in port.get_partial_shape())
    kind = port.get_element_type().get_type_name()
    return TensorInfo(port.get_any_name(), OV_DTYPES.get(kind, kind), shape)


def compile_config(*, threads: int, streams: int, hint: str, precision: str) -> dict[str, Any]:
    """The CPU plugin configuration for ``streams`` × ``threads`` at ``precision`` under ``hint``."""
    return {
        "PERFORMANCE_HINT": hint.upper(),
        "NUM_STREAMS": streams,
        "INFERENCE_NUM_THREADS": threads * streams,
        "INFERENCE_PRECISION_HINT": HINT_OF[precision],
    }


class OpenVinoEngine(PooledEngine):
    """An OpenVINO IR (or ONNX file) compiled for the CPU plugin."""

    backend = "openvino"

    def __init__(
        self,
        model: Path,
        *,
        threads: int,
        streams: int,
        hint: str = "latency",
        package_precision: str = "fp32",
        precision: str | None = None,
    ) -> None:
        import openvino as ov

        self.threads, self.streams, self.hint = threads, streams, hint
        wanted = precision or package_precision
        if package_precision == "int8" and wanted == "fp32":
            wanted = "int8"
        core = ov.Core()
        try:
            model_obj = core.read_model(str(model))
        except Exception as err:
            raise ModelError(
                f"openvino cannot read {model}: {type(err).__name__}: {str(err).strip()[:300]}",
                fix="check that the package holds a valid model.xml/model.bin or model.onnx",
            ) from None
        self.config = compile_config(threads=threads, streams=streams, hint=hint, precision=wanted)
        try:
            self.compiled = core.compile_model(model_obj, "CPU", self.config)
        except Exception as err:
            raise ModelError(
                f"openvino cannot compile {model} for CPU: {str(err).strip()[:300]}",
                fix="check the model with --backend onnxruntime, or convert it again",
            ) from None
        ran = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        self.precision = "int8" if package_precision == "int8" else PRECISION_OF.get(ran, ran)
        self.inputs = [_info(p) for p in self.compiled.inputs]
        self.outputs = [_info(p) for p in self.compiled.outputs]
        self._output_names = [o.name for o in self.outputs]
        self._start([self.compiled.create_infer_request() for _ in range(streams)])

    def property(self, name: str) -> Any:
        """A property of the compiled model (e.g. ``NUM_STREAMS``, ``INFERENCE_PRECISION_HINT``)."""
        return self.compiled.get_property(name)

    def _run(self, worker: Any, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # share_inputs: the request reads the caller's (checked, C-contiguous) arrays in place instead
        # of copying them first; safe because infer is synchronous and nothing writes to them. The
        # outputs come back as copies (share_outputs=False): the request's buffers are reused next run.
        results = worker.infer(feeds, share_inputs=True, share_outputs=False)
        return dict(zip(self._output_names, results.to_tuple(), strict=True))
