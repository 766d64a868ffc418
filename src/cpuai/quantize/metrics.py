"""The metric a candidate is judged by, per task kind, or a user's own function.

A metric sees the FP32 engine first (``reference``; the embedding metric keeps its vectors) and
then scores any engine on the same evaluation samples; higher is better.

    image-classification  top-1 accuracy against the folder's (or .npz ``y``) labels
    text-embedding        mean cosine similarity to the FP32 embeddings, or recall@1 with query/doc pairs
    tabular               ROC AUC (binary) against the labels
    any, via the API      ``UserMetric(fn)``, ``fn(engine, samples) -> float``
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from cpuai.errors import ConfigError, DataError
from cpuai.package import ModelPackage
from cpuai.quantize.samples import Samples
from cpuai.runtime.engine import Engine


class Metric(Protocol):
    """Scores an engine on fixed evaluation samples (higher is better)."""

    name: str

    def reference(self, engine: Engine) -> None:
        """Called once with the FP32 engine before any candidate is scored."""
        ...

    def __call__(self, engine: Engine) -> float: ...


def _first_output(engine: Engine, batch: dict[str, np.ndarray], name: str | None = None) -> np.ndarray:
    out = engine.infer(batch)
    return np.asarray(out[name] if name in out else next(iter(out.values())))


class Top1:
    """Top-1 accuracy: argmax of the first output against the labels."""

    name = "top1"

    def __init__(self, samples: Samples, output: str | None = None) -> None:
        if samples.targets is None:
            raise DataError(
                f"evaluation data {samples.source} has no labels, so top-1 cannot be measured",
                fix="give an image folder (DIR/<label>/...) or an .npz with 'x' and 'y'",
            )
        self.samples = samples
        self.output = output
        self.targets: np.ndarray = samples.targets

    def reference(self, engine: Engine) -> None:
        return None

    def __call__(self, engine: Engine) -> float:
        preds = np.concatenate(
            [_first_output(engine, b, self.output).argmax(-1) for b in self.samples.batches]
        )
        return float(np.mean(preds == self.targets[: len(preds)]))


class AUC:
    """ROC AUC of a binary classifier: the positive-class score is the last column (or the only one)."""

    name = "auc"

    def __init__(self, samples: Samples, output: str | None = None) -> None:
        if samples.targets is None:
            raise DataError(
                f"evaluation data {samples.source} has no labels, so AUC cannot be measured",
                fix="give an .npz with the feature arrays and 'y'",
            )
        self.samples = samples
        self.output = output
        self.targets: np.ndarray = samples.targets

    def reference(self, engine: Engine) -> None:
        return None

    def __call__(self, engine: Engine) -> float:
        from sklearn.metrics import roc_auc_score

        scores = np.concatenate(
            [
                _first_output(engine, b, self.output).reshape(len(next(iter(b.values()))), -1)[:, -1]
                for b in self.samples.batches
            ]
        )
        return float(roc_auc_score(self.targets[: len(scores)], scores))


def embeddings(
    engine: Engine,
    batch: dict[str, np.ndarray],
    *,
    pooling: str = "mean",
    normalize: bool = True,
    mask_name: str = "attention_mask",
) -> np.ndarray:
    """Sentence vectors from a text encoder's output: pooled token states (or an already pooled output)."""
    out = engine.infer(batch)
    pooled = [v for v in out.values() if np.asarray(v).ndim == 2]
    hidden = np.asarray(next(iter(out.values())))
    if hidden.ndim == 3:
        if pooling == "cls":
            vec = hidden[:, 0]
        else:
            mask = batch.get(mask_name)
            mask = np.ones(hidden.shape[:2], np.float32) if mask is None else mask.astype(np.float32)
            vec = (hidden * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
    else:
        vec = np.asarray(pooled[0]) if pooled else hidden
    vec = vec.astype(np.float32)
    if normalize:
        vec /= np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-12)
    return vec


