"""Model packages: the one artifact every stage reads and writes.

A package is a directory holding ``model.yaml`` (the manifest below), the model file(s) and an
optional ``labels.txt``. The manifest is validated when read; a bad one raises ``ManifestError``
naming the field, the value seen and the fix. Writes are atomic: the package is assembled in a
temporary sibling directory and renamed into place, so a crash never leaves half a package.

A repository for serving is ``repo/<name>/<version>/<package>`` (Triton / OpenVINO Model Server
layout); see ``Repository``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cpuai.errors import ManifestError, ModelError

MANIFEST = "model.yaml"
LABELS = "labels.txt"

Task = Literal["image-classification", "text-embedding", "tabular", "generic"]
Format = Literal["onnx", "openvino", "torchscript"]
Precision = Literal["fp32", "fp16", "bf16", "int8"]
Backend = Literal["onnxruntime", "openvino", "torch"]
DTYPES = ("float32", "float16", "bfloat16", "float64", "int64", "int32", "int8", "uint8", "bool")

#: The model file each format keeps, relative to the package directory.
MODEL_FILES: dict[str, tuple[str, ...]] = {
    "onnx": ("model.onnx",),
    "openvino": ("model.xml", "model.bin"),
    "torchscript": ("model.pt",),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TensorSpec(_Strict):
    """One input or output tensor: ``shape`` uses -1 for a dynamic dimension."""

    name: str
    dtype: str = "float32"
    shape: list[int]
    layout: str | None = None  # e.g. "NCHW", "NC", "NS" (batch, sequence)

    @field_validator("dtype")
    @classmethod
    def _known_dtype(cls, v: str) -> str:
        if v not in DTYPES:
            raise ValueError(f"unknown dtype {v!r}; use one of {', '.join(DTYPES)}")
        return v

    @field_validator("shape")
    @classmethod
    def _valid_shape(cls, v: list[int]) -> list[int]:
        if any(d == 0 or d < -1 for d in v):
            raise ValueError(f"shape {v} has a dimension that is 0 or below -1; use -1 for dynamic")
        return v


class ImagePreprocessing(_Strict):
    """How a raw image becomes the model's input tensor."""

    size: tuple[int, int]  # (height, width) after resize
    color: Literal["rgb", "gray"] = "rgb"
    scale: float = 1.0 / 255.0  # applied to 0..255 pixel values before mean/std
    mean: list[float] = Field(default_factory=lambda: [0.0])
    std: list[float] = Field(default_factory=lambda: [1.0])
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    resize: Literal["bilinear", "nearest", "bicubic"] = "bilinear"


class TextPreprocessing(_Strict):
    """How text becomes token ids: a ``tokenizers`` JSON file inside the package."""

    tokenizer: str = "tokenizer.json"
    max_length: int = 128
    pooling: Literal["mean", "cls", "none"] = "mean"
    normalize: bool = True
    input_names: dict[str, str] = Field(
        default_factory=lambda: {
            "input_ids": "input_ids",
            "attention_mask": "attention_mask",
            "token_type_ids": "token_type_ids",
        }
    )


class TabularColumn(_Strict):
    """A declared CSV column: numeric (standardised) or categorical (vocabulary index)."""

    name: str
    kind: Literal["numeric", "categorical"]
    mean: float | None = None
    std: float | None = None
    vocabulary: list[str] | None = None


class TabularPreprocessing(_Strict):
    columns: list[TabularColumn]
    target: str | None = None


class Preprocessing(_Strict):
    image: ImagePreprocessing | None = None
    text: TextPreprocessing | None = None
    tabular: TabularPreprocessing | None = None


class Deploy(_Strict):
    """Deployment settings written by ``cpuai tune`` and read by ``cpuai serve``."""

    backend: Backend
    precision: Precision = "fp32"
    threads: int = Field(ge=1)
    streams: int = Field(default=1, ge=1)
    batch: int = Field(default=1, ge=1)
    instances: int = Field(default=1, ge=1)
    hint: Literal["latency", "throughput"] = "latency"
    objective: Literal["latency", "throughput"] = "latency"
    measured: dict[str, float] = Field(default_factory=dict)
    ann: dict[str, Any] = Field(default_factory=dict)  # free-form notes from the tuner


class Architecture(_Strict):
    """An eager PyTorch module the package can be rebuilt from (transfer learning, re-export)."""

    factory: str  # "module.path:callable"
    kwargs: dict[str, Any] = Field(default_factory=dict)
    weights: str = "weights.pt"  # state_dict file inside the package


