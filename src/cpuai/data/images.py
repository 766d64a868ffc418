"""Decode an image folder into one in-memory uint8 tensor, skipping (and counting) unreadable files.

Small and medium data sets fit in memory as uint8 (50 000 RGB images at 32x32 take 150 MB), so the
training loop never waits on decoding: batches are sliced from the tensor and augmented in torch.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cpuai.data.imagefolder import ImageFolder
from cpuai.errors import DataError
from cpuai.hardware import core_budget

log = logging.getLogger("cpuai.data")


@dataclass
class DecodedImages:
    """Images as uint8 ``N x C x H x W``, their labels and files; ``skipped`` lists unreadable files."""

    pixels: np.ndarray
    labels: np.ndarray
    files: list[Path]
    classes: list[str]
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)


def _decode(path: Path, size: tuple[int, int], color: str) -> np.ndarray | str:
    from PIL import Image

    try:
        with Image.open(path) as raw:
            img = raw.convert("RGB" if color == "rgb" else "L")
            if img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            arr = np.asarray(img, dtype=np.uint8)
    except Exception as err:  # PIL raises many kinds for a bad file; all mean "unreadable"
        return f"{type(err).__name__}: {err}"
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def detect_color(folder: ImageFolder) -> str:
    """'gray' when the first readable image is single-channel, else 'rgb'."""
    from PIL import Image

    for path, _ in folder.samples[:20]:
        try:
            with Image.open(path) as img:
                return "gray" if img.mode in ("L", "1", "I", "I;16", "F") else "rgb"
        except Exception:
            continue
    return "rgb"


def detect_size(folder: ImageFolder) -> tuple[int, int]:
    """(height, width) of the first readable image."""
    from PIL import Image

    for path, _ in folder.samples[:20]:
        try:
            with Image.open(path) as img:
                return img.size[1], img.size[0]
        except Exception:
            continue
    raise DataError(f"no readable image among the first files of {folder.root}", fix="check the image files")


def decode_folder(
    folder: ImageFolder, *, size: tuple[int, int], color: str, threads: int | None = None
) -> DecodedImages:
    """Decode every image of ``folder`` at ``size``; unreadable ones are skipped and logged in one warning."""
    threads = threads or core_budget()
    paths = [p for p, _ in folder.samples]
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        results = list(pool.map(lambda p: _decode(p, size, color), paths, chunksize=64))
    good = [i for i, r in enumerate(results) if isinstance(r, np.ndarray)]
    skipped = [(paths[i], r) for i, r in enumerate(results) if isinstance(r, str)]
    if skipped:
        shown = ", ".join(str(p) for p, _ in skipped[:3])
        log.warning(
            "warning: skipped %d unreadable image(s) of %d in %s (%s%s)",
            len(skipped),
            len(paths),
            folder.root,
            shown,
            ", ..." if len(skipped) > 3 else "",
        )
    if not good:
        raise DataError(
            f"no image in {folder.root} could be read ({len(skipped)} unreadable)",
            fix="check the image files",
        )
    channels = 3 if color == "rgb" else 1
    pixels = np.empty((len(good), channels, size[0], size[1]), dtype=np.uint8)
    for j, i in enumerate(good):
        pixels[j] = results[i]
    labels = np.array([folder.samples[i][1] for i in good], dtype=np.int64)
    return DecodedImages(pixels, labels, [paths[i] for i in good], list(folder.classes), skipped)
