"""The ONNX Runtime backend: a pool of ``streams`` CPU sessions, each with ``threads`` intra-op threads.

Threads × streams is the engine's whole core budget. ``spin`` says whether the intra-op threads
spin-wait between runs (``session.intra_op.allow_spinning``): spinning shaves the wake-up off the
next run, which helps batch-1 latency when runs come back to back (a benchmark, ``cpuai tune``), but
the spinning threads keep their cores busy while the process does other work. ``spin=None`` (the
default) spins with one stream and not with several, so idle streams do not steal cores from busy
ones. ``cpuai serve --no-spin`` passes ``spin=False`` for hosts whose cores other work needs.
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


def spins(streams: int, spin: bool | None) -> bool:
    """Whether the sessions spin-wait: ``spin`` if given, else only with a single stream."""
    return streams == 1 if spin is None else spin


def session_options(threads: int, streams: int, spin: bool | None = None) -> Any:
    """SessionOptions for one stream: ``threads`` intra-op threads, sequential graph, full optimisation.

    Spin-waiting follows ``spins(streams, spin)`` and is always written out, so the session's config
    says what it does rather than relying on onnxruntime's default (which spins).
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spins(streams, spin) else "0")
    return so


class OnnxRuntimeEngine(PooledEngine):
    """An ONNX model on ONNX Runtime's CPU execution provider."""

    backend = "onnxruntime"

    def __init__(
        self,
        model: Path,
        *,
        threads: int,
        streams: int,
        hint: str = "latency",
        precision: str = "fp32",
        spin: bool | None = None,
    ) -> None:
        import onnxruntime as ort

        if precision == "bf16":
            raise ConfigError(
                "onnxruntime on CPU runs this model in fp32, not bf16",
                fix="use --backend openvino for bf16, or precision fp32",
            )
        self.threads, self.streams, self.hint, self.precision = threads, streams, hint, precision
        self.spin = spins(streams, spin)
        try:
            sessions = [
                ort.InferenceSession(
                    str(model),
                    sess_options=session_options(threads, streams, spin),
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
        self.sessions = sessions
        self._start([_run_call(s) for s in sessions])

    def _run(self, worker: Any, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = worker(self._output_names, feeds, None)  # a session's run, see _run_call
        return dict(zip(self._output_names, results, strict=True))


def _run_call(session: Any) -> Any:
    """The session's compiled ``run`` when it has one, else the Python ``InferenceSession.run``.

    ``InferenceSession.run`` re-validates the feed names and OrtValue ownership on every call (a few
    µs, a tenth of a small CNN's run) and then calls ``session._sess.run`` with the same arguments.
    cpuai has already checked the feeds (names, dtypes, shapes; numpy arrays only) and runs the CPU
    provider only, whose provider fallback that wrapper also handles never applies, so it calls the
    compiled run directly. Should a future onnxruntime drop ``_sess``, the public ``run`` is used.
    """
    inner = getattr(session, "_sess", None)
    return inner.run if inner is not None and hasattr(inner, "run") else session.run
