"""scikit-learn's real handwritten digits exported as an image folder ``DIR/train|val|test/<label>/<i>.png``.

The split is stratified and seeded, so every export with the same seed holds the same files;
images are upscaled from 8x8 (bilinear) to ``size`` and saved as 8-bit gray or RGB PNGs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cpuai.errors import ConfigError

#: Fractions of the 1797 digits in each split.
SPLIT_FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}


@dataclass(frozen=True)
class DigitsExport:
    """What an export wrote: the folder and the number of images per split."""

    root: Path
    counts: dict[str, int]
    size: int
    color: str


def split_indices(labels: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Stratified, seeded train/val/test indices over ``labels`` (70/15/15)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    train, rest = train_test_split(
        idx, train_size=SPLIT_FRACTIONS["train"], stratify=labels, random_state=seed
    )
    val, test = train_test_split(rest, train_size=0.5, stratify=labels[rest], random_state=seed)
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def export_digits(out: str | Path, *, size: int = 32, rgb: bool = False, seed: int = 0) -> DigitsExport:
    """Write the digits as PNGs under ``out``; refuses a folder that already holds files."""
    from PIL import Image
    from sklearn.datasets import load_digits

    if not 8 <= size <= 512:
        raise ConfigError(f"--size {size} is out of range", fix="use an image size between 8 and 512 pixels")
    root = Path(out)
    if root.exists() and any(root.iterdir()):
        raise ConfigError(f"output folder {root} is not empty", fix="choose a new --out folder or remove it")
    digits = load_digits()
    images = np.clip(digits.images * (255.0 / 16.0), 0, 255).astype(np.uint8)
    labels = digits.target
    counts: dict[str, int] = {}
    for split, idx in split_indices(labels, seed).items():
        for label in range(10):
            (root / split / str(label)).mkdir(parents=True, exist_ok=True)
        for i in idx:
            img = Image.fromarray(images[i], mode="L").resize((size, size), Image.Resampling.BILINEAR)
            if rgb:
                img = img.convert("RGB")
            img.save(root / split / str(int(labels[i])) / f"{int(i)}.png")
        counts[split] = len(idx)
    return DigitsExport(root=root, counts=counts, size=size, color="rgb" if rgb else "gray")
