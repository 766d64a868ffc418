"""Wide & Deep on SYNTHETIC click-through data beats the wide-only logistic AUC; evaluate reports AUC."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cpuai import package as pkgmod
from cpuai.cli.app import main
from cpuai.data.ctr import write_ctr

FLAGS = ["--epochs", "6", "--threads", "1", "--precision", "fp32", "--patience", "0"]


@pytest.fixture(scope="module")
def ctr(tmp_path_factory) -> tuple[Path, Path]:
    """A synthetic training CSV and an independent synthetic holdout CSV drawn from the same model."""
    root = tmp_path_factory.mktemp("ctr")
    train = write_ctr(root / "ctr-synthetic.csv", rows=12000, seed=0).csv
    # same generating model (effects come from the seed), fresh draws: the rows after the first 12000
    holdout = write_ctr(root / "big" / "ctr-synthetic.csv", rows=16000, seed=0).csv
    lines = holdout.read_text().splitlines()
    (root / "holdout-synthetic.csv").write_text("\n".join([lines[0], *lines[12001:]]) + "\n")
    return train, root / "holdout-synthetic.csv"


@pytest.fixture(scope="module")
def trained(ctr, tmp_path_factory) -> dict[str, Path]:
    jobs = tmp_path_factory.mktemp("jobs")
    out = {}
    for model in ("wide", "wide-deep"):
        job = jobs / model
        assert (
            main(["train", "wide-deep", "--data", str(ctr[0]), "--out", str(job), "--model", model, *FLAGS])
            == 0
        )
        out[model] = job
    return out


def test_wide_deep_beats_the_logistic_baseline(trained):
    wide = pkgmod.read(trained["wide"] / "package").manifest.metrics
    deep = pkgmod.read(trained["wide-deep"] / "package").manifest.metrics
    assert deep["test_auc"] > wide["test_auc"] + 0.02, (deep, wide)
    assert deep["test_logloss"] < wide["test_logloss"]


def test_wide_only_is_logistic_regression(trained, ctr):
    """The baseline reaches what scikit-learn's LogisticRegression reaches on the same one-hot features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from cpuai.data.tabular import encode, read_csv, split_rows

    m = pkgmod.read(trained["wide"] / "package").manifest
    _header, rows = read_csv(ctr[0])
    parts = split_rows(len(rows), val=0.15, test=0.15, seed=0)

    def features(idx):
        a = encode([rows[i] for i in idx], m.preprocessing.tabular)
        cards = [len(c.vocabulary) for c in m.preprocessing.tabular.columns if c.kind == "categorical"]
        onehot = [np.eye(k)[a.categorical[:, j]] for j, k in enumerate(cards)]
        return np.hstack([a.numeric, *onehot]), a.target

    x, y = features(parts["train"])
    xt, yt = features(parts["test"])
    sk = roc_auc_score(yt, LogisticRegression(max_iter=500).fit(x, y).predict_proba(xt)[:, 1])
    assert abs(m.metrics["test_auc"] - sk) < 0.01, (m.metrics["test_auc"], sk)


def test_package_contract(trained):
    package = pkgmod.read(trained["wide-deep"] / "package")
    m = package.manifest
    assert m.task == "tabular" and m.format == "torchscript"
    assert [(i.name, i.dtype, i.shape) for i in m.inputs] == [
        ("numeric", "float32", [-1, 3]),
        ("categorical", "int64", [-1, 3]),
    ]
    assert m.outputs[0].name == "logits" and m.outputs[0].shape == [-1, 1]
    cols = {c.name: c for c in m.preprocessing.tabular.columns}
    assert (
        cols["site"].kind == "categorical"
        and cols["site"].vocabulary[0] == "<unk>"
        and len(cols["site"].vocabulary) == 13
    )
    assert cols["price"].kind == "numeric" and abs(cols["price"].mean) < 0.1
    assert m.preprocessing.tabular.target == "click" and m.extra["synthetic_data"] is True
    assert {"val_auc", "test_auc", "test_logloss", "test_accuracy"} <= set(m.metrics)
    traced = torch.jit.load(str(package.model_file))
    assert traced(torch.zeros(7, 3), torch.zeros(7, 3, dtype=torch.long)).shape == (7, 1)


def test_evaluate_reports_auc_through_the_runtime(trained, ctr, capsys):
    assert main(["evaluate", str(trained["wide-deep"] / "package"), "--data", str(ctr[1]), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["task"] == "tabular" and result["backend"] == "torch" and result["count"] == 4000
    assert set(result["metrics"]) == {"auc", "logloss", "accuracy"}
    assert result["metrics"]["auc"] > 0.7
    assert main(["evaluate", str(trained["wide"] / "package"), "--data", str(ctr[1]), "--json"]) == 0
    wide = json.loads(capsys.readouterr().out)
    assert result["metrics"]["auc"] > wide["metrics"]["auc"]


def test_tabular_task_scores_rows(trained):
    from cpuai.runtime import load
    from cpuai.tasks import for_package

    package = pkgmod.read(trained["wide-deep"] / "package")
    task = for_package(package)
    assert task.kind == "tabular"
    rows = [
        {"price": "2.0", "age": "-1.5", "hour": "0", "site": "site3", "ad": "ad4", "device": "device1"},
        {"price": "-2.0", "age": "1.5", "hour": "0", "site": "never-seen", "ad": "ad4", "device": "device1"},
    ]
    engine = load(package, backend="torch", threads=1)
    answers = task.postprocess(engine.infer(task.preprocess(rows)))
    assert [set(a) for a in answers] == [{"label", "probability", "probabilities"}] * 2
    assert answers[0]["probability"] > answers[1]["probability"]  # price up, age down: more clicks
    from cpuai.errors import InvalidInput

    with pytest.raises(InvalidInput, match="missing declared column"):
        task.preprocess([{"price": "1"}])


def test_csv_missing_declared_column(ctr, tmp_path, capsys):
    code = main(
        [
            "train",
            "wide-deep",
            "--data",
            str(ctr[0]),
            "--out",
            str(tmp_path / "j"),
            "--numeric",
            "price,age,colour",
            "--categorical",
            "site",
            "--target",
            "click",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert (
        "missing declared column(s) 'colour'" in err
        and "columns: price, age, hour" in err
        and "--numeric" in err
    )


def test_undeclared_columns_without_sidecar(tmp_path, capsys):
    path = tmp_path / "plain.csv"
    path.write_text("a,b,y\n1,x,0\n2,z,1\n")
    assert main(["train", "wide-deep", "--data", str(path), "--out", str(tmp_path / "j")]) == 2
    assert "are not declared" in capsys.readouterr().err
