"""Image-folder data sets: ``DIR/<label>/<file>``, the label taken from the directory name.

This is how users lay out their own photos, and how ``cpuai data digits`` exports the digits.
A directory with ``train``/``val``/``test`` subfolders is a split data set; pick one with ``split``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cpuai.errors import DataError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"})
SPLITS = ("train", "val", "test")


def is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def has_splits(root: Path) -> bool:
    return any((root / s).is_dir() for s in SPLITS)


@dataclass
class ImageFolder:
    """The (path, class index) samples of an image folder, classes sorted by name."""

    root: Path
    classes: list[str]
    samples: list[tuple[Path, int]]

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[tuple[Path, int]]:
        return iter(self.samples)

    @classmethod
    def open(
        cls, root: str | Path, split: str | None = None, *, classes: list[str] | None = None
    ) -> ImageFolder:
        """Scan ``root`` (or ``root/split``); ``classes`` fixes the label order (e.g. a package's labels)."""
        base = Path(root)
        if not base.is_dir():
            raise DataError(
                f"data folder {base} does not exist",
                fix="check the path, or export one with 'cpuai data digits --out DIR'",
            )
        if split is None and has_splits(base):
            split = "test" if (base / "test").is_dir() else next(s for s in SPLITS if (base / s).is_dir())
        if split is not None:
            if not (base / split).is_dir():
                raise DataError(
                    f"data folder {base} has no '{split}' split",
                    fix=f"create {base / split}/<label>/ or pass another split",
                )
            base = base / split
        found = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not found:
            raise DataError(
                f"data folder {base} has no class subfolders",
                fix="lay images out as DIR/<label>/<image>, one folder per class",
            )
        order = classes if classes is not None else found
        unknown = [c for c in found if c not in order]
        if unknown:
            raise DataError(
                f"data folder {base} has classes {unknown} that the model does not know "
                f"(model labels: {order})",
                fix="remove those folders or retrain with them",
            )
        index = {c: i for i, c in enumerate(order)}
        samples = [(p, index[c]) for c in found for p in sorted((base / c).iterdir()) if is_image(p)]
        if not samples:
            raise DataError(
                f"data folder {base} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})",
                fix="add images under DIR/<label>/",
            )
        return cls(root=base, classes=list(order), samples=samples)
