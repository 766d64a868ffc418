"""Model conversion: PyTorch / TorchScript / cpuai packages / TF to ONNX and OpenVINO IR packages.

Every conversion ends the same way: the source and the result run on the same inputs, the largest
absolute and relative difference go into the new package's lineage, and a result that diverges
beyond the tolerance is refused with ``ModelError`` (nothing is written). Sources:

- an ``nn.Module`` (Python) or ``"module.path:factory"`` (command line), with ``input_shapes``;
- a TorchScript file (``.pt``), with ``input_shapes``;
- a cpuai package: torchscript (rebuilt from ``architecture`` when present), onnx, or a training job
  directory holding ``package/``;
- a TensorFlow SavedModel directory or ``.keras`` file (needs ``pip install 'cpuai[tf]'``).

ONNX exports use opset 17 or later with a dynamic batch axis (and a dynamic sequence axis for token
inputs). The default exporter is the TorchScript-based one (``dynamo=False``); docs/benchmarks.md#engines
has the measurement behind that choice.
"""

from __future__ import annotations

import importlib
import logging
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cpuai import package as pkgmod
from cpuai.errors import ConfigError, DependencyError, ModelError, require

log = logging.getLogger(__name__)

TARGETS = ("onnx", "openvino")
PRECISIONS = ("fp32", "fp16", "bf16")
EXPORTERS = ("torchscript", "dynamo")
DEFAULT_EXPORTER = "torchscript"
MIN_OPSET = 17
#: Largest accepted relative error (max |a-b| / max |reference|) per precision.
TOLERANCES = {"fp32": 1e-3, "fp16": 2e-2, "bf16": 6e-2}
#: Files of a source package that are not carried into the converted one.
_MODEL_FILES = {"model.onnx", "model.xml", "model.bin", "model.pt", pkgmod.MANIFEST, pkgmod.LABELS}


@dataclass
class Agreement:
    """How far the converted model's outputs are from the source's on the same inputs."""

    max_abs: float
    max_rel: float
    tolerance: float
    batch: int

    @property
    def ok(self) -> bool:
        return self.max_rel <= self.tolerance

    def as_dict(self) -> dict[str, Any]:
        return {
            "max_abs_error": self.max_abs,
            "max_rel_error": self.max_rel,
            "tolerance": self.tolerance,
            "checked_batch": self.batch,
        }


def compare(
    reference: dict[str, np.ndarray], result: dict[str, np.ndarray], *, tolerance: float, batch: int = 0
) -> Agreement:
    """Max absolute error and max relative error (to the reference's largest magnitude) over outputs."""
    max_abs = max_rel = 0.0
    for name, ref in reference.items():
        if name not in result:
            raise ModelError(
                f"the converted model has no output '{name}' (it has {list(result)})",
                fix="check the output names",
            )
        a = np.asarray(ref, dtype=np.float64)
        b = np.asarray(result[name], dtype=np.float64)
        if a.shape != b.shape:
            raise ModelError(
                f"output '{name}' has shape {list(b.shape)} after conversion, {list(a.shape)} before",
                fix="check the dynamic axes (--input-shape)",
            )
        diff = float(np.max(np.abs(a - b))) if a.size else 0.0
        max_abs = max(max_abs, diff)
        max_rel = max(max_rel, diff / (float(np.max(np.abs(a))) + 1e-12) if a.size else 0.0)
    return Agreement(max_abs=max_abs, max_rel=max_rel, tolerance=tolerance, batch=batch)


