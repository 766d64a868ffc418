"""Per-backend quantizers: ONNX Runtime (static QDQ, dynamic) and OpenVINO (NNCF INT8, BF16).

They follow the scikit-learn shape: the constructor stores the source package and a
``QuantConfig``; ``fit(calibration)`` quantizes (learned state ends in ``_``) and returns self;
``save(dest)`` writes a model package (format onnx or openvino, precision int8 or bf16).

    >>> q = make_quantizer(package, QuantConfig(backend="onnxruntime")).fit(calibration)
    >>> int8 = q.save("out/digits-int8")
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from cpuai import package as pkgmod
from cpuai.errors import ConfigError, EngineError, ModelError
from cpuai.package import ModelPackage
from cpuai.quantize.config import QuantConfig
from cpuai.quantize.samples import Samples

log = logging.getLogger(__name__)

#: Operators whose presence makes ONNX Runtime dynamic quantization pointless (no ConvInteger CPU kernel).
CONV_OPS = frozenset({"Conv", "ConvTranspose"})
#: Operators the tuner ranks by sensitivity and may keep in FP32.
ONNX_COMPUTE_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
OPENVINO_COMPUTE_OPS = ("Convolution", "GroupConvolution", "ConvolutionBackpropData", "MatMul")


class Quantizer:
    """Base: stores the package and config; subclasses implement ``fit``; ``save`` writes the package."""

    format = "onnx"
    _tmp: Path | None = None
    _model_path: Path | None = None

    def __init__(self, package: ModelPackage, config: QuantConfig) -> None:
        self.package = package
        self.config = config

    def fit(self, calibration: Samples) -> Quantizer:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def model_path_(self) -> Path:
        """Path of the quantized model file written by ``fit``."""
        path = self._model_path
        if path is None:
            raise ModelError("the quantizer has not been fitted", fix="call fit(calibration) before save()")
        return path

    def _workdir(self) -> Path:
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="cpuai-quant-"))
        return self._tmp

    def save(self, dest: str | Path, *, lineage: dict[str, Any] | None = None) -> ModelPackage:
        """Write the quantized model as a package at ``dest``, carrying the source's other files."""
        source = self.package
        m = source.manifest
        model_names = set(pkgmod.MODEL_FILES[m.format])
        weights = m.architecture.weights if m.architecture else None
        step = pkgmod.LineageStep(
            command="cpuai quantize",
            source=str(source.path),
            settings=self.config.to_dict(),
            results=dict(lineage or {}),
        )
        manifest = m.model_copy(
            update={
                "format": self.format,
                "precision": self.config.precision,
                "architecture": None,
                "deploy": None,
                "lineage": [*m.lineage, step],
            },
            deep=True,
        )
        manifest = pkgmod.validate_manifest(manifest.model_dump(mode="json", exclude_none=True))
        produced = self.model_path_

        def files(tmp: Path) -> None:
            for item in source.path.iterdir():
                if item.name in model_names or item.name in (
                    pkgmod.MANIFEST,
                    pkgmod.LABELS,
                    weights,
                    "tuning.json",
                ):
                    continue
                if item.name.startswith("."):
                    continue
                (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp / item.name)
            for src, name in zip(self._outputs(produced), pkgmod.MODEL_FILES[self.format], strict=True):
                shutil.copy2(src, tmp / name)

        return pkgmod.write(dest, manifest, files)

    def _outputs(self, main: Path) -> list[Path]:
        return [main]

    def close(self) -> None:
        """Remove the temporary files of ``fit``."""
        tmp = self._tmp
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
            self._tmp = None


class _Reader:
    """An onnxruntime CalibrationDataReader over one-item feeds."""

    def __init__(self, calibration: Samples) -> None:
        self._rows = list(calibration.rows())
        self._it = iter(self._rows)

    def get_next(self) -> dict[str, Any] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self._rows)


