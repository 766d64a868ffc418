"""The Wide & Deep recipe: a CSV with declared numeric and categorical columns in, a tabular package out.

``--model wide-deep`` trains the linear (wide) and embedding-MLP (deep) parts together;
``--model wide`` trains the wide part alone, which is logistic regression on one-hot categoricals
and numerics: the baseline to beat. Validation AUC drives early stopping; the package records
AUC, log-loss and accuracy on the validation and test splits.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from cpuai import package as pkg
from cpuai.data.tabular import TabularArrays, check_columns, encode, fit_preprocessing, read_csv, split_rows
from cpuai.errors import ConfigError, DataError
from cpuai.train.spec import TrainSpec

log = logging.getLogger("cpuai.train")
FACTORY = "cpuai.models.widedeep:widedeep"


def declared_columns(spec: TrainSpec) -> tuple[list[str], list[str], str]:
    """The numeric, categorical and target columns: from the flags, else from the CSV's ``.json`` sidecar."""
    numeric, categorical, target = spec.numeric, spec.categorical, spec.target
    sidecar = Path(spec.data).with_suffix(".json")
    if (numeric is None or categorical is None or target is None) and sidecar.is_file():
        try:
            desc = json.loads(sidecar.read_text())
        except ValueError:
            desc = {}
        numeric = numeric if numeric is not None else desc.get("numeric")
        categorical = categorical if categorical is not None else desc.get("categorical")
        target = target or desc.get("target")
    if not numeric or not categorical or not target:
        raise ConfigError(
            f"columns of {spec.data} are not declared"
            f" (numeric={numeric}, categorical={categorical}, target={target})",
            fix="pass --numeric a,b --categorical c,d --target y (at least one numeric and one categorical)",
        )
    return list(numeric), list(categorical), target


def _as_numpy_target(arrays: TabularArrays, source: str) -> np.ndarray:
    if arrays.target is None:
        raise DataError(f"{source} has no target values", fix="declare --target")
    values = set(np.unique(arrays.target).tolist())
    if not values <= {0.0, 1.0}:
        raise DataError(
            f"{source}: target column holds {sorted(values)[:5]}, not 0/1",
            fix="Wide & Deep here predicts a binary target; encode it as 0 and 1",
        )
    return arrays.target


class WideDeepRecipe:
    """Recipe state: encoded splits, the Wide & Deep (or wide-only) model and its preprocessing."""

    primary = "auc"
    image_input = False

    def __init__(self, spec: TrainSpec) -> None:
        import torch

        self.spec = spec
        numeric, categorical, target = declared_columns(spec)
        header, rows = read_csv(spec.data)
        check_columns(header, [*numeric, *categorical, target], spec.data)
        parts = split_rows(len(rows), val=spec.val_fraction, test=spec.test_fraction, seed=spec.seed)
        train_rows = [rows[i] for i in parts["train"]]
        if spec.limit:
            train_rows = train_rows[: spec.limit]
        self.prep = fit_preprocessing(
            train_rows, numeric=numeric, categorical=categorical, target=target, source=spec.data
        )
        self.splits = {"train": encode(train_rows, self.prep, source=spec.data)}
        for name in ("val", "test"):
            if len(parts[name]):
                self.splits[name] = encode([rows[i] for i in parts[name]], self.prep, source=spec.data)
        for name, arrays in self.splits.items():
            _as_numpy_target(arrays, f"{spec.data} ({name} split)")
        train = self.splits["train"]
        self.train_size = len(train)
        self._num = torch.from_numpy(train.numeric)
        self._cat = torch.from_numpy(train.categorical)
        self._y = torch.from_numpy(train.target)
        cards = [len(c.vocabulary or []) for c in self.prep.columns if c.kind == "categorical"]
        self.kwargs: dict[str, Any] = {
            "num_numeric": len(numeric),
            "cardinalities": cards,
            "embed_dim": 8,
            "hidden": [64, 32],
            "deep": spec.model != "wide",
        }
        from cpuai.models.widedeep import widedeep

        self.model = widedeep(**self.kwargs)
        log.info(
            "data %s: %s rows; numeric %s; categorical %s; target %s",
            spec.data,
            ", ".join(f"{k} {len(v)}" for k, v in self.splits.items()),
            numeric,
            categorical,
            target,
        )

    def train_batch(self, idx: Any, generator: Any) -> tuple[tuple[Any, ...], Any]:
        return (self._num[idx], self._cat[idx]), self._y[idx]

    def loss(self, output: Any, target: Any) -> Any:
        import torch.nn.functional as F

        return F.binary_cross_entropy_with_logits(output.squeeze(1), target)

    def evaluate(self, model: Any, split: str) -> dict[str, float] | None:
        import torch

        from cpuai.tasks.tabular import binary_metrics

        if split not in self.splits:
            return None
        data = self.splits[split]
        was_training = model.training
        model.eval()
        with torch.inference_mode():
            logit = (
                model(torch.from_numpy(data.numeric), torch.from_numpy(data.categorical))
                .float()
                .numpy()[:, 0]
            )
        model.train(was_training)
        assert data.target is not None
        return binary_metrics(data.target, 1.0 / (1.0 + np.exp(-logit)))

    def export(self, model: Any, dest: Path, metrics: dict[str, float]) -> pkg.ModelPackage:
        import torch

        n_num = self.kwargs["num_numeric"]
        n_cat = len(self.kwargs["cardinalities"])
        example = (torch.zeros(2, n_num), torch.zeros(2, n_cat, dtype=torch.long))
        with torch.inference_mode():
            traced = torch.jit.trace(model, example)
        spec = self.spec
        manifest = pkg.Manifest(
            name=spec.name or Path(spec.data).stem,
            task="tabular",
            format="torchscript",
            precision="fp32",
            inputs=[
                pkg.TensorSpec(name="numeric", dtype="float32", shape=[-1, n_num], layout="NC"),
                pkg.TensorSpec(name="categorical", dtype="int64", shape=[-1, n_cat], layout="NC"),
            ],
            outputs=[pkg.TensorSpec(name="logits", dtype="float32", shape=[-1, 1])],
            preprocessing=pkg.Preprocessing(tabular=self.prep),
            labels=["0", "1"],
            metrics=metrics,
            architecture=pkg.Architecture(factory=FACTORY, kwargs=self.kwargs, weights="weights.pt"),
            lineage=[
                pkg.LineageStep(
                    command=f"cpuai train wide-deep --model {spec.model}",
                    source=str(Path(spec.data).resolve()),
                    settings=spec.model_dump(mode="json", by_alias=True),
                    results=metrics,
                )
            ],
            extra={"synthetic_data": True} if "synthetic" in Path(spec.data).name else {},
        )
        state = model.state_dict()

        def files(tmp: Path) -> None:
            torch.jit.save(traced, str(tmp / "model.pt"))
            torch.save(state, tmp / "weights.pt")

        return pkg.write(dest, manifest, files)