def parse_input_shapes(values: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """``["input:1,3,224,224"]`` to ``{"input": (1, 3, 224, 224)}``; a bare shape names the input 'input'."""
    shapes: dict[str, tuple[int, ...]] = {}
    for text in values:
        name, _, dims = text.rpartition(":")
        try:
            shape = tuple(int(d) for d in dims.replace("x", ",").split(",") if d.strip())
        except ValueError:
            shape = ()
        if not shape or any(d < 1 for d in shape):
            raise ConfigError(
                f"--input-shape {text!r} is not NAME:D1,D2,... with positive sizes",
                fix="write it like input:1,3,224,224",
            )
        shapes[name or "input"] = shape
    return shapes


# -- sources -----------------------------------------------------------------------------------


@dataclass
class Source:
    """What is being converted: a torch module, an ONNX file or a TF model, plus its manifest if any."""

    kind: str  # "torch" | "onnx" | "tf"
    label: str
    module: Any = None
    path: Path | None = None
    manifest: pkgmod.Manifest | None = None
    package: pkgmod.ModelPackage | None = None
    extra_files: list[Path] = field(default_factory=list)


def _factory(target: str) -> Callable[..., Any]:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ModelError(
            f"cannot import '{module_name}' from {target!r}: {err}",
            fix="give an importable module.path:factory",
        ) from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ModelError(f"'{module_name}' has no callable '{attr}'", fix="give module.path:factory")
    return fn


def rebuild_module(package: pkgmod.ModelPackage) -> Any:
    """The eager PyTorch module described by a package's ``architecture`` (factory, kwargs, weights)."""
    import torch

    arch = package.manifest.architecture
    if arch is None:
        raise ModelError(
            f"package {package.path} has no architecture section", fix="convert its model file instead"
        )
    module = _factory(arch.factory)(**arch.kwargs)
    state = torch.load(package.file(arch.weights), map_location="cpu", weights_only=True)
    module.load_state_dict(state)
    return module.eval()


def _load_torchscript(path: Path) -> Any:
    import torch

    try:
        return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as err:
        raise ModelError(
            f"{path} is not a TorchScript model ({str(err).strip().splitlines()[0][:200]})",
            fix="pass a torch.jit.save'd .pt file, an .onnx file, or a cpuai package",
        ) from None


def _is_tf(path: Path) -> bool:
    return (path.is_dir() and (path / "saved_model.pb").exists()) or path.suffix in (".keras", ".h5")


def resolve_source(src: Any) -> Source:
    """Work out what ``src`` is (module, factory string, file, package, job dir) and open it."""
    import torch

    if isinstance(src, torch.nn.Module):
        return Source("torch", type(src).__name__, module=src.eval())
    if isinstance(src, pkgmod.ModelPackage):
        return _package_source(src)
    if isinstance(src, str) and ":" in src and not Path(src).exists():
        module = _factory(src)()
        if not isinstance(module, torch.nn.Module):
            raise ModelError(
                f"{src} returned {type(module).__name__}, not a torch.nn.Module",
                fix="point at a factory that builds an nn.Module",
            )
        return Source("torch", src, module=module.eval())
    path = Path(src)
    if not path.exists():
        raise ModelError(
            f"conversion source {src} does not exist",
            fix="give a package directory, a .pt/.onnx file, a SavedModel or module.path:factory",
        )
    if path.is_dir() and (path / pkgmod.MANIFEST).exists():
        return _package_source(pkgmod.read(path))
    if path.is_dir() and (path / "package" / pkgmod.MANIFEST).exists():  # a finished training job
        return _package_source(pkgmod.read(path / "package"))
    if _is_tf(path):
        return Source("tf", str(path), path=path)
    if path.is_file() and path.suffix == ".onnx":
        _check_onnx(path)
        return Source("onnx", str(path), path=path)
    if path.is_file() and path.suffix in (".pt", ".pth", ".ts"):
        return Source("torch", str(path), module=_load_torchscript(path))
    if path.is_dir():
        raise ModelError(
            f"{path} is not a model package (no model.yaml) nor a TF SavedModel",
            fix="point at a directory made by cpuai, or at a model file",
        )
    raise ModelError(
        f"{path} is not a model this converter reads (suffix '{path.suffix}')",
        fix="give a .pt (TorchScript), .onnx, .keras file, a SavedModel or a cpuai package",
    )


def _check_onnx(path: Path) -> None:
    import onnx

    try:
        onnx.load(str(path), load_external_data=False)
    except Exception as err:
        raise ModelError(
            f"{path} is not a valid ONNX model ({type(err).__name__})",
            fix="export it again, or pass the original PyTorch model",
        ) from None


def _package_source(package: pkgmod.ModelPackage) -> Source:
    m = package.manifest
    extras = [p for p in package.path.iterdir() if p.name not in _MODEL_FILES and not p.name.startswith(".")]
    if m.format == "torchscript":
        if m.architecture is not None:
            try:
                module = rebuild_module(package)
            except Exception as err:  # fall back to the traced module
                log.info(
                    "cannot rebuild %s from its architecture (%s); exporting the TorchScript module",
                    package.path,
                    err,
                )
                module = _load_torchscript(package.model_file)
        else:
            module = _load_torchscript(package.model_file)
        return Source(
            "torch", str(package.path), module=module, manifest=m, package=package, extra_files=extras
        )
    if m.format == "onnx":
        _check_onnx(package.model_file)
        return Source(
            "onnx",
            str(package.path),
            path=package.model_file,
            manifest=m,
            package=package,
            extra_files=extras,
        )
    raise ModelError(
        f"package {package.path} is already OpenVINO IR; cpuai does not convert IR back",
        fix="convert the ONNX or PyTorch package it came from",
    )


# -- sample inputs -----------------------------------------------------------------------------


@dataclass
class InputPlan:
    """The inputs to export with: names, example shapes, dtypes and which axes are dynamic."""

    names: list[str]
    shapes: list[tuple[int, ...]]
    dtypes: list[str]
    dynamic: list[dict[int, str]]

    def sample(self, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
        """Deterministic inputs with batch ``batch``: uniform floats, small token ids, masks of ones."""
        rng = np.random.default_rng(seed)
        feeds: dict[str, np.ndarray] = {}
        for name, shape, dtype in zip(self.names, self.shapes, self.dtypes, strict=True):
            full = (batch, *shape[1:])
            if dtype.startswith("int"):
                if "mask" in name:
                    arr = np.ones(full, dtype=dtype)
                elif "type" in name:
                    arr = np.zeros(full, dtype=dtype)
                else:
                    arr = rng.integers(100, 2000, size=full).astype(dtype)
            else:
                arr = rng.random(full, dtype=np.float32).astype(dtype)
            feeds[name] = arr
        return feeds


def plan_inputs(
    specs: Sequence[Any],
    shapes: dict[str, tuple[int, ...]] | None,
    *,
    text: bool = False,
    label: str = "the model",
) -> InputPlan:
    """Input names/shapes from ``--input-shape`` or the specs; batch (and token) axes dynamic."""
    if shapes:
        names = list(shapes)
        by_name = {s.name: s for s in specs}
        dtypes = [by_name[n].dtype if n in by_name else "float32" for n in names]
        dims = [shapes[n] for n in names]
    elif specs:
        names = [s.name for s in specs]
        dtypes = [s.dtype for s in specs]
        dims = [
            tuple(1 if d == -1 and i == 0 else (16 if d == -1 else d) for i, d in enumerate(s.shape))
            for s in specs
        ]
    else:
        raise ConfigError(
            f"the input shape of {label} is unknown", fix="pass --input-shape NAME:1,3,224,224 (batch first)"
        )
    dynamic: list[dict[int, str]] = []
    for dtype, shape in zip(dtypes, dims, strict=True):
        axes = {0: "batch"}
        if (text or dtype.startswith("int")) and len(shape) >= 2:
            axes[1] = "sequence"
        dynamic.append(axes)
    return InputPlan(names=names, shapes=list(dims), dtypes=dtypes, dynamic=dynamic)


def _torch_outputs(module: Any, feeds: dict[str, np.ndarray], names: list[str]) -> list[np.ndarray]:
    import torch

    with torch.inference_mode():
        out = module(*[torch.from_numpy(feeds[n]) for n in names])
    if hasattr(out, "to_tuple"):  # transformers ModelOutput
        out = out.to_tuple()
    if isinstance(out, dict):
        out = list(out.values())
    if not isinstance(out, list | tuple):
        out = [out]
    return [o.detach().float().numpy() for o in out if isinstance(o, torch.Tensor)]


# -- ONNX export -------------------------------------------------------------------------------


def export_onnx(
    module: Any,
    plan: InputPlan,
    output_names: list[str],
    dest: Path,
    *,
    opset: int = MIN_OPSET,
    exporter: str = DEFAULT_EXPORTER,
    output_dynamic: list[dict[int, str]] | None = None,
) -> None:
    """Write ``module`` to ``dest`` as ONNX with the plan's dynamic axes, using the chosen exporter."""
    import torch

    if opset < MIN_OPSET:
        raise ConfigError(f"opset {opset} is older than {MIN_OPSET}", fix=f"use --opset {MIN_OPSET} or newer")
    if exporter not in EXPORTERS:
        raise ConfigError(f"unknown exporter {exporter!r}", fix=f"use one of: {', '.join(EXPORTERS)}")
    sample = plan.sample(batch=max(1, plan.shapes[0][0]))
    args = tuple(torch.from_numpy(sample[n]) for n in plan.names)
    dynamic_axes: dict[str, dict[int, str]] = dict(zip(plan.names, plan.dynamic, strict=True))
    for i, name in enumerate(output_names):
        dynamic_axes[name] = output_dynamic[i] if output_dynamic else {0: "batch"}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if exporter == "dynamo":
                torch.onnx.export(
                    module,
                    args,
                    str(dest),
                    input_names=plan.names,
                    output_names=output_names,
                    dynamic_axes=dynamic_axes,
                    opset_version=max(opset, 18),
                    dynamo=True,
                    external_data=False,
                    verbose=False,
                )
            else:
                torch.onnx.export(
                    module,
                    args,
                    str(dest),
                    input_names=plan.names,
                    output_names=output_names,
                    dynamic_axes=dynamic_axes,
                    opset_version=opset,
                    dynamo=False,
                )
        except Exception as err:
            raise ModelError(
                f"torch.onnx.export ({exporter}) failed: {type(err).__name__}: {str(err)[:300]}",
                fix="try --exporter dynamo/torchscript, or check --input-shape",
            ) from None


def to_fp16_onnx(src: Path, dest: Path) -> None:
    """Store the ONNX weights and compute in float16, keeping float32 inputs and outputs."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dest))


def _onnx_specs(path: Path, dynamic: list[dict[int, str]] | None = None) -> tuple[list[Any], list[Any]]:
    """Input and output TensorSpecs read from the ONNX file (symbolic dims become -1)."""
    import onnx
    from onnx.helper import tensor_dtype_to_np_dtype

    model = onnx.load(str(path), load_external_data=False)
    init = {i.name for i in model.graph.initializer}

    def spec(v: Any) -> pkgmod.TensorSpec:
        t = v.type.tensor_type
        dtype = np.dtype(tensor_dtype_to_np_dtype(t.elem_type)).name
        shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in t.shape.dim]
        return pkgmod.TensorSpec(name=v.name, dtype=dtype, shape=shape)

    inputs = [spec(v) for v in model.graph.input if v.name not in init]
    outputs = [spec(v) for v in model.graph.output]
    return inputs, outputs


def _ov_specs(model: Any) -> tuple[list[Any], list[Any]]:
    from cpuai.runtime.openvino import _info

    def spec(port: Any) -> pkgmod.TensorSpec:
        info = _info(port)
        return pkgmod.TensorSpec(name=info.name, dtype=info.dtype, shape=list(info.shape))

    return [spec(p) for p in model.inputs], [spec(p) for p in model.outputs]


def _merge_layouts(new: list[Any], old: Sequence[Any]) -> list[Any]:
    by_name = {s.name: s for s in old}
    for s in new:
        if s.name in by_name and by_name[s.name].layout:
            s.layout = by_name[s.name].layout
    return new


# -- the conversion ----------------------------------------------------------------------------


def convert(
    src: Any,
    *,
    to: str,
    out: str | Path,
    precision: str = "fp32",
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    output_names: list[str] | None = None,
    tolerance: float | None = None,
    opset: int = MIN_OPSET,
    exporter: str = DEFAULT_EXPORTER,
    name: str | None = None,
    manifest: dict[str, Any] | None = None,
    files: Sequence[Path] = (),
    check_batch: int = 3,
) -> pkgmod.ModelPackage:
    """Convert ``src`` to an ONNX or OpenVINO IR package at ``out``, checked against the source.

    ``manifest`` adds or overrides manifest fields (task, labels, preprocessing) for sources that
    carry none (a bare module or file). Raises ``ModelError`` when the outputs diverge beyond
    ``tolerance`` (default per precision: ``TOLERANCES``). ``files`` are copied into the package
    (e.g. a tokenizer.json).
    """
    if to not in TARGETS:
        raise ConfigError(f"unknown target format {to!r}", fix=f"use --to {' or --to '.join(TARGETS)}")
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}", fix=f"use one of: {', '.join(PRECISIONS)}")
    if precision == "bf16" and to == "onnx":
        raise ConfigError(
            "bf16 is a run-time precision on OpenVINO, not an ONNX storage type",
            fix="use --to openvino --precision bf16, or keep fp32 and load with precision='bf16'",
        )
    if tolerance is not None and not (0 < tolerance < 1):
        raise ConfigError(
            f"tolerance {tolerance} is not between 0 and 1", fix="pass a relative error like 1e-3"
        )
    if check_batch < 1:
        raise ConfigError(f"check batch {check_batch} must be >= 1", fix="use 1 or more")
    tol = tolerance if tolerance is not None else TOLERANCES[precision]
    source = resolve_source(src)
    if source.kind == "tf":
        return _convert_tf(
            source,
            to=to,
            out=Path(out),
            precision=precision,
            tol=tol,
            name=name,
            manifest=manifest,
            input_shapes=input_shapes,
        )

    with tempfile.TemporaryDirectory(prefix="cpuai-convert-") as work_dir:
        work = Path(work_dir)
        reference: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
        if source.kind == "torch":
            given = manifest or {}
            specs = (
                source.manifest.inputs
                if source.manifest
                else [pkgmod.TensorSpec.model_validate(s) for s in given.get("inputs", [])]
            )
            task = source.manifest.task if source.manifest else given.get("task")
            plan = plan_inputs(specs, input_shapes, text=task == "text-embedding", label=source.label)
            sample = plan.sample(batch=1)
            n_out = len(_torch_outputs(source.module, sample, plan.names))
            if output_names is None and source.manifest is not None and len(source.manifest.outputs) == n_out:
                output_names = [o.name for o in source.manifest.outputs]
            if output_names is None:
                output_names = ["output"] if n_out == 1 else [f"output_{i}" for i in range(n_out)]
            if len(output_names) != n_out:
                raise ConfigError(
                    f"{len(output_names)} output names given but the model has {n_out} outputs",
                    fix="give one name per output",
                )
            text = any(len(a) >= 2 for a in plan.dynamic)
            out_dyn = None
            if text:  # token outputs keep a sequence axis when they have one
                probe = _torch_outputs(source.module, plan.sample(batch=1), plan.names)
                seq = plan.shapes[0][1]
                out_dyn = [
                    {0: "batch", 1: "sequence"} if o.ndim >= 3 and o.shape[1] == seq else {0: "batch"}
                    for o in probe
                ]
            onnx_path = work / "model.onnx"
            export_onnx(
                source.module,
                plan,
                output_names,
                onnx_path,
                opset=opset,
                exporter=exporter,
                output_dynamic=out_dyn,
            )
            module, names, outs = source.module, plan.names, output_names

            def reference(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
                return dict(zip(outs, _torch_outputs(module, feeds, names), strict=False))

            settings_src = "torch"
        else:
            assert source.path is not None
            onnx_path = source.path
            ins, _ = _onnx_specs(onnx_path)
            plan = plan_inputs(
                ins,
                input_shapes,
                text=bool(source.manifest and source.manifest.task == "text-embedding"),
                label=source.label,
            )
            ref_engine = _engine(onnx_path, "onnxruntime")

            def reference(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
                return ref_engine.infer(feeds)

            settings_src = "onnx"

        # the target file(s)
        result_dir = work / "result"
        result_dir.mkdir()
        if to == "onnx":
            if precision == "fp16":
                to_fp16_onnx(onnx_path, result_dir / "model.onnx")
            else:
                shutil.copy2(onnx_path, result_dir / "model.onnx")
            inputs, outputs = _onnx_specs(result_dir / "model.onnx")
            engine = _engine(result_dir / "model.onnx", "onnxruntime")
        else:
            import openvino as ov

            try:
                ov_model = ov.convert_model(str(onnx_path))
            except Exception as err:
                raise ModelError(
                    f"openvino.convert_model failed on {onnx_path}: {str(err)[:300]}",
                    fix="check the ONNX model with --to onnx first",
                ) from None
            ov.save_model(ov_model, str(result_dir / "model.xml"), compress_to_fp16=precision == "fp16")
            inputs, outputs = _ov_specs(ov_model)
            engine = _engine(
                result_dir / "model.xml", "openvino", precision="bf16" if precision == "bf16" else "fp32"
            )

        feeds = plan.sample(batch=check_batch, seed=1)
        try:
            agreement = compare(reference(feeds), engine.infer(feeds), tolerance=tol, batch=check_batch)
        finally:
            engine.close()
        if not agreement.ok:
            raise ModelError(
                f"the {to} model diverges from the source: max relative error {agreement.max_rel:.3g} "
                f"(max abs {agreement.max_abs:.3g}) is above the tolerance {tol:g}",
                fix="check the model for ops that do not convert, or pass a larger --tolerance knowingly",
            )
        log.debug(
            "converted %s -> %s: max abs error %.3g, max rel error %.3g",
            source.label,
            to,
            agreement.max_abs,
            agreement.max_rel,
        )

        base = source.manifest
        fields: dict[str, Any] = base.model_dump(mode="json", exclude_none=True) if base is not None else {}
        fields.pop("deploy", None)  # tuned for another format
        if fields.get("architecture") and not any(
            f.name == fields["architecture"].get("weights") for f in source.extra_files
        ):
            fields.pop("architecture")
        fields.update(manifest or {})
        old_inputs = base.inputs if base is not None else []
        old_outputs = base.outputs if base is not None else []
        fields.update(
            name=name or fields.get("name") or _default_name(source),
            format=to,
            precision=precision,
            inputs=[s.model_dump() for s in _merge_layouts(inputs, old_inputs)],
            outputs=[s.model_dump() for s in _merge_layouts(outputs, old_outputs)],
        )
        lineage = list(fields.get("lineage", []))
        lineage.append(
            pkgmod.LineageStep(
                command="convert",
                source=source.label,
                settings={
                    "to": to,
                    "precision": precision,
                    "from": settings_src,
                    "opset": opset,
                    "exporter": exporter if settings_src == "torch" else None,
                },
                results=agreement.as_dict(),
            ).model_dump()
        )
        fields["lineage"] = lineage
        new_manifest = pkgmod.validate_manifest(fields, "converted manifest")

        carried = [*source.extra_files, *map(Path, files)]

        def write_files(tmp: Path) -> None:
            for f in result_dir.iterdir():
                shutil.copy2(f, tmp / f.name)
            for f in carried:
                if f.is_dir():
                    shutil.copytree(f, tmp / f.name)
                else:
                    shutil.copy2(f, tmp / f.name)

        return pkgmod.write(out, new_manifest, write_files)


def _default_name(source: Source) -> str:
    label = source.label.rstrip("/").replace(":", "-").split("/")[-1]
    return Path(label).stem or "model"


def _engine(path: Path, backend: str, precision: str = "fp32") -> Any:
    from cpuai.hardware import core_budget

    threads = core_budget()
    if backend == "onnxruntime":
        from cpuai.runtime.onnxruntime import OnnxRuntimeEngine

        return OnnxRuntimeEngine(path, threads=threads, streams=1)
    from cpuai.runtime.openvino import OpenVinoEngine

    return OpenVinoEngine(path, threads=threads, streams=1, package_precision=precision)


# -- TensorFlow --------------------------------------------------------------------------------


def _convert_tf(
    source: Source,
    *,
    to: str,
    out: Path,
    precision: str,
    tol: float,
    name: str | None,
    manifest: dict[str, Any] | None,
    input_shapes: dict[str, tuple[int, ...]] | None,
) -> pkgmod.ModelPackage:
    """A Keras file or SavedModel to IR (openvino.convert_model) or ONNX (tf2onnx), checked against TF."""
    require("tensorflow", "tf")
    import tensorflow as tf  # type: ignore[import-not-found]

    assert source.path is not None
    keras_model = (
        tf.keras.models.load_model(str(source.path)) if source.path.suffix in (".keras", ".h5") else None
    )
    with tempfile.TemporaryDirectory(prefix="cpuai-convert-tf-") as work_dir:
        work = Path(work_dir)
        if to == "onnx":
            try:
                import tf2onnx  # type: ignore[import-not-found]
            except ImportError:
                raise DependencyError(
                    "converting TensorFlow to ONNX needs tf2onnx",
                    fix="install it with: pip install 'cpuai[tf]' tf2onnx",
                ) from None
            if keras_model is None:
                raise ModelError("TF SavedModel to ONNX is not supported here", fix="use --to openvino")
            tf2onnx.convert.from_keras(keras_model, opset=MIN_OPSET, output_path=str(work / "model.onnx"))
            pkg_tmp = convert(
                work / "model.onnx",
                to="onnx",
                out=work / "pkg",
                precision=precision,
                input_shapes=input_shapes,
                tolerance=tol,
                name=name,
                manifest=manifest,
            )
            return pkgmod.copy_with(pkg_tmp, out)
        import openvino as ov

        ov_model = ov.convert_model(keras_model if keras_model is not None else str(source.path))
        ov.save_model(ov_model, str(work / "model.xml"), compress_to_fp16=precision == "fp16")
        inputs, outputs = _ov_specs(ov_model)
        engine = _engine(work / "model.xml", "openvino", precision="bf16" if precision == "bf16" else "fp32")
        try:
            rng = np.random.default_rng(1)
            feeds = {
                i.name: rng.random((3, *[d if d > 0 else 1 for d in i.shape[1:]]), dtype=np.float32)
                for i in engine.inputs
            }
            model = keras_model if keras_model is not None else tf.saved_model.load(str(source.path))
            ref = model(*[tf.constant(v) for v in feeds.values()])
            ref_list = (
                list(ref.values())
                if isinstance(ref, dict)
                else (list(ref) if isinstance(ref, list | tuple) else [ref])
            )
            got = engine.infer(feeds)
            agreement = compare(
                {o.name: np.asarray(r) for o, r in zip(engine.outputs, ref_list, strict=False)},
                got,
                tolerance=tol,
                batch=3,
            )
        finally:
            engine.close()
        if not agreement.ok:
            raise ModelError(
                f"the IR diverges from TensorFlow: max relative error {agreement.max_rel:.3g}",
                fix="pass a larger --tolerance knowingly",
            )
        fields: dict[str, Any] = {
            "name": name or source.path.stem,
            "task": "generic",
            **(manifest or {}),
            "format": "openvino",
            "precision": precision,
            "inputs": [s.model_dump() for s in inputs],
            "outputs": [s.model_dump() for s in outputs],
        }
        fields["lineage"] = [
            pkgmod.LineageStep(
                command="convert",
                source=source.label,
                settings={"to": to, "precision": precision, "from": "tf"},
                results=agreement.as_dict(),
            ).model_dump()
        ]
        new_manifest = pkgmod.validate_manifest(fields, "converted manifest")
        return pkgmod.write(
            out,
            new_manifest,
            lambda tmp: [shutil.copy2(work / f, tmp / f) for f in ("model.xml", "model.bin")],
        )