class LineageStep(_Strict):
    """One step of the package's history: which command made it from what, and what it measured."""

    command: str
    source: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    results: dict[str, Any] = Field(default_factory=dict)
    created: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


class Manifest(_Strict):
    """The content of ``model.yaml``."""

    name: str = Field(min_length=1)
    version: int = Field(default=1, ge=1)
    task: Task = "generic"
    format: Format
    precision: Precision = "fp32"
    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(min_length=1)
    preprocessing: Preprocessing = Field(default_factory=Preprocessing)
    labels: list[str] | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    deploy: Deploy | None = None
    architecture: Architecture | None = None
    handler: str | None = None  # "module:Class" custom serving handler
    lineage: list[LineageStep] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        if "/" in v or v.startswith("."):
            raise ValueError(f"name {v!r} may not contain '/' or start with '.'")
        return v


def _describe(err: ValidationError, source: str) -> ManifestError:
    first = err.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "(top level)"
    value = first.get("input")
    reason = first["msg"]
    fix = "fix the field in model.yaml"
    if first["type"] == "literal_error":
        fix = f"use one of: {first.get('ctx', {}).get('expected', '')}"
    elif first["type"] == "missing":
        fix = f"add '{field}' to model.yaml"
        value = None
    elif first["type"] == "extra_forbidden":
        fix = f"remove '{field}' (unknown field) or check its spelling"
    shown = "" if value is None else f" (got {value!r})"
    more = f" and {len(err.errors()) - 1} more problem(s)" if len(err.errors()) > 1 else ""
    return ManifestError(f"{source}: field '{field}' is invalid{shown}: {reason}{more}", fix=fix)


def validate_manifest(data: Any, source: str = MANIFEST) -> Manifest:
    """Validate a manifest dictionary; raise ManifestError naming the field, the value and the fix."""
    if not isinstance(data, dict):
        raise ManifestError(
            f"{source} does not hold a mapping", fix="write model.yaml as YAML key: value pairs"
        )
    try:
        return Manifest.model_validate(data)
    except ValidationError as err:
        raise _describe(err, source) from None


class ModelPackage:
    """A model package on disk: its directory and validated manifest."""

    def __init__(self, path: Path, manifest: Manifest) -> None:
        self.path = path
        self.manifest = manifest

    def __repr__(self) -> str:
        m = self.manifest
        return f"ModelPackage({self.path}, {m.name} v{m.version}, {m.task}, {m.format}/{m.precision})"

    @property
    def model_files(self) -> list[Path]:
        return [self.path / f for f in MODEL_FILES[self.manifest.format]]

    @property
    def model_file(self) -> Path:
        """The main model file (model.onnx, model.xml or model.pt)."""
        return self.model_files[0]

    @property
    def labels(self) -> list[str] | None:
        return self.manifest.labels

    def size_bytes(self) -> int:
        """Bytes taken by the model files (not the manifest)."""
        return sum(f.stat().st_size for f in self.model_files if f.exists())

    def file(self, name: str) -> Path:
        """A file inside the package; ModelError when it is missing."""
        path = self.path / name
        if not path.exists():
            raise ModelError(
                f"package {self.path} is missing '{name}'",
                fix="re-create the package (cpuai convert / cpuai models export) or restore the file",
            )
        return path


def read(path: str | Path) -> ModelPackage:
    """Read and validate the package at ``path`` (a package dir or a ``repo/name/version`` dir)."""
    root = Path(path)
    if root.is_file() and root.name == MANIFEST:
        root = root.parent
    if not root.exists():
        raise ModelError(f"model package {root} does not exist", fix="check the path")
    manifest_path = root / MANIFEST
    if not manifest_path.exists():
        latest = Repository(root).latest_version_dir(missing_ok=True) if root.is_dir() else None
        if latest is not None:
            return read(latest)
        raise ModelError(
            f"{root} is not a model package (no {MANIFEST})",
            fix="point at a directory made by cpuai (train, convert, quantize, models export)",
        )
    try:
        data = yaml.safe_load(manifest_path.read_text())
    except yaml.YAMLError as err:
        raise ManifestError(f"{manifest_path} is not valid YAML: {err}", fix="fix the YAML syntax") from None
    manifest = validate_manifest(data, str(manifest_path))
    package = ModelPackage(root, manifest)
    for f in package.model_files:
        if not f.exists():
            raise ModelError(
                f"package {root} declares format '{manifest.format}' but '{f.name}' is missing",
                fix="restore the model file or re-create the package",
            )
    return package


