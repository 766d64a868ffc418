"""Per-layer sensitivity: run FP32 and quantized models with intermediate outputs, rank layers by error.

Each compute operator (Conv, MatMul, Gemm, and for ONNX Runtime every operator whose output
gets quantized; OpenVINO Convolution, MatMul and every operator fed by a FakeQuantize) is
matched between the two graphs by name, its output compared on a few calibration samples, and
the operators ranked by ``nmse`` (error relative to each channel's FP32 energy, averaged over
channels; the default for ``basic``) or plain ``mse`` (for the ``mse`` strategy). The names are
the ones the quantizer's fallback takes (``nodes_to_exclude`` for ONNX Runtime,
``IgnoredScope(names=...)`` for NNCF).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cpuai.errors import ConfigError
from cpuai.hardware import core_budget
from cpuai.quantize.quantizers import (
    ONNX_COMPUTE_OPS,
    OPENVINO_COMPUTE_OPS,
    OnnxRuntimeQuantizer,
    OpenVinoQuantizer,
    Quantizer,
)
from cpuai.quantize.samples import Samples

_Q_SUFFIX = "_QuantizeLinear_Input"
_DQ_SUFFIX = "_DequantizeLinear_Output"


@dataclass(frozen=True)
class LayerError:
    """How far one operator's output moved under quantization."""

    name: str
    op_type: str
    mse: float
    nmse: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "op_type": self.op_type, "mse": self.mse, "nmse": self.nmse}


def _channels(arrays: list[np.ndarray]) -> np.ndarray:
    """Rows x channels: NCHW puts channels on axis 1, everything else (NC, NSD) on the last axis."""
    a = np.concatenate([np.asarray(x, dtype=np.float64) for x in arrays])
    if a.ndim == 4:
        a = np.moveaxis(a, 1, -1)
    if a.ndim == 1:
        a = a[:, None]
    return a.reshape(-1, a.shape[-1])


def _accumulate(
    pairs: dict[str, tuple[list[np.ndarray], list[np.ndarray]]],
) -> dict[str, tuple[float, float]]:
    """Per operator: plain MSE, and the error relative to each channel's own energy, averaged over channels.

    The per-channel form keeps one outlier channel (a huge activation range) from hiding that every
    other channel was rounded away.
    """
    out = {}
    for name, (ref, got) in pairs.items():
        try:
            a, b = _channels(ref), _channels(got)
        except ValueError:
            continue
        if a.shape != b.shape:
            continue
        sq = (a - b) ** 2
        energy = np.mean(a**2, axis=0)
        eps = 1e-6 * float(np.mean(energy)) + 1e-12
        out[name] = (float(np.mean(sq)), float(np.mean(np.mean(sq, axis=0) / (energy + eps))))
    return out


def _onnx_matches(fp32: Any, quant: Any) -> dict[str, tuple[str, str, str]]:
    """FP32 compute node name -> (op type, FP32 tensor, quantized tensor) for outputs both graphs have."""
    fp32_tensors = {o for n in fp32.graph.node for o in n.output}
    q_nodes = {n.name: n for n in quant.graph.node if n.name}
    q_tensors = {o for n in quant.graph.node for o in n.output}
    matches = {}
    for node in fp32.graph.node:
        if not node.name or not node.output:
            continue
        quantized_output = node.output[0] + _DQ_SUFFIX in q_tensors or node.output[0] + _Q_SUFFIX in q_tensors
        if node.op_type not in ONNX_COMPUTE_OPS and not quantized_output:
            continue
        qn = q_nodes.get(node.name)
        if qn is not None and qn.op_type == node.op_type:
            # compare after the Q/DQ pair: QDQ drops a Relu after Conv and lets the Q node clamp
            q_out = qn.output[0]
            if q_out.endswith(_Q_SUFFIX):
                ref = q_out = q_out[: -len(_Q_SUFFIX)]
            else:
                ref = q_out
                if q_out + _DQ_SUFFIX in q_tensors:
                    q_out += _DQ_SUFFIX
            if ref in fp32_tensors and q_out in q_tensors:
                matches[node.name] = (node.op_type, ref, q_out)
                continue
        if qn is not None and node.output[0] in q_tensors:
            q_out = (
                node.output[0] + _DQ_SUFFIX if node.output[0] + _DQ_SUFFIX in q_tensors else node.output[0]
            )
            matches[node.name] = (node.op_type, node.output[0], q_out)
    # an operator the quantizer removed (a Relu folded into its Conv) must not shadow the one that stayed
    seen: set[str] = set()
    unique = {}
    for name, m in matches.items():
        if m[2] not in seen:
            seen.add(m[2])
            unique[name] = m
    return unique


