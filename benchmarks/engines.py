"""Engines side by side: PyTorch eager (the baseline) vs cpuai's torch, ONNX Runtime and OpenVINO engines.

Models: the digits CNN (1×32×32), a ResNet-18 (3×224×224, ``cpuai.models.resnet:resnet18``) and
all-MiniLM-L6-v2 at sequence 128. For each: batch-1 latency (median) and batch-32 throughput
(items/s), both on one stream with every core of the budget, as ratios to PyTorch eager. Also: the
TorchScript-based vs the dynamo ONNX exporter on MiniLM in ONNX Runtime, and a matrix-multiply
FLOP/s probe (PyTorch vs ONNX Runtime) that explains most of the MiniLM gap.

Weights of the CNN and ResNet are random (speed only); MiniLM is the real model.

    .venv/bin/python benchmarks/engines.py --quick     # a couple of minutes
    .venv/bin/python benchmarks/engines.py             # the full run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

RESULTS = Path(__file__).parent / "results" / "engines.json"


def timed(fn: Callable[[], Any], *, warmup: int, iters: int, min_seconds: float) -> list[float]:
    """Seconds per call of ``fn``: ``warmup`` untimed, then at least ``iters`` calls for ``min_seconds``."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < iters or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 20 * iters:
            break
    return times


def machine() -> dict[str, Any]:
    from cpuai import hardware

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "core_budget": hardware.core_budget(),
        "usable_cpus": len(hardware.usable_cpus()),
    }
    probe = getattr(hardware, "probe", None)
    if probe is not None:
        try:
            info["machine"] = probe().summary()
        except Exception as err:  # the probe is optional for this benchmark
            info["machine_error"] = str(err)
    with contextlib.suppress(OSError):
        info["load_average"] = os.getloadavg()
    return info


# -- models ----------------------------------------------------------------------------------------------


def build_models(work: Path, quick: bool, wanted: set[str]) -> list[dict[str, Any]]:
    """(name, eager module, feeds factory, packages per format) for each benchmarked model."""
    import torch

    from cpuai.convert import convert
    from cpuai.models import minilm
    from cpuai.models.resnet import resnet18
    from cpuai.models.smallcnn import smallcnn

    torch.manual_seed(0)
    models = []
    for name, module, shape in [
        ("digits-cnn", smallcnn(num_classes=10, in_channels=1, width=16), (1, 32, 32)),
        ("resnet18-224", resnet18(num_classes=1000), (3, 224, 224)),
    ]:
        if name not in wanted:
            continue
        module.eval()
        print(f"  converting {name}", flush=True)
        onnx_pkg = convert(
            module,
            to="onnx",
            out=work / f"{name}-onnx",
            input_shapes={"input": (1, *shape)},
            output_names=["logits"],
        )
        ir_pkg = convert(onnx_pkg, to="openvino", out=work / f"{name}-ir")

        def feeds(batch: int, shape: tuple[int, ...] = shape) -> dict[str, np.ndarray]:
            return {"input": np.random.default_rng(0).random((batch, *shape), dtype=np.float32)}

        models.append(
            {
                "name": name,
                "module": module,
                "feeds": feeds,
                "onnx": onnx_pkg,
                "ir": ir_pkg,
                "inputs": ["input"],
            }
        )
    if "minilm-seq128" not in wanted:
        return models
    print("  exporting MiniLM (torchscript and dynamo exporters)", flush=True)
    onnx_pkg = minilm.export(work / "minilm-onnx", max_length=128)
    dynamo_pkg = minilm.export(work / "minilm-onnx-dynamo", max_length=128, exporter="dynamo")
    from cpuai.convert import convert as conv

    ir_pkg = conv(onnx_pkg, to="openvino", out=work / "minilm-ir")
    names = ["input_ids", "attention_mask", "token_type_ids"]

    def text_feeds(batch: int, seq: int = 128) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(0)
        ids = rng.integers(1000, 20000, (batch, seq)).astype(np.int64)
        ids[:, 0], ids[:, -1] = 101, 102
        return {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}

    models.append(
        {
            "name": "minilm-seq128",
            "module": minilm.transformer(),
            "feeds": text_feeds,
            "onnx": onnx_pkg,
            "ir": ir_pkg,
            "dynamo": dynamo_pkg,
            "inputs": names,
        }
    )
    return models


