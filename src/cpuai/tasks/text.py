"""Text embedding: strings to token ids with the package's ``tokenizer.json``, hidden states to vectors.

Batches are padded to their longest text (not to ``max_length``) and truncated at ``max_length``;
token states are mean-pooled under the attention mask and L2-normalised (as sentence-transformers
does). ``embed(engine, texts)`` sorts texts by length into batches so little padding is computed,
and returns the vectors in the caller's order.

Pooling needs the attention mask, so call ``postprocess(outputs, feeds=feeds)``; without ``feeds``
the mask of the last ``preprocess`` in the same thread is used when its shape fits.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cpuai.errors import InvalidInput, ModelError
from cpuai.runtime.engine import Engine
from cpuai.tasks.base import Score
from cpuai.tasks.batching import batches, check_batch_size


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Average token vectors (B×S×D) over the positions where ``mask`` (B×S) is 1.

    One matrix product (B×1×S @ B×S×D) rather than a masked B×S×D copy and a sum: no temporary
    and fewer numpy calls (a batch of 32×40 tokens in 105 instead of 370 µs here), which also
    matters right after an engine call, when the caches are cold.
    """
    m = mask.astype(np.float32, copy=False)
    summed = np.matmul(m[:, None, :], hidden)[:, 0, :]
    return summed / np.maximum(m.sum(axis=1, keepdims=True), 1e-9)


def row_norms(x: np.ndarray) -> np.ndarray:
    """The L2 norm of each row of a B×D array."""
    return np.sqrt(np.einsum("ij,ij->i", x, x))


def l2_normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(row_norms(x), 1e-12)[:, None]


