"""cpuai data: the real digits export, image decoding with unreadable files, tabular CSVs, synthetic CTR."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from PIL import Image

from cpuai.cli.app import main
from cpuai.data.ctr import CATEGORICAL, NUMERIC, generate, write_ctr
from cpuai.data.digits import export_digits
from cpuai.data.imagefolder import ImageFolder
from cpuai.data.images import decode_folder
from cpuai.data.tabular import check_columns, encode, fit_preprocessing, read_csv
from cpuai.errors import ConfigError, DataError


def test_digits_export_is_a_seeded_stratified_image_folder(tmp_path):
    a = export_digits(tmp_path / "a", size=16)
    assert a.counts == {"train": 1257, "val": 270, "test": 270}
    test = ImageFolder.open(tmp_path / "a", "test")
    assert test.classes == [str(i) for i in range(10)]
    per_class = np.bincount([y for _, y in test.samples], minlength=10)
    assert per_class.min() >= 25  # stratified: every digit in the test split
    with Image.open(test.samples[0][0]) as img:
        assert img.size == (16, 16) and img.mode == "L"
    b = export_digits(tmp_path / "b", size=16)
    names = lambda root: sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))  # noqa: E731
    assert names(a.root) == names(b.root)  # same seed, same files
    c = export_digits(tmp_path / "c", size=16, seed=1)
    assert names(a.root) != names(c.root)


def test_digits_cli_rgb_and_refuses_a_full_folder(tmp_path, capsys):
    out = tmp_path / "rgb"
    assert main(["data", "digits", "--out", str(out), "--size", "24", "--rgb", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["counts"]["train"] == 1257 and result["color"] == "rgb"
    first = next((out / "train" / "3").glob("*.png"))
    with Image.open(first) as img:
        assert img.mode == "RGB" and img.size == (24, 24)
    assert main(["data", "digits", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: output folder") and "not empty" in err and "--out" in err


def test_digits_size_out_of_range(tmp_path):
    with pytest.raises(ConfigError, match="--size 4"):
        export_digits(tmp_path / "x", size=4)


def test_decode_skips_unreadable_images_with_one_warning(tmp_path, caplog):
    export_digits(tmp_path / "d", size=16)
    bad = tmp_path / "d" / "val" / "5" / "broken.png"
    bad.write_bytes(b"this is not a png")
    folder = ImageFolder.open(tmp_path / "d", "val")
    with caplog.at_level(logging.WARNING, logger="cpuai.data"):
        decoded = decode_folder(folder, size=(16, 16), color="gray")
    assert len(decoded) == 270 and len(decoded.skipped) == 1 and decoded.skipped[0][0] == bad
    assert decoded.pixels.shape == (270, 1, 16, 16) and decoded.pixels.dtype == np.uint8
    assert "skipped 1 unreadable image(s) of 271" in caplog.text and "broken.png" in caplog.text


def test_decode_all_unreadable_is_a_data_error(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"nope")
    with pytest.raises(DataError, match="no image .* could be read"):
        decode_folder(ImageFolder.open(tmp_path), size=(8, 8), color="gray")


def test_tabular_encode_uses_train_statistics_and_unknown_category(tmp_path):
    rows = [{"x": "1", "c": "a", "y": "0"}, {"x": "3", "c": "b", "y": "1"}]
    prep = fit_preprocessing(rows, numeric=["x"], categorical=["c"], target="y")
    assert prep.columns[0].mean == 2.0 and prep.columns[0].std == 1.0
    assert prep.columns[1].vocabulary == ["<unk>", "a", "b"]
    arrays = encode([{"x": "5", "c": "zzz", "y": "1"}], prep)
    assert (
        arrays.numeric.tolist() == [[3.0]]
        and arrays.categorical.tolist() == [[0]]
        and arrays.target.tolist() == [1.0]
    )


def test_csv_missing_declared_column_names_it(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,y\n1,x,0\n2,z,1\n")
    header, _rows = read_csv(path)
    with pytest.raises(DataError) as err:
        check_columns(header, ["a", "price", "y"], str(path))
    assert "missing declared column(s) 'price'" in str(err.value) and "columns: a, b, y" in str(err.value)


def test_csv_numeric_column_with_text_is_a_clear_error(tmp_path):
    rows = [{"x": "1", "c": "a"}, {"x": "oops", "c": "b"}]
    with pytest.raises(DataError, match="row 3: column 'x' is declared numeric but holds 'oops'"):
        fit_preprocessing(rows, numeric=["x"], categorical=["c"], target=None)


def test_empty_or_missing_csv(tmp_path):
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(DataError, match="holds no data rows"):
        read_csv(tmp_path / "e.csv")
    with pytest.raises(DataError, match="does not exist"):
        read_csv(tmp_path / "nope.csv")


def test_synthetic_ctr_has_known_model_and_says_synthetic(tmp_path, capsys):
    cols, prob = generate(5000, seed=3)
    cols2, prob2 = generate(5000, seed=3)
    assert np.array_equal(prob, prob2) and np.array_equal(cols["click"], cols2["click"])
    assert abs(cols["click"].mean() - prob.mean()) < 0.03  # clicks drawn from the stated probabilities
    assert (
        main(["data", "ctr", "--out", str(tmp_path / "ctr-synthetic.csv"), "--rows", "2000", "--json"]) == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["synthetic"] is True and 0.6 < result["oracle_auc"] < 1.0
    desc = json.loads((tmp_path / "ctr-synthetic.json").read_text())
    assert desc["synthetic"] is True and "pair[site, ad]" in desc["generating_model"]
    header, rows = read_csv(tmp_path / "ctr-synthetic.csv")
    assert header == [*NUMERIC, *CATEGORICAL, "click"] and len(rows) == 2000
    with pytest.raises(ConfigError, match="does not end in .csv"):
        write_ctr(tmp_path / "x.txt")
