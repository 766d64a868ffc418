"""A SYNTHETIC click-through (CTR) data set with a known generating model, for Wide & Deep.

Every row is drawn from a documented logistic model whose logit has main effects (which a
wide-only logistic model can learn) and interactions (a category-by-category table and a
numeric-by-numeric product, which only the deep part can learn). The true click probability is
known, so the best achievable AUC (``oracle_auc``) is known too. Files say "synthetic" in their name
and in the sidecar ``.json`` description.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cpuai.errors import ConfigError

NUMERIC = ("price", "age", "hour")
CATEGORICAL = ("site", "ad", "device")
TARGET = "click"
CARDINALITY = {"site": 12, "ad": 15, "device": 4}

GENERATING_MODEL = (
    "logit = -1.0 + 0.8*price - 0.5*age + 0.3*hour"
    " + site_effect[site] + ad_effect[ad] + device_effect[device]"
    " + 1.2*pair[site, ad] + 0.9*price*age ; click ~ Bernoulli(sigmoid(logit)); price, age, hour ~ N(0, 1);"
    " site_effect, ad_effect, device_effect ~ N(0, 0.5), pair ~ N(0, 1), all drawn from the seed"
)


@dataclass(frozen=True)
class CtrData:
    """The written CSV, its sidecar description and the oracle AUC of the true probabilities."""

    csv: Path
    description: Path
    rows: int
    click_rate: float
    oracle_auc: float


def generate(rows: int, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Draw ``rows`` synthetic impressions; returns the columns and the true click probabilities."""
    rng = np.random.default_rng(seed)
    effects = {c: rng.normal(0, 0.5, CARDINALITY[c]) for c in CATEGORICAL}
    pair = rng.normal(0, 1.0, (CARDINALITY["site"], CARDINALITY["ad"]))
    cols: dict[str, np.ndarray] = {n: rng.normal(0, 1, rows) for n in NUMERIC}
    for c in CATEGORICAL:
        cols[c] = rng.integers(0, CARDINALITY[c], rows)
    logit = -1.0 + 0.8 * cols["price"] - 0.5 * cols["age"] + 0.3 * cols["hour"]
    for c in CATEGORICAL:
        logit = logit + effects[c][cols[c]]
    logit = logit + 1.2 * pair[cols["site"], cols["ad"]] + 0.9 * cols["price"] * cols["age"]
    prob = 1.0 / (1.0 + np.exp(-logit))
    cols[TARGET] = (rng.random(rows) < prob).astype(np.int64)
    return cols, prob


def write_ctr(out: str | Path, *, rows: int = 20000, seed: int = 0) -> CtrData:
    """Write the synthetic CTR CSV and a ``.json`` sidecar naming it synthetic with its generating model."""
    from sklearn.metrics import roc_auc_score

    if rows < 100:
        raise ConfigError(f"--rows {rows} is too few", fix="ask for at least 100 rows")
    path = Path(out)
    if path.suffix != ".csv":
        raise ConfigError(f"--out {path} does not end in .csv", fix="name the file like ctr-synthetic.csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    cols, prob = generate(rows, seed)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        header = [*NUMERIC, *CATEGORICAL, TARGET]
        writer.writerow(header)
        for i in range(rows):
            writer.writerow(
                [f"{cols[n][i]:.5f}" for n in NUMERIC]
                + [f"{c}{cols[c][i]}" for c in CATEGORICAL]
                + [int(cols[TARGET][i])]
            )
    oracle = float(roc_auc_score(cols[TARGET], prob))
    desc = path.with_suffix(".json")
    desc.write_text(
        json.dumps(
            {
                "synthetic": True,
                "name": "synthetic click-through data (cpuai data ctr)",
                "rows": rows,
                "seed": seed,
                "numeric": list(NUMERIC),
                "categorical": list(CATEGORICAL),
                "target": TARGET,
                "generating_model": GENERATING_MODEL,
                "oracle_auc": round(oracle, 4),
            },
            indent=2,
        )
    )
    return CtrData(path, desc, rows, float(cols[TARGET].mean()), oracle)
