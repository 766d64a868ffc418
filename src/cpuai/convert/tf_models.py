"""TensorFlow sources: a Keras file (.keras/.h5) or a SavedModel to OpenVINO IR or ONNX, checked against TF.

Both kinds go through one SavedModel: a Keras model is exported to one in a temporary directory
(Keras 3's ``model.export(format="tf_saved_model")``), so inputs are named by the serving signature's
input keys (a Keras model's input names) and outputs by its output keys (``output_0``, ...).

- IR: ``openvino.convert_model`` on the SavedModel directory (dynamic batch kept).
- ONNX: tf2onnx (the ``tf`` extra) reads the SavedModel's serving signature, as its command line's
  ``--saved-model`` does; Keras 3's numpy-2 patch for tf2onnx is applied first.

The reference is the original model: the Keras model itself for a Keras file, the serving signature
for a SavedModel. Needs ``pip install 'cpuai[tf]'``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cpuai import package as pkgmod
from cpuai.convert.inputs import plan_inputs
from cpuai.convert.onnx_export import onnx_specs, to_fp16_onnx
from cpuai.convert.openvino_ir import ov_specs, save_ir
from cpuai.convert.results import check_agreement, open_engine, write_converted
from cpuai.convert.sources import Source
from cpuai.errors import DependencyError, ModelError, require

SIGNATURE = "serving_default"
#: Loggers that narrate every export at INFO ("Assets written to", tf2onnx's optimiser passes).
_CHATTY = ("tensorflow", "tf2onnx", "absl")


@contextlib.contextmanager
def _quiet_tf() -> Iterator[None]:
    """TF's C++ and Python INFO logs off while converting; cpuai prints its own one-line summary."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    loggers = [logging.getLogger(n) for n in _CHATTY]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


class TfModel:
    """A loaded TF model: its SavedModel directory, serving signature and a reference callable."""

    def __init__(self, path: Path, work: Path) -> None:
        import tensorflow as tf  # type: ignore[import-not-found]

        self.keras_model: Any = None
        if path.is_dir():
            self.saved_dir = path
        else:
            self.keras_model = _load_keras(path)
            self.saved_dir = work / "saved_model"
            self.keras_model.export(str(self.saved_dir), format="tf_saved_model", verbose=False)
        try:
            loaded = tf.saved_model.load(str(self.saved_dir))
        except Exception as err:
            raise ModelError(
                f"{path} is not a loadable SavedModel ({str(err).strip().splitlines()[0][:200]})",
                fix="save it with tf.saved_model.save or model.export(..., format='tf_saved_model')",
            ) from None
        if SIGNATURE not in loaded.signatures:
            raise ModelError(
                f"SavedModel {path} has no '{SIGNATURE}' signature (it has {list(loaded.signatures)})",
                fix="export it with a serving signature (model.export(DIR, format='tf_saved_model'))",
            )
        self._loaded = loaded  # keeps the signature's variables alive
        self.signature = loaded.signatures[SIGNATURE]
        _, kwargs = self.signature.structured_input_signature
        self.input_specs: dict[str, Any] = dict(sorted(kwargs.items()))
        self.output_keys: list[str] = sorted(self.signature.structured_outputs)

    def tensor_specs(self) -> list[pkgmod.TensorSpec]:
        """The serving inputs as TensorSpecs (unknown dims -1), in signature-key order."""
        return [
            pkgmod.TensorSpec(
                name=key,
                dtype=spec.dtype.name,
                shape=[-1 if d is None else int(d) for d in spec.shape.as_list()],
            )
            for key, spec in self.input_specs.items()
        ]

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs by signature key: from the Keras model when there is one, else the signature."""
        import tensorflow as tf

        if self.keras_model is not None:
            args = [feeds[getattr(t, "name", "")] for t in self.keras_model.inputs]
            out = self.keras_model(args[0] if len(args) == 1 else args, training=False)
            flat = out if isinstance(out, list | tuple) else [out]
            return {f"output_{i}": np.asarray(o) for i, o in enumerate(flat)}
        result = self.signature(**{k: tf.constant(v) for k, v in feeds.items()})
        return {k: np.asarray(result[k]) for k in self.output_keys}

    def to_onnx(self, dest: Path, opset: int) -> None:
        """The serving signature as ONNX through tf2onnx, tensors named by the signature's keys."""
        try:
            import tf2onnx  # type: ignore[import-not-found]
            from tf2onnx import tf_loader
        except ImportError:
            raise DependencyError(
                "converting TensorFlow to ONNX needs tf2onnx",
                fix="install it with: pip install 'cpuai[tf]' (the extra includes tf2onnx)",
            ) from None
        try:  # tf2onnx 1.17 still uses numpy aliases removed in numpy 2; Keras 3 ships the fix
            from keras.src.export.tf2onnx_lib import patch_tf2onnx  # type: ignore[import-not-found]

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                patch_tf2onnx()
        except ImportError:
            pass
        try:
            graph_def, inputs, outputs, renames = tf_loader.from_saved_model(
                str(self.saved_dir), None, None, signatures=[SIGNATURE], return_tensors_to_rename=True
            )
            tf2onnx.convert.from_graph_def(
                graph_def,
                input_names=inputs,
                output_names=outputs,
                opset=opset,
                tensors_to_rename=renames,
                output_path=str(dest),
            )
        except Exception as err:
            raise ModelError(
                f"tf2onnx could not convert {self.saved_dir}: {type(err).__name__}: {str(err)[:300]}",
                fix="use --to openvino (OpenVINO reads the SavedModel itself)",
            ) from None