def _onnx_run(model: Any, tensors: list[str], samples: Samples, threads: int) -> dict[str, list[np.ndarray]]:
    import onnx
    import onnxruntime as ort

    tensors = list(dict.fromkeys(tensors))
    model = onnx.ModelProto.FromString(model.SerializeToString())
    existing = {o.name for o in model.graph.output}
    for t in tensors:
        if t not in existing:
            model.graph.output.append(onnx.ValueInfoProto(name=t))
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    out: dict[str, list[np.ndarray]] = {t: [] for t in tensors}
    for batch in samples.batches:
        for t, v in zip(tensors, session.run(tensors, batch), strict=True):
            out[t].append(np.asarray(v))
    return out


def onnx_sensitivity(fp32_path: Path, quant_path: Path, samples: Samples) -> list[LayerError]:
    """Rank the compute nodes of an ONNX model by how much quantization changed their outputs."""
    import onnx

    fp32 = onnx.load(str(fp32_path))
    quant = onnx.load(str(quant_path))
    matches = _onnx_matches(fp32, quant)
    threads = core_budget()
    ref = _onnx_run(fp32, [m[1] for m in matches.values()], samples, threads)
    got = _onnx_run(quant, [m[2] for m in matches.values()], samples, threads)
    errors = _accumulate({name: (ref[m[1]], got[m[2]]) for name, m in matches.items()})
    return [LayerError(name, matches[name][0], e[0], e[1]) for name, e in errors.items()]


def _ov_run(model: Any, names: list[str], samples: Samples, threads: int) -> dict[str, list[np.ndarray]]:
    import openvino as ov

    core = ov.Core()
    model = model.clone()
    ops = {op.get_friendly_name(): op for op in model.get_ops()}
    added = model.add_outputs([ops[n].output(0) for n in names])
    compiled = core.compile_model(
        model, "CPU", {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"}
    )
    ports = [compiled.output(o.get_any_name()) for o in added]
    request = compiled.create_infer_request()
    res: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for batch in samples.batches:
        result = request.infer(batch)
        for n, port in zip(names, ports, strict=True):
            res[n].append(np.array(result[port]))
    return res


def _probe(op: Any) -> Any:
    """The op whose output stands for a compute op: the end of its bias Add (and scale Multiply) chain.

    OpenVINO folds activation zero points into the bias at compile time, so only the biased output
    is comparable between the FP32 and the INT8 model.
    """
    probe = op
    for _ in range(3):
        targets = [t.get_node() for t in probe.output(0).get_target_inputs()]
        targets = [t for t in targets if t.get_type_name() != "ShapeOf"]
        if len(targets) != 1 or targets[0].get_type_name() not in ("Add", "Multiply"):
            break
        probe = targets[0]
    return probe


def openvino_sensitivity(fp32_model: Any, quant_model: Any, samples: Samples) -> list[LayerError]:
    """Rank the compute operators of an OpenVINO model by how much NNCF quantization changed their outputs."""
    quant_ops = {op.get_friendly_name(): op.get_type_name() for op in quant_model.get_ops()}
    # every op NNCF put a FakeQuantize in front of is one the ignored scope can keep in FP32
    fed_by_fq = {
        op.get_friendly_name()
        for op in quant_model.get_ops()
        if any(i.get_source_output().get_node().get_type_name() == "FakeQuantize" for i in op.inputs())
    }
    probes: dict[str, tuple[str, str]] = {}
    for op in fp32_model.get_ops():
        name, kind = op.get_friendly_name(), op.get_type_name()
        if (kind in OPENVINO_COMPUTE_OPS or name in fed_by_fq) and quant_ops.get(name) == kind:
            probe = _probe(op).get_friendly_name()
            if probe in quant_ops:
                probes[name] = (kind, probe)
    watched = [p for _, p in probes.values()]
    threads = core_budget()
    ref = _ov_run(fp32_model, watched, samples, threads)
    got = _ov_run(quant_model, watched, samples, threads)
    errors = _accumulate({n: (ref[p], got[p]) for n, (_, p) in probes.items()})
    return [LayerError(n, probes[n][0], e[0], e[1]) for n, e in errors.items()]


def rank_layers(quantizer: Quantizer, samples: Samples, *, by: str = "nmse") -> list[LayerError]:
    """The fitted quantizer's compute operators, most sensitive first (``by`` is ``nmse`` or ``mse``)."""
    if isinstance(quantizer, OnnxRuntimeQuantizer):
        errors = onnx_sensitivity(quantizer.source_model_, quantizer.model_path_, samples)
    elif isinstance(quantizer, OpenVinoQuantizer):
        import openvino as ov

        quant = ov.Core().read_model(str(quantizer.model_path_))
        errors = openvino_sensitivity(quantizer.source_model_, quant, samples)
    else:
        raise ConfigError(
            f"no per-layer sensitivity for a {type(quantizer).__name__}",
            fix="rank layers of an ONNX Runtime or OpenVINO quantizer (make_quantizer)",
        )
    return sorted(errors, key=lambda e: getattr(e, by), reverse=True)
