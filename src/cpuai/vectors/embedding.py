"""Texts to vectors for indexes, through ``cpuai.runtime`` and the text-embedding task.

``TextEmbedder`` loads a text-embedding package (e.g. ``cpuai models export minilm``, or its INT8
form from ``cpuai quantize``) on the runtime for throughput: with ``threads`` cores it runs that
many one-core streams (two-core streams past four cores) and keeps every stream busy by submitting
batches ahead (``engine.submit``); a single synchronous ``infer`` would use one stream, i.e. one
core. All texts are tokenised once, in one ``encode_batch`` call of the ``tokenizers`` library
(Rust, parallel), without padding; they are sorted by token length and cut into batches that are
padded only to their own longest text, straight into the int64 arrays fed to the engine.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from cpuai.errors import ConfigError, InvalidInput, ModelError


class TextEmbedder:
    """A loaded text-embedding package: ``embed(texts) -> (n, d) float32``, L2-normalised by the task.

    ``threads`` is the number of cores to use in all (default: ``cpuai.hardware.core_budget()``).
    """

    def __init__(
        self, package: str | Path, *, backend: str = "auto", threads: int | None = None, batch_size: int = 32
    ) -> None:
        from tokenizers import Tokenizer

        from cpuai import package as pkgmod
        from cpuai.runtime import load
        from cpuai.runtime.loader import plan_threads
        from cpuai.tasks.text import TextEmbedding

        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch size must be a positive integer, got {batch_size!r}", fix="use 16..64")
        self.path = Path(package)
        self.package = pkgmod.read(self.path)
        if self.package.manifest.task != "text-embedding":
            raise ModelError(
                f"{self.path} is a {self.package.manifest.task} package, not text-embedding",
                fix="pass a text model, e.g. from: cpuai models export minilm --out minilm",
            )
        self.task = TextEmbedding(self.package)
        per_stream, streams = plan_threads(None, None, "throughput", threads)
        self.engine = load(
            self.package, backend=backend, threads=per_stream, streams=streams, hint="throughput"
        )
        self.streams = streams
        self.batch_size = batch_size
        padding = self.task.tokenizer.padding or {}
        self._pad_id = int(padding.get("pad_id", 0))
        self._pad_type_id = int(padding.get("pad_type_id", 0))
        self._tokenizer = Tokenizer.from_str(self.task.tokenizer.to_str())  # same truncation, no padding
        self._tokenizer.no_padding()

    @property
    def dim(self) -> int | None:
        """Embedding width when the manifest declares it."""
        d = self.package.manifest.extra.get("dimension")
        return int(d) if d else None

    def _feeds(self, encodings: list[Any]) -> dict[str, np.ndarray]:
        """One batch's engine inputs, padded to its longest text (right padding, mask 0 there)."""
        width = max(len(e.ids) for e in encodings)
        shape = (len(encodings), width)
        ids = np.full(shape, self._pad_id, dtype=np.int64)
        mask = np.zeros(shape, dtype=np.int64)
        types = np.full(shape, self._pad_type_id, dtype=np.int64)
        for row, e in enumerate(encodings):
            n = len(e.ids)
            ids[row, :n] = e.ids
            mask[row, :n] = e.attention_mask
            types[row, :n] = e.type_ids
        arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        return {name: arrays[role] for role, name in self.task.feeds.items()}

    def embed(self, texts: Sequence[str], progress: Callable[[int], Any] | None = None) -> np.ndarray:
        """Vectors of ``texts`` in their order; ``progress(n_done)`` is called after every batch."""
        texts = list(texts)
        if not texts:
            raise InvalidInput("no texts to embed", fix="pass at least one non-empty line")
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise InvalidInput(f"text {i} is a {type(t).__name__}, not a string", fix="pass strings")
        encodings = self._tokenizer.encode_batch(texts)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(lengths, kind="stable")
        out: np.ndarray | None = None
        in_flight: deque[tuple[np.ndarray, dict[str, np.ndarray], Future[dict[str, np.ndarray]]]] = deque()

        def finish_one() -> None:
            nonlocal out
            idx, feeds, future = in_flight.popleft()
            vec = self.task.vectors(future.result(), feeds)
            if out is None:
                out = np.empty((len(texts), vec.shape[1]), dtype=np.float32)
            out[idx] = vec
            if progress is not None:
                progress(len(idx))

        try:
            for start in range(0, len(texts), self.batch_size):
                idx = order[start : start + self.batch_size]
                feeds = self._feeds([encodings[i] for i in idx])
                in_flight.append((idx, feeds, self.engine.submit(feeds)))
                if len(in_flight) >= 2 * self.streams:  # every stream busy, one batch queued behind each
                    finish_one()
            while in_flight:
                finish_one()
        finally:
            for _, _, future in in_flight:  # an error part-way: do not leave work queued
                future.cancel()
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