def _load_keras(path: Path) -> Any:
    import tensorflow as tf

    try:
        model = tf.keras.models.load_model(str(path))
    except Exception as err:
        raise ModelError(
            f"{path} is not a loadable Keras model ({str(err).strip().splitlines()[0][:200]})",
            fix="save it with model.save('model.keras')",
        ) from None
    if not getattr(model, "inputs", None):
        raise ModelError(
            f"Keras model {path} has no declared inputs (a subclassed model that was never built)",
            fix="build it with keras.Input(...) (Sequential/functional), or export a SavedModel",
        )
    model(
        [np.zeros([1 if d is None else d for d in t.shape], dtype=t.dtype) for t in model.inputs]
        if len(model.inputs) > 1
        else np.zeros([1 if d is None else d for d in model.inputs[0].shape], dtype=model.inputs[0].dtype)
    )  # a loaded model must have been called once before it exports
    return model


def convert_tf(
    source: Source,
    *,
    to: str,
    out: Path,
    precision: str,
    tol: float,
    opset: int,
    name: str | None,
    manifest: dict[str, Any] | None,
    input_shapes: dict[str, tuple[int, ...]] | None,
    files: Sequence[Path] = (),
    check_batch: int = 3,
) -> pkgmod.ModelPackage:
    """A Keras file or SavedModel to an IR or ONNX package whose outputs agree with TensorFlow's."""
    require("tensorflow", "tf")
    assert source.path is not None
    with _quiet_tf(), tempfile.TemporaryDirectory(prefix="cpuai-convert-tf-") as work_dir:
        work = Path(work_dir)
        model = TfModel(source.path, work)
        plan = plan_inputs(model.tensor_specs(), input_shapes, label=source.label)
        result_dir = work / "result"
        result_dir.mkdir()
        if to == "onnx":
            raw = work / "tf2onnx.onnx"
            model.to_onnx(raw, opset)
            if precision == "fp16":
                to_fp16_onnx(raw, result_dir / "model.onnx")
            else:
                shutil.copy2(raw, result_dir / "model.onnx")
            inputs, outputs = onnx_specs(result_dir / "model.onnx")
            engine = open_engine(result_dir / "model.onnx", "onnxruntime")
        else:
            ov_model = save_ir(
                str(model.saved_dir), result_dir / "model.xml", precision=precision, what=str(source.path)
            )
            inputs, outputs = ov_specs(ov_model)
            engine = open_engine(
                result_dir / "model.xml", "openvino", precision="bf16" if precision == "bf16" else "fp32"
            )
        agreement = check_agreement(
            model,
            engine,
            plan,
            to=to,
            tolerance=tol,
            batch=check_batch,
            label=source.label,
            versus="TensorFlow",
        )
        kind = "keras" if model.keras_model is not None else "saved_model"
        return write_converted(
            source,
            out=out,
            result_dir=result_dir,
            to=to,
            precision=precision,
            inputs=inputs,
            outputs=outputs,
            agreement=agreement,
            settings={
                "to": to,
                "precision": precision,
                "from": f"tf-{kind}",
                "opset": opset if to == "onnx" else None,
            },
            name=name or source.path.stem,
            manifest=manifest,
            files=files,
            defaults={"task": "generic"},
        )
