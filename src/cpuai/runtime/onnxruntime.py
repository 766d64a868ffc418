"""The ONNX Runtime backend: a pool of ``streams`` CPU sessions, each with ``threads`` intra-op threads.

Threads × streams is the engine's whole core budget. With several streams the sessions stop
spin-waiting between runs, so idle streams do not steal cores from busy ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cpuai.errors import ConfigError, ModelError
from cpuai.runtime.engine import TensorInfo
from cpuai.runtime.pool import PooledEngine

#: ONNX Runtime type strings to numpy dtype names.
ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
    "tensor(bfloat16)": "bfloat16",
}


def _info(arg: Any) -> TensorInfo:
    shape = tuple(d if isinstance(d, int) and d > 0 else -1 for d in (arg.shape or []))
    return TensorInfo(arg.name, ORT_DTYPES.get(arg.type, arg.type), shape)


def session_options(threads: int, streams: int) -> Any:
    """SessionOptions for one stream: ``threads`` intra-op threads, sequential graph, full optimisation."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    if streams > 1:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


class OnnxRuntimeEngine(PooledEngine):
    """An ONNX model on ONNX Runtime's CPU execution provider."""

    backend = "onnxruntime"

    def __init__(
        self, model: Path, *, threads: int, streams: int, hint: str = "latency", precision: str = "fp32"
    ) -> None:
        import onnxruntime as ort

        if precision == "bf16":
            raise ConfigError(
                "onnxruntime on CPU runs this model in fp32, not bf16",
                fix="use --backend openvino for bf16, or precision fp32",
            )
        self.threads, self.streams, self.hint, self.precision = threads, streams, hint, precision
        try:
            sessions = [
                ort.InferenceSession(
                    str(model),
                    sess_options=session_options(threads, streams),
                    providers=["CPUExecutionProvider"],
                )
                for _ in range(streams)
            ]
        except Exception as err:  # InvalidProtobuf, Fail, NotImplemented, ...
            raise ModelError(
                f"onnxruntime cannot load {model}: {type(err).__name__}: {str(err).strip()[:300]}",
                fix="check that the file is a valid ONNX model (re-create it with cpuai convert)",
            ) from None
        self.inputs = [_info(a) for a in sessions[0].get_inputs()]
        self.outputs = [_info(a) for a in sessions[0].get_outputs()]
        self._output_names = [o.name for o in self.outputs]
        self._start(sessions)

    def _run(self, worker: Any, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = worker.run(self._output_names, feeds)
        return dict(zip(self._output_names, results, strict=True))
