"""What is being converted: resolve a module, factory string, file, package, job dir or checkpoint.

Sources: an ``nn.Module`` (Python) or ``"module.path:factory"`` (command line); a TorchScript file;
a training checkpoint written by ``cpuai train`` (see ``cpuai.convert.checkpoints``); a cpuai package
(torchscript, rebuilt from ``architecture`` when present, or onnx) or a job directory holding
``package/``; a TensorFlow SavedModel directory or ``.keras`` file.
"""

from __future__ import annotations

import importlib
import logging
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cpuai import package as pkgmod
from cpuai.errors import ModelError

log = logging.getLogger("cpuai.convert")

#: Files of a source package that are not carried into the converted one.
MODEL_FILES = {"model.onnx", "model.xml", "model.bin", "model.pt", pkgmod.MANIFEST, pkgmod.LABELS}


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
    #: Keeps a temporary directory (a package rebuilt from a checkpoint) alive as long as the source.
    workdir: Any = None


def factory(target: str) -> Callable[..., Any]:
    """The callable named by ``"module.path:attr"``; ModelError when it cannot be imported."""
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
    module = factory(arch.factory)(**arch.kwargs)
    state = torch.load(package.file(arch.weights), map_location="cpu", weights_only=True)
    module.load_state_dict(state)
    return module.eval()


def load_torchscript(path: Path) -> Any:
    """A TorchScript file, eval mode; ModelError naming the file when it is not one."""
    import torch

    try:
        return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as err:
        raise ModelError(
            f"{path} is not a TorchScript model ({str(err).strip().splitlines()[0][:200]})",
            fix="pass a torch.jit.save'd .pt file, an .onnx file, or a cpuai package",
        ) from None


def is_tf(path: Path) -> bool:
    """A SavedModel directory or a Keras file."""
    return (path.is_dir() and (path / "saved_model.pb").exists()) or path.suffix in (".keras", ".h5")


def resolve_source(src: Any, hints: dict[str, Any] | None = None) -> Source:
    """Work out what ``src`` is (module, factory string, file, package, job dir, checkpoint) and open it.

    ``hints`` are manifest fields given by the caller (e.g. ``labels``); a checkpoint uses them for
    what it does not hold itself.
    """
    import torch

    if isinstance(src, torch.nn.Module):
        return Source("torch", type(src).__name__, module=src.eval())
    if isinstance(src, pkgmod.ModelPackage):
        return package_source(src)
    if isinstance(src, str) and ":" in src and not Path(src).exists():
        module = factory(src)()
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
        return package_source(pkgmod.read(path))
    if path.is_dir() and (path / "package" / pkgmod.MANIFEST).exists():  # a finished training job
        return package_source(pkgmod.read(path / "package"))
    if is_tf(path):
        return Source("tf", str(path), path=path)
    if path.is_file() and path.suffix == ".onnx":
        check_onnx(path)
        return Source("onnx", str(path), path=path)
    if path.is_file() and path.suffix in (".pt", ".pth", ".ts"):
        if not is_torchscript_archive(path):
            from cpuai.convert.checkpoints import checkpoint_source

            return checkpoint_source(path, hints or {})
        return Source("torch", str(path), module=load_torchscript(path))
    if path.is_dir():
        raise ModelError(
            f"{path} is not a model package (no model.yaml) nor a TF SavedModel",
            fix="point at a directory made by cpuai, or at a model file",
        )
    raise ModelError(
        f"{path} is not a model this converter reads (suffix '{path.suffix}')",
        fix="give a .pt (TorchScript or training checkpoint), .onnx, .keras file, a SavedModel or a package",
    )


def is_torchscript_archive(path: Path) -> bool:
    """True for a torch.jit.save'd zip (it has code/); a torch.save'd dict or a non-zip file is not.

    A file that is not a zip at all goes the TorchScript way, whose error names the file.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            return any("/code/" in name or name.startswith("code/") for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return True


def check_onnx(path: Path) -> None:
    """ModelError unless ``path`` parses as ONNX (external data not loaded)."""
    import onnx

    try:
        onnx.load(str(path), load_external_data=False)
    except Exception as err:
        raise ModelError(
            f"{path} is not a valid ONNX model ({type(err).__name__})",
            fix="export it again, or pass the original PyTorch model",
        ) from None


def package_source(package: pkgmod.ModelPackage) -> Source:
    """A torchscript or onnx package as a source; its other files are carried into the result."""
    m = package.manifest
    extras = [p for p in package.path.iterdir() if p.name not in MODEL_FILES and not p.name.startswith(".")]
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
                module = load_torchscript(package.model_file)
        else:
            module = load_torchscript(package.model_file)
        return Source(
            "torch", str(package.path), module=module, manifest=m, package=package, extra_files=extras
        )
    if m.format == "onnx":
        check_onnx(package.model_file)
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
