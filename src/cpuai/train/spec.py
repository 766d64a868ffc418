"""The training spec: every setting a job needs, saved as the job's ``spec.yaml`` so it can re-run.

Recipes share one spec; fields a recipe does not use are ignored by it. Values are checked where
they enter (the CLI builds a ``TrainSpec``) and a bad one is a ``ConfigError`` naming the flag.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cpuai.errors import ConfigError, JobError

Recipe = Literal["image-classification", "wide-deep"]
IMAGE_MODELS = ("smallcnn", "resnet8", "resnet18")
TABULAR_MODELS = ("wide-deep", "wide")

#: Defaults per recipe for settings left unset (None) on the command line.
RECIPE_DEFAULTS: dict[str, dict[str, Any]] = {
    "image-classification": {"model": "smallcnn", "epochs": 15, "batch_size": 64, "lr": 0.003},
    "wide-deep": {"model": "wide-deep", "epochs": 8, "batch_size": 128, "lr": 0.02},
}


class TrainSpec(BaseModel):
    """Everything a training job needs; ``out`` is the job directory.

    >>> TrainSpec(recipe="image-classification", data="digits", out="jobs/d1", epochs=2).model
    'smallcnn'
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    recipe: Recipe
    data: str
    out: str
    name: str | None = None
    model: str | None = None
    epochs: int | None = Field(default=None, ge=1, le=10000)
    batch_size: int | None = Field(default=None, ge=1, le=65536)
    lr: float | None = Field(default=None, gt=0, le=10)
    weight_decay: float = Field(default=1e-4, ge=0)
    warmup_epochs: float = Field(default=1.0, ge=0)
    patience: int = Field(default=5, ge=0)
    seed: int = 0
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    channels_last: bool = True
    threads: int | None = Field(default=None, ge=1)
    log_every: int = Field(default=10, ge=1)
    checkpoint_every: int = Field(default=0, ge=0)
    limit: int | None = Field(default=None, ge=2)
    from_: str | None = Field(default=None, alias="from")
    # image classification
    size: int | None = Field(default=None, ge=8, le=1024)
    color: Literal["auto", "rgb", "gray"] = "auto"
    augment: bool = True
    hflip: bool = False
    width: int | None = Field(default=None, ge=1, le=1024)
    # tabular
    numeric: list[str] | None = None
    categorical: list[str] | None = None
    target: str | None = None
    val_fraction: float = Field(default=0.15, gt=0, lt=0.5)
    test_fraction: float = Field(default=0.15, ge=0, lt=0.5)
    # data-parallel workers (one node or several)
    workers: int = Field(default=1, ge=1, le=256)
    nnodes: int = Field(default=1, ge=1)
    node_rank: int = Field(default=0, ge=0)
    master_addr: str = "127.0.0.1"
    master_port: int = Field(default=29511, ge=1, le=65535)

    def resolved(self) -> TrainSpec:
        """A copy with the recipe's defaults filled in and the model checked against the recipe."""
        filled = {k: v for k, v in RECIPE_DEFAULTS[self.recipe].items() if getattr(self, k) is None}
        spec = self.model_copy(update=filled)
        allowed = IMAGE_MODELS if self.recipe == "image-classification" else TABULAR_MODELS
        if spec.model not in allowed:
            raise ConfigError(
                f"--model {spec.model!r} is not a {self.recipe} model",
                fix=f"use one of: {', '.join(allowed)}",
            )
        if spec.node_rank >= spec.nnodes:
            raise ConfigError(
                f"--node-rank {spec.node_rank} is not below --nnodes {spec.nnodes}",
                fix="number nodes 0..nnodes-1",
            )
        return spec

    @property
    def world_size(self) -> int:
        return self.workers * self.nnodes

    def dump(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", by_alias=True), sort_keys=False)


def make_spec(**values: Any) -> TrainSpec:
    """Build and resolve a spec from CLI values; a bad value is a ConfigError naming the flag."""
    try:
        return TrainSpec.model_validate(values).resolved()
    except ValidationError as err:
        first = err.errors()[0]
        flag = "--" + str(first["loc"][0]).rstrip("_").replace("_", "-")
        raise ConfigError(
            f"{flag} {first.get('input')!r} is invalid: {first['msg']}", fix=f"pass a valid {flag}"
        ) from None


def load_spec(path: Path) -> TrainSpec:
    """Read a job's spec.yaml; JobError when it is unreadable."""
    try:
        return TrainSpec.model_validate(yaml.safe_load(path.read_text())).resolved()
    except (OSError, yaml.YAMLError, ValidationError) as err:
        raise JobError(
            f"{path} is not a valid cpuai training spec: {err}", fix="start a new job with 'cpuai train'"
        ) from None
