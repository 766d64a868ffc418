"""Calibration and evaluation samples: an image folder, a text file of sentences, or ``.npy``/``.npz``.

Everything is turned into model feeds once (through the package's task preprocessing), checked
against the package's declared inputs, and kept as batches, so that every trial of the tuner runs
on exactly the same tensors.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cpuai.errors import DataError, InvalidInput
from cpuai.package import ModelPackage

TEXT_SUFFIXES = (".txt", ".text", ".tsv")


@dataclass
class Samples:
    """Model feeds in batches, with targets (class labels) or texts (sentences, query/doc pairs)."""

    batches: list[dict[str, np.ndarray]]
    source: str
    targets: np.ndarray | None = None
    texts: list[str] | None = None
    pairs: list[tuple[str, str]] | None = None

    def __len__(self) -> int:
        return sum(_batch_len(b) for b in self.batches)

    def rows(self) -> Iterator[dict[str, np.ndarray]]:
        """One-item feeds (batch dimension kept), for calibrators that want a sample at a time."""
        for batch in self.batches:
            for i in range(_batch_len(batch)):
                yield {k: v[i : i + 1] for k, v in batch.items()}

    def head(self, n: int) -> Samples:
        """The first ``n`` items (whole batches, cut in the last one)."""
        out: list[dict[str, np.ndarray]] = []
        left = n
        for b in self.batches:
            if left <= 0:
                break
            k = min(left, _batch_len(b))
            out.append({name: v[:k] for name, v in b.items()})
            left -= k
        targets = None if self.targets is None else self.targets[:n]
        texts = None if self.texts is None else self.texts[:n]
        return Samples(batches=out, source=self.source, targets=targets, texts=texts, pairs=self.pairs)


def _batch_len(batch: dict[str, np.ndarray]) -> int:
    return int(next(iter(batch.values())).shape[0]) if batch else 0


def _split(arrays: dict[str, np.ndarray], batch_size: int) -> list[dict[str, np.ndarray]]:
    n = next(iter(arrays.values())).shape[0]
    return [{k: v[i : i + batch_size] for k, v in arrays.items()} for i in range(0, n, batch_size)]


def check_feeds(package: ModelPackage, feeds: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """Check names, rank and fixed dimensions against the manifest; cast floats to the declared dtype."""
    declared = {t.name: t for t in package.manifest.inputs}
    missing = [n for n in declared if n not in feeds]
    if missing:
        raise InvalidInput(
            f"data {source} has no tensor for model input(s) {missing} (found {sorted(feeds)})",
            fix="give one array per model input, named like the inputs in model.yaml (an .npz file)",
        )
    out: dict[str, np.ndarray] = {}
    for name, spec in declared.items():
        arr = np.asarray(feeds[name])
        want = spec.shape
        bad = arr.ndim != len(want) or any(w != -1 and w != g for w, g in zip(want, arr.shape, strict=False))
        if bad:
            raise InvalidInput(
                f"data {source} has shape {tuple(arr.shape)} for input '{name}', but the model takes {want}",
                fix=f"give samples shaped {['N' if d == -1 else d for d in want]} (-1 is any size)",
            )
        if arr.dtype.kind == "f" and spec.dtype.startswith("float"):
            arr = arr.astype(spec.dtype, copy=False)
        out[name] = arr
    return out


def _from_arrays(package: ModelPackage, path: Path, limit: int | None, batch_size: int) -> Samples:
    try:
        loaded: Any = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(
            f"cannot read {path}: {err}", fix="give an .npy array or an .npz archive made by numpy"
        ) from None
    targets = None
    if isinstance(loaded, np.ndarray):
        if len(package.manifest.inputs) != 1:
            names = [t.name for t in package.manifest.inputs]
            raise InvalidInput(
                f"{path} holds one array but the model has {len(names)} inputs {names}",
                fix="save an .npz with one array per input name",
            )
        arrays = {package.manifest.inputs[0].name: loaded}
    else:
        arrays = {k: loaded[k] for k in loaded.files}
        for key in ("y", "labels", "targets"):
            if key in arrays:
                targets = np.asarray(arrays.pop(key))
                break
        if (
            "x" in arrays
            and len(package.manifest.inputs) == 1
            and package.manifest.inputs[0].name not in arrays
        ):
            arrays = {package.manifest.inputs[0].name: arrays.pop("x")}
    if not arrays or any(a.ndim == 0 or a.shape[0] == 0 for a in arrays.values()):
        raise DataError(
            f"data {path} is empty (no samples)", fix="give at least one sample; 100-300 is typical"
        )
    if limit is not None:
        arrays = {k: v[:limit] for k, v in arrays.items()}
        targets = None if targets is None else targets[:limit]
    arrays = check_feeds(package, arrays, str(path))
    return Samples(batches=_split(arrays, batch_size), source=str(path), targets=targets)


def _preprocess(
    package: ModelPackage, items: Sequence[Any], source: str, batch_size: int
) -> list[dict[str, np.ndarray]]:
    from cpuai.tasks import for_package

    task = for_package(package)
    batches = []
    for i in range(0, len(items), batch_size):
        feeds = task.preprocess(list(items[i : i + batch_size]))
        batches.append(check_feeds(package, feeds, source))
    return batches


def _from_images(package: ModelPackage, path: Path, limit: int | None, batch_size: int, seed: int) -> Samples:
    from cpuai.data import ImageFolder

    folder = ImageFolder.open(path, classes=package.labels)
    samples = list(folder.samples)
    if limit is not None and limit < len(samples):
        # a fixed-seed subset that keeps every class represented
        order = np.random.default_rng(seed).permutation(len(samples))[:limit]
        samples = [samples[i] for i in sorted(order)]
    items = [p.read_bytes() for p, _ in samples]
    batches = _preprocess(package, items, str(path), batch_size)
    return Samples(
        batches=batches, source=str(path), targets=np.array([c for _, c in samples], dtype=np.int64)
    )


def _from_text(package: ModelPackage, path: Path, limit: int | None, batch_size: int) -> Samples:
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines:
        raise DataError(f"text file {path} holds no sentences", fix="write one sentence per line")
    pairs = None
    if all("\t" in ln for ln in lines):
        pairs = [tuple(ln.split("\t", 1)) for ln in lines][:limit]  # type: ignore[misc]
        texts = [q for q, _ in pairs]  # type: ignore[misc]
    else:
        texts = lines[:limit]
    batches = _preprocess(package, texts, str(path), batch_size)
    return Samples(batches=batches, source=str(path), texts=texts, pairs=pairs)  # type: ignore[arg-type]


def load_samples(
    source: str | Path | Samples,
    package: ModelPackage,
    *,
    limit: int | None = None,
    batch_size: int = 32,
    seed: int = 0,
) -> Samples:
    """Read calibration or evaluation data for ``package`` from a path (or pass ``Samples`` through)."""
    if isinstance(source, Samples):
        if len(source) == 0:
            raise DataError(f"data {source.source} is empty (no samples)", fix="give at least one sample")
        for b in source.batches:
            check_feeds(package, b, source.source)
        return source
    path = Path(source)
    if not path.exists():
        raise DataError(
            f"data {path} does not exist", fix="give an image folder, a .txt file of sentences, or .npy/.npz"
        )
    if path.is_dir():
        samples = _from_images(package, path, limit, batch_size, seed)
    elif path.suffix in (".npy", ".npz"):
        samples = _from_arrays(package, path, limit, batch_size)
    elif path.suffix in TEXT_SUFFIXES:
        samples = _from_text(package, path, limit, batch_size)
    else:
        raise DataError(
            f"data {path} has an unknown kind ({path.suffix or 'no suffix'})",
            fix="give an image folder, a .txt file (one sentence per line) or a .npy/.npz array file",
        )
    if len(samples) == 0:
        raise DataError(
            f"data {path} is empty (no samples)", fix="give at least one sample; 100-300 is typical"
        )
    return samples