def onnx_op_types(path: Path) -> set[str]:
    import onnx

    return {n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node}


def _preprocessed(src: Path, work: Path) -> Path:
    """ONNX Runtime's recommended pre-processing (shape inference, graph optimisation) before quantizing."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = work / "pre.onnx"
    if out.exists():
        return out
    try:
        quant_pre_process(str(src), str(out), skip_symbolic_shape=True)
    except Exception as err:  # noqa: BLE001 - the raw model still quantizes, only less well
        log.info("ONNX pre-processing failed (%s); quantizing the model as it is", err)
        shutil.copy2(src, out)
    return out


class OnnxRuntimeQuantizer(Quantizer):
    """ONNX Runtime INT8: ``static`` QDQ with calibration, or ``dynamic`` (weights only, for MatMuls).

    ``source_model_`` is the pre-processed FP32 ONNX file the quantized one was made from.
    """

    format = "onnx"
    source_model_: Path

    def fit(self, calibration: Samples) -> OnnxRuntimeQuantizer:
        from onnxruntime.quantization import (
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_dynamic,
            quantize_static,
        )

        if self.package.manifest.format != "onnx":
            raise ModelError(
                f"ONNX Runtime quantization needs an onnx package, {self.package.path} is "
                f"{self.package.manifest.format}",
                fix="use --backend openvino, or convert the package to ONNX with cpuai convert",
            )
        cfg = self.config
        work = self._workdir()
        src = _preprocessed(self.package.model_file, work)
        out = work / f"int8-{abs(hash(cfg))}.onnx"
        qtype = {"u8": QuantType.QUInt8, "s8": QuantType.QInt8}
        try:
            if cfg.method == "dynamic":
                convs = onnx_op_types(src) & CONV_OPS
                if convs:
                    raise ConfigError(
                        f"ONNX Runtime dynamic quantization refuses this model: it has {sorted(convs)} "
                        "operators, and ONNX Runtime has no ConvInteger kernel on CPU, so INT8 would run "
                        "slower than FP32",
                        fix="use static quantization (the default) or --backend openvino",
                    )
                quantize_dynamic(
                    str(src),
                    str(out),
                    op_types_to_quantize=["MatMul", "Gemm"],
                    per_channel=cfg.per_channel,
                    weight_type=qtype[cfg.weight],
                    nodes_to_exclude=list(cfg.exclude),
                    extra_options={"MatMulConstBOnly": True},
                    reduce_range=_reduce_range(),
                )
            else:
                method = {
                    "minmax": CalibrationMethod.MinMax,
                    "entropy": CalibrationMethod.Entropy,
                    "percentile": CalibrationMethod.Percentile,
                }[cfg.calibrate]
                with contextlib.redirect_stdout(io.StringIO()):  # the histogram calibrators print progress
                    quantize_static(
                        str(src),
                        str(out),
                        _Reader(calibration),
                        quant_format=QuantFormat.QDQ,
                        per_channel=cfg.per_channel,
                        activation_type=qtype[cfg.activation],
                        weight_type=qtype[cfg.weight],
                        nodes_to_exclude=list(cfg.exclude),
                        calibrate_method=method,
                        calibration_providers=["CPUExecutionProvider"],
                        reduce_range=_reduce_range(),
                        extra_options={
                            "ActivationSymmetric": cfg.activation == "s8",
                            "CalibMovingAverage": False,
                        },
                    )
        except ConfigError:
            raise
        except Exception as err:
            raise EngineError(
                f"ONNX Runtime could not quantize {self.package.path} with {cfg.label()}: {err}",
                fix="try another strategy or backend; rerun with --debug for details",
            ) from err
        self._model_path = out
        self.source_model_ = src
        return self


def _reduce_range() -> bool:
    """7-bit weights on CPUs without INT8 dot-product instructions (AVX2, AVX-512 without VNNI).

    There the u8 x s8 multiply-add (``vpmaddubsw``) saturates its 16-bit sums, and full-range INT8
    weights lose accuracy (the digits CNN fell from 0.92 to 0.84 top-1 on an AVX2 EPYC); ONNX
    Runtime's ``reduce_range`` and NNCF's overflow fix keep weights to 7 bits so the sums fit.
    """
    from cpuai.hardware import current

    return not current().has_int8_dot


class OpenVinoQuantizer(Quantizer):
    """OpenVINO: ``nncf`` INT8 (preset, fast bias correction, SmoothQuant, ignored scope) or ``bf16``.

    ``source_model_`` is the FP32 ``openvino.Model`` read from the package.
    """

    format = "openvino"
    source_model_: Any  # openvino.Model

    def _read(self) -> Any:
        import openvino as ov

        return ov.Core().read_model(str(self.package.model_file))

    def fit(self, calibration: Samples) -> OpenVinoQuantizer:
        import openvino as ov

        if self.package.manifest.format not in ("onnx", "openvino"):
            raise ModelError(
                f"OpenVINO quantization needs an onnx or openvino package, {self.package.path} is "
                f"{self.package.manifest.format}",
                fix="convert the package first: cpuai convert PKG --to openvino",
            )
        cfg = self.config
        model = self._read()
        self.source_model_ = model
        if cfg.method == "nncf":
            model = self._nncf(model, calibration)
        work = self._workdir()
        out = work / f"q-{abs(hash(cfg))}.xml"
        ov.save_model(model, str(out), compress_to_fp16=False)
        self._model_path = out
        return self

    def _nncf(self, model: Any, calibration: Samples) -> Any:
        import nncf
        from nncf.quantization.advanced_parameters import (
            AdvancedQuantizationParameters,
            AdvancedSmoothQuantParameters,
        )

        logging.getLogger("nncf").setLevel(logging.WARNING)
        cfg = self.config
        rows = list(calibration.rows())
        transformer = self.package.manifest.task == "text-embedding" or cfg.smooth_quant is not None
        kwargs: dict[str, Any] = {
            "preset": nncf.QuantizationPreset.MIXED
            if cfg.preset == "mixed"
            else nncf.QuantizationPreset.PERFORMANCE,
            "subset_size": len(rows),
            "fast_bias_correction": cfg.fast_bias_correction,
        }
        if transformer:
            kwargs["model_type"] = nncf.ModelType.TRANSFORMER
        advanced: dict[str, Any] = {}
        if cfg.smooth_quant is not None:
            advanced["smooth_quant_alphas"] = AdvancedSmoothQuantParameters(matmul=cfg.smooth_quant)
        if _reduce_range():  # NNCF's answer to the same saturation: 7-bit weights in every layer
            from nncf.quantization.advanced_parameters import OverflowFix

            advanced["overflow_fix"] = OverflowFix.ENABLE
        if advanced:
            kwargs["advanced_parameters"] = AdvancedQuantizationParameters(**advanced)
        if cfg.exclude:
            kwargs["ignored_scope"] = nncf.IgnoredScope(names=list(cfg.exclude), validate=False)
        try:
            # NNCF draws a rich progress bar on stdout, which would corrupt `cpuai quantize --json`
            with contextlib.redirect_stdout(io.StringIO()):
                return nncf.quantize(model, nncf.Dataset(rows), **kwargs)
        except Exception as err:
            raise EngineError(
                f"NNCF could not quantize {self.package.path} with {cfg.label()}: {err}",
                fix="try another strategy or --backend onnxruntime; rerun with --debug",
            ) from err

    def _outputs(self, main: Path) -> list[Path]:
        return [main, main.with_suffix(".bin")]


def make_quantizer(package: ModelPackage, config: QuantConfig) -> Quantizer:
    """The quantizer for a config's backend."""
    if config.backend == "onnxruntime":
        return OnnxRuntimeQuantizer(package, config)
    return OpenVinoQuantizer(package, config)