class _Embedding:
    def __init__(self, samples: Samples, package: ModelPackage) -> None:
        text = package.manifest.preprocessing.text
        self.pooling = text.pooling if text is not None else "mean"
        self.mask = (
            text.input_names.get("attention_mask", "attention_mask") if text is not None else "attention_mask"
        )
        self.samples = samples

    def _vectors(self, engine: Engine, batches: list[dict[str, np.ndarray]]) -> np.ndarray:
        return np.concatenate(
            [
                embeddings(engine, b, pooling=self.pooling, normalize=True, mask_name=self.mask)
                for b in batches
            ]
        )


class EmbeddingCosine(_Embedding):
    """Mean cosine similarity of a candidate's sentence embeddings to the FP32 ones (1.0 for FP32 itself)."""

    name = "cosine"

    def reference(self, engine: Engine) -> None:
        self.reference_ = self._vectors(engine, self.samples.batches)

    def __call__(self, engine: Engine) -> float:
        ref = getattr(self, "reference_", None)
        if ref is None:
            raise ConfigError(
                "the cosine metric has no FP32 reference", fix="call reference(fp32_engine) first"
            )
        got = self._vectors(engine, self.samples.batches)
        return float(np.mean(np.sum(ref * got, axis=1)))


class RetrievalRecall(_Embedding):
    """Recall@1 of query -> document search over the pairs: each query's own document must rank first."""

    name = "recall@1"

    def __init__(self, samples: Samples, package: ModelPackage) -> None:
        super().__init__(samples, package)
        if not samples.pairs:
            raise DataError(
                f"evaluation data {samples.source} has no query/document pairs",
                fix="write one 'query<TAB>document' per line",
            )
        from cpuai.quantize.samples import _preprocess

        self.doc_batches = _preprocess(package, [d for _, d in samples.pairs], samples.source, 32)

    def reference(self, engine: Engine) -> None:
        return None

    def __call__(self, engine: Engine) -> float:
        q = self._vectors(engine, self.samples.batches)
        d = self._vectors(engine, self.doc_batches)
        hits = (q @ d.T).argmax(1) == np.arange(len(q))
        return float(np.mean(hits))


class UserMetric:
    """A user's own metric: ``fn(engine, samples) -> float`` (higher is better)."""

    def __init__(
        self, fn: Callable[[Engine, Samples], float], samples: Samples, name: str | None = None
    ) -> None:
        if not callable(fn):
            raise ConfigError(
                f"the user metric {fn!r} is not callable", fix="pass a function fn(engine, samples) -> float"
            )
        self.fn = fn
        self.samples = samples
        self.name = name or getattr(fn, "__name__", "user_metric")

    def reference(self, engine: Engine) -> None:
        return None

    def __call__(self, engine: Engine) -> float:
        value = self.fn(engine, self.samples)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"the user metric {self.name} returned {value!r}, not a number",
                fix="return one float, higher is better",
            ) from None


def metric_for(
    package: ModelPackage, samples: Samples, user: Callable[..., float] | Metric | None = None
) -> Any:
    """The metric for a package's task on ``samples``; ``user`` (a function or a Metric) wins when given."""
    if user is not None:
        if hasattr(user, "reference") and hasattr(user, "name"):
            return user
        return UserMetric(user, samples)
    task = package.manifest.task
    output = package.manifest.outputs[0].name
    if task == "image-classification":
        return Top1(samples, output)
    if task == "text-embedding":
        return RetrievalRecall(samples, package) if samples.pairs else EmbeddingCosine(samples, package)
    if task == "tabular":
        return AUC(samples, output)
    raise ConfigError(
        f"package {package.path} has task '{task}', which has no accuracy metric, "
        "and no user metric was given",
        fix="set the package's task (image-classification, text-embedding, tabular) or pass metric=fn "
        "(Python API: fn(engine, samples) -> float)",
    )
