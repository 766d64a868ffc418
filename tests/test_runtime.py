"""cpuai.runtime: the three real backends on the digits CNN, input checks, thread budget, precision."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cpuai import package as pkg
from cpuai.errors import ConfigError, InvalidInput, ModelError, ResourceError
from cpuai.runtime import Engine, choose_backend, load, plan_threads


@pytest.fixture(scope="module")
def digits_ir_package(digits_onnx_package, tmp_path_factory) -> Path:
    from cpuai.convert import convert

    return convert(digits_onnx_package, to="openvino", out=tmp_path_factory.mktemp("rt") / "digits-ir").path


@pytest.fixture(scope="module")
def digits_ts_package(digits_cnn, digits_onnx_package, tmp_path_factory) -> Path:
    """The digits CNN as a TorchScript package, laid out like a training package (model.pt + weights.pt)."""
    import torch

    src = pkg.read(digits_onnx_package).manifest
    manifest = src.model_copy(
        update={
            "format": "torchscript",
            "architecture": pkg.Architecture(
                factory="cpuai.models.smallcnn:smallcnn",
                kwargs={"num_classes": 10, "in_channels": 1, "width": 8},
            ),
        }
    )

    def files(tmp: Path) -> None:
        torch.jit.trace(digits_cnn, torch.zeros(1, 1, 32, 32)).save(str(tmp / "model.pt"))
        torch.save(digits_cnn.state_dict(), tmp / "weights.pt")

    return pkg.write(tmp_path_factory.mktemp("rt") / "digits-ts", manifest, files).path


@pytest.fixture(scope="module")
def batch(digits_arrays) -> np.ndarray:
    return digits_arrays[0][1400:1464]  # 64 held-out digits


def _eager(model, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


def test_three_backends_agree_on_digits(
    digits_cnn, digits_onnx_package, digits_ir_package, digits_ts_package, batch
):
    want = _eager(digits_cnn, batch)
    results = {}
    for path, backend in [
        (digits_onnx_package, "onnxruntime"),
        (digits_ir_package, "openvino"),
        (digits_onnx_package, "openvino"),
        (digits_ts_package, "torch"),
    ]:
        with load(path, backend=backend) as engine:
            assert isinstance(engine, Engine)
            assert engine.backend == backend and engine.precision == "fp32"
            logits = engine.infer({"input": batch})["logits"]
        assert logits.shape == (64, 10)
        assert np.abs(logits - want).max() < 1e-4, backend  # documented FP32 tolerance
        results[(path, backend)] = logits.argmax(1)
    labels = list(results.values())
    for other in labels[1:]:
        np.testing.assert_array_equal(other, labels[0])
    np.testing.assert_array_equal(labels[0], want.argmax(1))


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino", "torch"])
def test_dynamic_batch_and_submit(backend, digits_onnx_package, digits_ir_package, digits_ts_package, batch):
    path = {"onnxruntime": digits_onnx_package, "openvino": digits_ir_package, "torch": digits_ts_package}[
        backend
    ]
    with load(path, backend=backend, hint="throughput", streams=2, threads=1) as engine:
        assert (engine.threads, engine.streams) == (1, 2)
        assert engine.inputs[0].shape == (-1, 1, 32, 32)
        single = engine.infer({"input": batch[:1]})["logits"]
        futures = [engine.submit({"input": batch[i : i + 8]}) for i in range(0, 64, 8)]
        outs = np.concatenate([f.result(timeout=60)["logits"] for f in futures])
    assert single.shape == (1, 10)
    np.testing.assert_allclose(outs[:1], single, atol=1e-5)
    assert outs.shape == (64, 10)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino", "torch"])
def test_bad_feeds_raise_invalid_input(
    backend, digits_onnx_package, digits_ir_package, digits_ts_package, batch
):
    path = {"onnxruntime": digits_onnx_package, "openvino": digits_ir_package, "torch": digits_ts_package}[
        backend
    ]
    with load(path, backend=backend) as engine:
        cases = [
            ({"pixels": batch}, "unknown input 'pixels'"),
            ({}, "input 'input' is missing"),
            ({"input": batch.astype(np.float64)}, "dtype float64, expected float32"),
            ({"input": batch[0]}, r"\(rank 3\), expected rank 4"),
            ({"input": np.zeros((2, 3, 32, 32), np.float32)}, "dimension 1 is 3, expected 1"),
            ({"input": np.zeros((2, 1, 28, 28), np.float32)}, "dimension 2 is 28, expected 32"),
            ({"input": batch.tolist()}, "must be a numpy array"),
        ]
        for feeds, message in cases:
            with pytest.raises(InvalidInput, match=message):
                engine.infer(feeds)
            with pytest.raises(InvalidInput, match=message):
                engine.submit(feeds)


def test_openvino_reports_the_precision_it_runs(digits_ir_package):
    """OpenVINO defaults to BF16 on AMX/AVX512-BF16 CPUs; an FP32 package must still run FP32."""
    import openvino as ov

    with load(digits_ir_package, backend="openvino") as engine:
        assert engine.precision == "fp32"
        assert engine.property("INFERENCE_PRECISION_HINT").get_type_name() == "f32"
    caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    with load(digits_ir_package, backend="openvino", precision="bf16") as engine:
        assert engine.precision == ("bf16" if "BF16" in caps else "fp32")


def test_onnxruntime_refuses_bf16(digits_onnx_package):
    with pytest.raises(ConfigError, match="onnxruntime"):
        load(digits_onnx_package, backend="onnxruntime", precision="bf16")


def test_unknown_backend_hint_precision(digits_onnx_package):
    with pytest.raises(ConfigError, match="unknown backend 'tensorrt'"):
        load(digits_onnx_package, backend="tensorrt")
    with pytest.raises(ConfigError, match="unknown hint"):
        load(digits_onnx_package, hint="fast")
    with pytest.raises(ConfigError, match="unknown precision 'fp8'"):
        load(digits_onnx_package, precision="fp8")


def test_backend_that_cannot_run_the_format(digits_onnx_package, digits_ir_package):
    with pytest.raises(ModelError, match="backend 'torch' cannot run a onnx package"):
        load(digits_onnx_package, backend="torch")
    with pytest.raises(ModelError, match="cannot run a openvino package"):
        load(digits_ir_package, backend="onnxruntime")


def test_auto_backend_rule(digits_onnx_package, digits_ir_package, digits_ts_package, tmp_path):
    assert choose_backend(pkg.read(digits_onnx_package)) == "onnxruntime"
    assert choose_backend(pkg.read(digits_ir_package)) == "openvino"
    assert choose_backend(pkg.read(digits_ts_package)) == "torch"
    tuned = pkg.copy_with(
        pkg.read(digits_onnx_package),
        tmp_path / "tuned",
        deploy=pkg.Deploy(backend="openvino", threads=1, streams=1),
    )
    with load(tuned) as engine:  # the tuned deploy section wins
        assert (engine.backend, engine.threads, engine.streams) == ("openvino", 1, 1)


def test_thread_plan_never_exceeds_budget(monkeypatch):
    for budget in (1, 2, 3, 8, 64):
        for hint in ("latency", "throughput"):
            t, s = plan_threads(None, None, hint, budget)
            assert 1 <= t * s <= budget
    assert plan_threads(None, None, "latency", 8) == (8, 1)
    assert plan_threads(None, None, "throughput", 8) == (2, 4)
    assert plan_threads(None, 2, "latency", 8) == (4, 2)
    assert plan_threads(2, None, "throughput", 8) == (2, 4)
    with pytest.raises(ResourceError, match="3 x 2 = 6 is more than the 4 core"):
        plan_threads(3, 2, "latency", 4)
    with pytest.raises(ConfigError, match="threads must be"):
        plan_threads(0, None, "latency", 4)
    monkeypatch.setenv("CPUAI_CORES", "1")
    assert plan_threads(None, None, "throughput") == (1, 1)


def test_engine_threads_follow_core_budget(digits_onnx_package, monkeypatch):
    from cpuai.hardware import core_budget

    with load(digits_onnx_package) as engine:
        assert engine.threads * engine.streams <= core_budget()
    monkeypatch.setenv("CPUAI_CORES", "1")
    with pytest.raises(ResourceError):
        load(digits_onnx_package, threads=2)


def test_missing_model_file_and_not_a_model(digits_onnx_package, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(digits_onnx_package, broken)
    (broken / "model.onnx").unlink()
    with pytest.raises(ModelError, match="'model.onnx' is missing"):
        load(broken)
    garbage = tmp_path / "garbage"
    shutil.copytree(digits_onnx_package, garbage)
    (garbage / "model.onnx").write_bytes(b"this is not a model")
    with pytest.raises(ModelError, match="onnxruntime cannot load"):
        load(garbage, backend="onnxruntime")
    with pytest.raises(ModelError, match="openvino cannot read"):
        load(garbage, backend="openvino")
    with pytest.raises(ModelError, match="not a model package"):
        load(tmp_path)


def test_unknown_precision_in_manifest(digits_onnx_package, tmp_path):
    import shutil

    from cpuai.errors import ManifestError

    bad = tmp_path / "bad"
    shutil.copytree(digits_onnx_package, bad)
    text = (bad / "model.yaml").read_text().replace("precision: fp32", "precision: fp12")
    (bad / "model.yaml").write_text(text)
    with pytest.raises(ManifestError, match="precision.*fp12"):
        load(bad)


def test_closed_engine_refuses(digits_onnx_package, batch):
    from cpuai.errors import EngineError

    engine = load(digits_onnx_package)
    engine.close()
    with pytest.raises(EngineError, match="closed"):
        engine.infer({"input": batch[:1]})


# -- the per-call checks and ONNX Runtime spin-waiting ------------------------------------------


def _bad_feeds(batch: np.ndarray) -> list[dict]:
    return [
        {"pixels": batch},
        {},
        {"input": batch, "extra": batch},
        {"input": batch.astype(np.float64)},
        {"input": batch[0]},
        {"input": np.zeros((2, 3, 32, 32), np.float32)},
        {"input": np.zeros((2, 1, 28, 28), np.float32)},
        {"input": np.zeros((0, 1, 32, 32), np.float32)},
        {"input": batch.tolist()},
        [("input", batch)],
    ]


def test_feed_check_fast_path_refuses_exactly_what_check_feeds_refuses(batch):
    from cpuai.runtime.checks import FeedCheck, check_feeds
    from cpuai.runtime.engine import TensorInfo

    inputs = [TensorInfo("input", "float32", (-1, 1, 32, 32))]
    check = FeedCheck(inputs)
    for feeds in _bad_feeds(batch):
        with pytest.raises(InvalidInput) as slow:
            check_feeds(feeds, inputs)
        with pytest.raises(InvalidInput) as fast:
            check(feeds)
        assert (str(fast.value), fast.value.fix) == (str(slow.value), slow.value.fix)
    good = {"input": batch}
    assert check(good) is good  # a feed that fits is passed on as it is, not rebuilt
    strided = {"input": np.asfortranarray(batch)}
    out = check(strided)
    assert out["input"].flags.c_contiguous and not strided["input"].flags.c_contiguous
    np.testing.assert_array_equal(out["input"], batch)
    swapped = {"input": batch.astype(">f4")}  # big-endian float32 is still float32: accepted as before
    np.testing.assert_array_equal(check(swapped)["input"], batch)


def test_feed_check_without_a_numpy_dtype_uses_the_full_check(batch):
    from cpuai.runtime.checks import FeedCheck
    from cpuai.runtime.engine import TensorInfo

    check = FeedCheck([TensorInfo("x", "bfloat16", (-1, 4))])
    # np.dtype(None) would mean float64; the fast path must not take that as a match
    with pytest.raises(InvalidInput, match="dtype float64, expected bfloat16"):
        check({"x": np.zeros((2, 4))})


def test_submit_keeps_its_own_copy_of_the_feeds_dict(digits_onnx_package, batch):
    with load(digits_onnx_package, backend="onnxruntime", threads=1, streams=1) as engine:
        feeds = {"input": batch[:4]}
        future = engine.submit(feeds)
        feeds["input"] = batch[:1]  # changing the caller's dict afterwards does not change the batch
        assert future.result(timeout=60)["logits"].shape == (4, 10)


def _spinning(engine) -> list[str]:
    return [
        s.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")
        for s in engine.sessions
    ]


def test_spin_option_reaches_the_onnxruntime_session_config(digits_onnx_package, batch):
    cases = [
        ({"streams": 1}, True),  # default: spin with one stream (batch-1 latency)
        ({"streams": 2}, False),  # default: idle streams must not steal the busy ones' cores
        ({"streams": 1, "spin": False}, False),
        ({"streams": 2, "spin": True}, True),
    ]
    for kwargs, spins in cases:
        with load(digits_onnx_package, backend="onnxruntime", threads=1, **kwargs) as engine:
            assert engine.spin is spins
            assert _spinning(engine) == ["1" if spins else "0"] * engine.streams
            assert engine.infer({"input": batch[:2]})["logits"].shape == (2, 10)


def test_spin_option_is_checked_and_ignored_by_openvino(digits_onnx_package, batch):
    with pytest.raises(ConfigError, match="spin must be True, False or None"):
        load(digits_onnx_package, backend="onnxruntime", spin="off")
    with load(digits_onnx_package, backend="openvino", threads=1, spin=False) as engine:
        assert engine.infer({"input": batch[:2]})["logits"].shape == (2, 10)