class TextEmbedding:
    """The text-embedding task of one package: tokenizer, pooling and normalisation from its manifest."""

    kind = "text-embedding"

    def __init__(self, package: Any) -> None:
        from tokenizers import Tokenizer

        m = package.manifest
        if m.preprocessing.text is None:
            raise ModelError(
                f"package {package.path} is a text-embedding model without preprocessing.text",
                fix="add preprocessing.text (tokenizer, max_length) to model.yaml",
            )
        self.package = package
        self.config = m.preprocessing.text
        try:
            tokenizer = Tokenizer.from_file(str(package.file(self.config.tokenizer)))
        except ModelError:
            raise
        except Exception as err:
            raise ModelError(
                f"cannot read tokenizer {self.config.tokenizer} in {package.path}: {err}",
                fix="re-export the package (cpuai models export minilm)",
            ) from None
        pad = tokenizer.padding or {}
        tokenizer.enable_padding(
            pad_id=pad.get("pad_id", 0),
            pad_type_id=pad.get("pad_type_id", 0),
            pad_token=pad.get("pad_token", "[PAD]"),
        )  # to the longest in the batch
        tokenizer.enable_truncation(max_length=self.config.max_length)
        self.tokenizer = tokenizer
        declared = {s.name for s in m.inputs}
        self.feeds = {role: name for role, name in self.config.input_names.items() if name in declared}
        if "input_ids" not in self.feeds:
            raise ModelError(
                f"package {package.path}: no model input is named for input_ids",
                fix="set preprocessing.text.input_names.input_ids to the model's input",
            )
        self.output = m.outputs[0].name
        self._local = threading.local()

    def preprocess(self, items: Sequence[Any]) -> dict[str, np.ndarray]:
        """Texts to int64 ``input_ids``/``attention_mask``/``token_type_ids`` padded to the longest."""
        if len(items) == 0:
            raise InvalidInput("no texts to embed", fix="pass at least one string")
        for i, t in enumerate(items):
            if not isinstance(t, str):
                raise InvalidInput(f"text {i} is a {type(t).__name__}, not a string", fix="pass strings")
        enc = self.tokenizer.encode_batch(list(items))
        arrays = {
            "input_ids": np.asarray([e.ids for e in enc], dtype=np.int64),
            "attention_mask": np.asarray([e.attention_mask for e in enc], dtype=np.int64),
            "token_type_ids": np.asarray([e.type_ids for e in enc], dtype=np.int64),
        }
        self._local.mask = arrays["attention_mask"]
        return {name: arrays[role] for role, name in self.feeds.items()}

    def _mask(
        self, hidden: np.ndarray, outputs: dict[str, np.ndarray], feeds: dict[str, np.ndarray] | None
    ) -> Any:
        name = self.feeds.get("attention_mask", "attention_mask")
        for source in (feeds or {}, outputs):
            if name in source:
                return source[name]
        mask = getattr(self._local, "mask", None)
        if mask is not None and mask.shape == hidden.shape[:2]:
            return mask
        raise InvalidInput(
            "mean pooling needs the attention mask of this batch",
            fix="call postprocess(outputs, feeds=feeds) with the feeds from preprocess",
        )

    def vectors(
        self, outputs: dict[str, np.ndarray], feeds: dict[str, np.ndarray] | None = None
    ) -> np.ndarray:
        """One float32 embedding per item (pooled per the manifest, L2-normalised if it says so)."""
        hidden = outputs[self.output] if self.output in outputs else next(iter(outputs.values()))
        hidden = np.asarray(hidden, dtype=np.float32)
        if hidden.ndim == 3:
            if self.config.pooling == "cls":
                vec = hidden[:, 0]
            else:
                vec = mean_pool(hidden, self._mask(hidden, outputs, feeds))
        else:
            vec = hidden.reshape(len(hidden), -1)
        return l2_normalize(vec) if self.config.normalize else vec

    def postprocess(
        self,
        outputs: dict[str, np.ndarray],
        *,
        top_k: int = 5,
        feeds: dict[str, np.ndarray] | None = None,
        arrays: bool = False,
    ) -> list[dict[str, Any]]:
        """Per item ``{"embedding": list[float] (a float32 array with ``arrays``), "dim": D, "norm": ||v||}``.

        ``arrays=True`` keeps each embedding a float32 numpy row, for writers that serialise numpy
        (the server's orjson): they write float32's shortest form, which reads back to the same
        float32 in about half the JSON of the Python floats (8.0 vs 4.7 kB for 384 dimensions).
        """
        vec = self.vectors(outputs, feeds)
        norms = row_norms(vec)
        return [
            {"embedding": v if arrays else v.tolist(), "dim": int(v.shape[0]), "norm": float(n)}
            for v, n in zip(vec, norms, strict=True)
        ]

    def embed(self, engine: Engine, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """N×D float32 embeddings in the order of ``texts``, batched by token length to cut padding."""
        check_batch_size(batch_size)
        texts = list(texts)
        if not texts:
            raise InvalidInput("no texts to embed", fix="pass at least one string")
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise InvalidInput(f"text {i} is a {type(t).__name__}, not a string", fix="pass strings")
        lengths = [sum(e.attention_mask) for e in self.tokenizer.encode_batch(texts)]  # unpadded lengths
        order = np.argsort(lengths, kind="stable")
        out: np.ndarray | None = None
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            feeds = self.preprocess([texts[i] for i in idx])
            vec = self.vectors(engine.infer(feeds), feeds)
            if out is None:
                out = np.empty((len(texts), vec.shape[1]), dtype=np.float32)
            out[idx] = vec
        assert out is not None
        return out

    def score(self, engine: Engine, dataset: Iterable[Any], *, batch_size: int = 32) -> Score:
        """Mean cosine similarity of the engine's embeddings to reference vectors over (text, vector) pairs.

        With FP32 embeddings as references this measures what quantization or conversion cost.
        """
        cos: list[np.ndarray] = []
        for texts, refs in batches(dataset, batch_size):
            got = self.embed(engine, texts, batch_size=batch_size)
            ref = l2_normalize(np.asarray(refs, dtype=np.float32).reshape(len(refs), -1))
            cos.append((l2_normalize(got) * ref).sum(axis=1))
        if not cos:
            raise InvalidInput("the data set is empty", fix="pass (text, reference vector) pairs")
        values = np.concatenate(cos)
        return Score(
            primary="cosine",
            values={"cosine": float(values.mean()), "min_cosine": float(values.min())},
            count=len(values),
            details={"cosines": values},
        )


def embed(engine: Engine, texts: Sequence[str], batch_size: int = 32, *, package: Any = None) -> np.ndarray:
    """Embed ``texts`` with an engine loaded from a text-embedding package (N×D, caller's order).

    The package is taken from ``engine.package`` (set by ``cpuai.runtime.load``) unless given.
    """
    from cpuai import package as pkgmod

    package = package if package is not None else getattr(engine, "package", None)
    if package is None:
        raise ModelError("this engine does not say which package it runs", fix="pass package= to embed()")
    if isinstance(package, str | Path):
        package = pkgmod.read(package)
    return TextEmbedding(package).embed(engine, texts, batch_size=batch_size)
