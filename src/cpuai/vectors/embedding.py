"""Texts to vectors for indexes, through ``cpuai.runtime`` and the text-embedding task.

``TextEmbedder`` loads a text-embedding package (e.g. ``cpuai models export minilm``, or its INT8
form from ``cpuai quantize``) on the runtime with the core budget, and embeds in chunks sorted by
length, so each batch pads little and a progress callback can follow along.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cpuai.errors import ConfigError, InvalidInput, ModelError

_CHUNK = 512  # texts per progress step


class TextEmbedder:
    """A loaded text-embedding package: ``embed(texts) -> (n, d) float32``, L2-normalised by the task."""

    def __init__(
        self, package: str | Path, *, backend: str = "auto", threads: int | None = None, batch_size: int = 32
    ) -> None:
        from cpuai import package as pkgmod
        from cpuai.runtime import load

        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch size must be a positive integer, got {batch_size!r}", fix="use 16..64")
        self.path = Path(package)
        self.package = pkgmod.read(self.path)
        if self.package.manifest.task != "text-embedding":
            raise ModelError(
                f"{self.path} is a {self.package.manifest.task} package, not text-embedding",
                fix="pass a text model, e.g. from: cpuai models export minilm --out minilm",
            )
        self.engine = load(self.package, backend=backend, threads=threads, hint="throughput")
        self.batch_size = batch_size

    @property
    def dim(self) -> int | None:
        """Embedding width when the manifest declares it."""
        d = self.package.manifest.extra.get("dimension")
        return int(d) if d else None

    def embed(self, texts: Sequence[str], progress: Callable[[int], Any] | None = None) -> np.ndarray:
        """Vectors of ``texts`` in their order; ``progress(n_done)`` is called after every chunk."""
        from cpuai.tasks.text import embed

        texts = list(texts)
        if not texts:
            raise InvalidInput("no texts to embed", fix="pass at least one non-empty line")
        order = np.argsort([len(t) for t in texts], kind="stable")  # chunks of similar length
        out: np.ndarray | None = None
        for start in range(0, len(texts), _CHUNK):
            idx = order[start : start + _CHUNK]
            vec = embed(self.engine, [texts[i] for i in idx], self.batch_size, package=self.package)
            if out is None:
                out = np.empty((len(texts), vec.shape[1]), dtype=np.float32)
            out[idx] = vec
            if progress is not None:
                progress(len(idx))
        assert out is not None
        return out

    def close(self) -> None:
        """Release the engine."""
        self.engine.close()


def read_texts(path: str | Path) -> list[str]:
    """Non-empty lines of a UTF-8 text file, stripped: one document per line."""
    from cpuai.errors import DataError

    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(
            f"cannot read texts from {p}: {exc}", fix="pass a UTF-8 file with one text per line"
        ) from None
    texts = [line.strip() for line in lines if line.strip()]
    if not texts:
        raise DataError(f"{p} has no non-empty lines", fix="put one text per line")
    return texts