def dump_manifest(manifest: Manifest) -> str:
    """The manifest as YAML text, with fields in declaration order and empty ones left out."""
    data = manifest.model_dump(mode="json", exclude_none=True)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


@contextmanager
def atomic_dir(dest: str | Path, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary directory beside ``dest``; on success rename it to ``dest``.

    On an exception the temporary directory is removed and ``dest`` is left as it was.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and not overwrite:
        raise ModelError(f"{dest} already exists", fix="choose another --out or remove it")
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        yield tmp
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            os.rename(dest, old)
            os.rename(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write(
    dest: str | Path,
    manifest: Manifest,
    files: Callable[[Path], object] | None = None,
    *,
    overwrite: bool = True,
) -> ModelPackage:
    """Write a package atomically.

    ``files(tmpdir)`` writes the model file(s) into the temporary directory; the manifest and
    labels.txt are written here. Returns the package as read back (so it is validated).
    """
    with atomic_dir(dest, overwrite=overwrite) as tmp:
        if files is not None:
            files(tmp)
        (tmp / MANIFEST).write_text(dump_manifest(manifest))
        if manifest.labels:
            (tmp / LABELS).write_text("\n".join(manifest.labels) + "\n")
    return read(dest)


def copy_with(package: ModelPackage, dest: str | Path, **changes: Any) -> ModelPackage:
    """Copy a package to ``dest`` (atomically) with some manifest fields replaced."""
    manifest = package.manifest.model_copy(update=changes, deep=True)
    manifest = validate_manifest(manifest.model_dump(mode="json", exclude_none=True))

    def _copy(tmp: Path) -> None:
        for item in package.path.iterdir():
            if item.name in (MANIFEST, LABELS):
                continue
            target = tmp / item.name
            if item.is_dir():
                shutil.copytree(item, target)
            else:
                shutil.copy2(item, target)

    return write(dest, manifest, _copy)


def update_manifest(package: ModelPackage, **changes: Any) -> ModelPackage:
    """Rewrite ``model.yaml`` in place (atomically, by rename) with some fields replaced."""
    manifest = package.manifest.model_copy(update=changes, deep=True)
    manifest = validate_manifest(manifest.model_dump(mode="json", exclude_none=True))
    target = package.path / MANIFEST
    tmp = target.with_name(f".{MANIFEST}.tmp-{os.getpid()}")
    tmp.write_text(dump_manifest(manifest))
    os.replace(tmp, target)
    return ModelPackage(package.path, manifest)


class Repository:
    """A model repository ``root/<name>/<version>/`` with integer versions."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and self.versions(p.name))

    def versions(self, name: str) -> list[int]:
        base = self.root / name
        if not base.is_dir():
            return []
        return sorted(
            int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit() and (p / MANIFEST).exists()
        )

    def path(self, name: str, version: int | None = None) -> Path:
        versions = self.versions(name)
        if not versions:
            raise ModelError(
                f"model '{name}' is not in repository {self.root}",
                fix="list it with GET /v2/repository/index",
            )
        if version is None:
            version = versions[-1]
        if version not in versions:
            raise ModelError(
                f"model '{name}' has no version {version} in {self.root} (versions: {versions})",
                fix="ask for an existing version",
            )
        return self.root / name / str(version)

    def read(self, name: str, version: int | None = None) -> ModelPackage:
        return read(self.path(name, version))

    def latest_version_dir(self, *, missing_ok: bool = False) -> Path | None:
        """For a ``repo/<name>`` directory: its newest version directory."""
        versions = sorted(
            (
                int(p.name)
                for p in self.root.iterdir()
                if p.is_dir() and p.name.isdigit() and (p / MANIFEST).exists()
            ),
        )
        if not versions:
            if missing_ok:
                return None
            raise ModelError(f"{self.root} holds no versions", fix="add repo/<name>/<version>/")
        return self.root / str(versions[-1])

    def add(self, package: ModelPackage, name: str | None = None, version: int | None = None) -> ModelPackage:
        """Copy a package into the repository as the next (or given) version."""
        name = name or package.manifest.name
        version = version or (max(self.versions(name), default=0) + 1)
        return copy_with(package, self.root / name / str(version), name=name, version=version)