# -- measurement -----------------------------------------------------------------------------------------


def eager_runner(module: Any, names: list[str], threads: int) -> Callable[[dict[str, np.ndarray]], Any]:
    import torch

    torch.set_num_threads(threads)

    def run(feeds: dict[str, np.ndarray]) -> Any:
        with torch.inference_mode():
            return module(*[torch.from_numpy(feeds[n]) for n in names])

    return run


def script_engine(model: dict[str, Any], threads: int) -> Any:
    """cpuai's torch backend on a TorchScript trace of the module (what a training package holds)."""
    import torch

    from cpuai.runtime.torch import TorchEngine

    sample = model["feeds"](1)
    with torch.inference_mode():
        traced = torch.jit.trace(
            model["module"],
            tuple(torch.from_numpy(sample[n]) for n in model["inputs"]),
            check_trace=False,
            strict=False,
        )
    traced = torch.jit.freeze(traced.eval())
    m = model["onnx"].manifest
    return TorchEngine(traced, inputs=m.inputs, outputs=m.outputs, threads=threads, streams=1)


def bench_model(model: dict[str, Any], args: argparse.Namespace, threads: int) -> list[dict[str, Any]]:
    """All engines of one model, measured in interleaved rounds so load drift hits them alike."""
    from cpuai.runtime import load

    candidates: list[tuple[str, Callable[[], Any]]] = [
        ("torch-eager", lambda: None),
        ("torch-script", lambda: script_engine(model, threads)),
        ("onnxruntime", lambda: load(model["onnx"], backend="onnxruntime", threads=threads, streams=1)),
        ("openvino-fp32", lambda: load(model["ir"], backend="openvino", threads=threads, streams=1)),
        (
            "openvino-bf16",
            lambda: load(model["ir"], backend="openvino", threads=threads, streams=1, precision="bf16"),
        ),
    ]
    if "dynamo" in model:
        candidates.insert(
            3,
            (
                "onnxruntime-dynamo",
                lambda: load(model["dynamo"], backend="onnxruntime", threads=threads, streams=1),
            ),
        )
    engines = []
    for name, make in candidates:
        engine = make()
        run = eager_runner(model["module"], model["inputs"], threads) if engine is None else engine.infer
        engines.append((name, engine, run))
    one, many = model["feeds"](1), model["feeds"](args.batch)
    lat: dict[str, list[float]] = {n: [] for n, _, _ in engines}
    thr: dict[str, list[float]] = {n: [] for n, _, _ in engines}
    for r in range(args.rounds):
        for name, _, run in engines:
            warm = args.warmup if r == 0 else 1
            lat[name] += timed(
                lambda run=run: run(one), warmup=warm, iters=args.iters, min_seconds=args.seconds
            )
            thr[name] += timed(
                lambda run=run: run(many), warmup=1, iters=max(2, args.iters // 5), min_seconds=args.seconds
            )
        print(f"  {model['name']}: round {r + 1}/{args.rounds} done", flush=True)
    rows: list[dict[str, Any]] = []
    for name, engine, _ in engines:
        precision = "fp32" if engine is None else engine.precision
        if engine is not None:
            engine.close()
        rows.append(
            {
                "model": model["name"],
                "engine": name,
                "precision": precision,
                "threads": threads,
                "latency_ms": 1e3 * statistics.median(lat[name]),
                "latency_p90_ms": 1e3 * float(np.percentile(lat[name], 90)),
                "throughput": args.batch / statistics.median(thr[name]),
                "latency_runs": len(lat[name]),
                "throughput_runs": len(thr[name]),
            }
        )
    base = next(r for r in rows if r["engine"] == "torch-eager")
    for r in rows:
        r["latency_speedup"] = base["latency_ms"] / r["latency_ms"]
        r["throughput_speedup"] = r["throughput"] / base["throughput"]
    return rows


def matmul_probe(threads: int, quick: bool) -> dict[str, float]:
    """GFLOP/s of one (128·B)×384 @ 384×1536 matmul (MiniLM's FFN shape) in PyTorch and ONNX Runtime."""
    import onnx
    import onnxruntime as ort
    import torch
    from onnx import TensorProto, helper, numpy_helper

    from cpuai.runtime.onnxruntime import session_options

    m, k, n = 128 * 8, 384, 1536
    rng = np.random.default_rng(0)
    a, b = rng.random((m, k), dtype=np.float32), rng.random((k, n), dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "mm",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [m, n])],
        [numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    sess = ort.InferenceSession(
        model.SerializeToString(),
        sess_options=session_options(threads, 1),
        providers=["CPUExecutionProvider"],
    )
    torch.set_num_threads(threads)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    iters = 10 if quick else 50
    flops = 2 * m * k * n
    t_torch = statistics.median(timed(lambda: torch.matmul(ta, tb), warmup=3, iters=iters, min_seconds=0.5))
    t_ort = statistics.median(timed(lambda: sess.run(None, {"a": a}), warmup=3, iters=iters, min_seconds=0.5))
    del onnx
    return {
        "torch_gflops": flops / t_torch / 1e9,
        "onnxruntime_gflops": flops / t_ort / 1e9,
        "shape": f"{m}x{k} @ {k}x{n}",
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    print()
    print(
        f"{'model':<14} {'engine':<18} {'prec':<5} {'b1 ms':>8} {'b1 x eager':>10} "
        f"{'b32 items/s':>12} {'b32 x eager':>11}"
    )
    for r in rows:
        print(
            f"{r['model']:<14} {r['engine']:<18} {r['precision']:<5} {r['latency_ms']:8.2f} "
            f"{r['latency_speedup']:10.2f} {r['throughput']:12.1f} {r['throughput_speedup']:11.2f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="few iterations (a smoke run, noisy)")
    parser.add_argument("--batch", type=int, default=32, help="batch for the throughput column")
    parser.add_argument("--models", default="digits-cnn,resnet18-224,minilm-seq128")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.iters, args.warmup, args.seconds, args.rounds = (3, 2, 0.2, 2) if args.quick else (10, 5, 1.0, 4)
    from cpuai.hardware import core_budget

    threads = core_budget()
    wanted = set(args.models.split(","))
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="cpuai-bench-engines-") as tmp:
        print("[1/3] building packages", flush=True)
        models = build_models(Path(tmp), args.quick, wanted)
        print(f"[2/3] measuring on {threads} thread(s)", flush=True)
        rows: list[dict[str, Any]] = []
        for model in models:
            rows.extend(bench_model(model, args, threads))
        print("[3/3] matmul probe", flush=True)
        probe = matmul_probe(threads, args.quick)
    print_table(rows)
    print(
        f"\nmatmul {probe['shape']}: torch {probe['torch_gflops']:.1f} GFLOP/s, "
        f"onnxruntime {probe['onnxruntime_gflops']:.1f} GFLOP/s"
    )
    exporters = {r["engine"]: r for r in rows if r["model"] == "minilm-seq128"}
    notes = []
    if "onnxruntime-dynamo" in exporters:
        ts, dy = exporters["onnxruntime"], exporters["onnxruntime-dynamo"]
        notes.append(
            f"MiniLM in ONNX Runtime: TorchScript-exported graph is "
            f"{dy['latency_ms'] / ts['latency_ms']:.2f}x "
            f"(batch 1) and {ts['throughput'] / dy['throughput']:.2f}x (batch {args.batch}) the speed of the "
            "dynamo-exported one"
        )
    if "openvino-fp32" in exporters:
        ov = exporters["openvino-fp32"]
        notes.append(
            f"MiniLM OpenVINO FP32 vs eager: {ov['latency_speedup']:.2f}x latency, "
            f"{ov['throughput_speedup']:.2f}x throughput"
        )
    for n in notes:
        print(n)
    result = {
        "benchmark": "engines",
        "quick": args.quick,
        "batch": args.batch,
        "threads": threads,
        "seconds": round(time.time() - started, 1),
        "machine": machine(),
        "rows": rows,
        "matmul": probe,
        "notes": notes,
        "reproduce": f".venv/bin/python benchmarks/engines.py{' --quick' if args.quick else ''}",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
