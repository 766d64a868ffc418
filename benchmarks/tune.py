"""What ``cpuai tune`` picks, against each backend's default configuration, measured in the same run.

Contenders per model and objective:

    tuned            the configuration ``cpuai.bench.tuner.tune`` picks (through cpuai.runtime)
    ort-default      onnxruntime.InferenceSession(model) with no options, one request at a time
    ov-throughput    OpenVINO compile_model(..., PERFORMANCE_HINT=THROUGHPUT), its optimal requests in flight
    ov-latency       OpenVINO compile_model(..., PERFORMANCE_HINT=LATENCY), one request at a time

All four are measured by the same code (cpuai.bench.measure) at the tuned batch size, interleaved over
several repeats (the median of the repeats is reported) so machine noise hits them alike. Latency
objective: median ms of sync requests at batch 1 (speed-up = default / tuned). Throughput objective:
samples/s with each contender's own requests in flight (ratio = tuned / default).

Models (``--models``, default all three): the digits CNN (``digits``, trained here in seconds on
scikit-learn's digits, as tests/conftest.py does), cpuai's own ResNet-18 at 3×224×224 (``resnet18``,
``cpuai.models.resnet:resnet18``, 1000 classes, random weights: speed does not depend on them) on
random images, and all-MiniLM-L6-v2 (``minilm``, ``cpuai models export minilm``) on real text
(Python docstrings).

    .venv/bin/python benchmarks/tune.py --quick     # under ~10 minutes on 2 idle cores
    .venv/bin/python benchmarks/tune.py --quick --models digits,resnet18
    .venv/bin/python benchmarks/tune.py             # the full run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from cpuai import package as pkgmod  # noqa: E402
from cpuai.bench.engines import open_engine  # noqa: E402
from cpuai.bench.feeds import make_feeds  # noqa: E402
from cpuai.bench.machine import machine_summary  # noqa: E402
from cpuai.bench.measure import Budget, measure_latency, measure_throughput  # noqa: E402
from cpuai.bench.tuner import tune  # noqa: E402
from cpuai.convert import convert  # noqa: E402
from cpuai.hardware import core_budget  # noqa: E402
from cpuai.runtime.engine import TensorInfo  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "tune.json"


def image_manifest(*, size: int, color: str, labels: list[str]) -> dict[str, Any]:
    """The manifest fields an image classifier exported from a bare module needs."""
    return {
        "task": "image-classification",
        "preprocessing": {"image": {"size": [size, size], "color": color}},
        "labels": labels,
    }


# ---- the digits CNN, trained here ---------------------------------------------------------------


def digits_package(out: Path, epochs: int) -> pkgmod.ModelPackage:
    """Train the SmallCNN on scikit-learn's digits (32×32) and write it as an FP32 ONNX package."""
    import torch
    from sklearn.datasets import load_digits

    from cpuai.models.smallcnn import smallcnn

    d = load_digits()
    x = np.kron(d.images.astype(np.float32) / 16.0, np.ones((4, 4), np.float32))[:, None]
    y = d.target.astype(np.int64)
    torch.manual_seed(0)
    model = smallcnn(num_classes=10, in_channels=1, width=8)
    opt = torch.optim.Adam(model.parameters(), lr=0.003)
    xt, yt = torch.from_numpy(x[:1400]), torch.from_numpy(y[:1400])
    for _ in range(epochs):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            idx = perm[i : i + 64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    return convert(
        model.eval(),
        to="onnx",
        out=out,
        name="digits-cnn",
        input_shapes={"input": (1, 1, 32, 32)},
        output_names=["logits"],
        manifest=image_manifest(size=32, color="gray", labels=[str(i) for i in range(10)]),
    )


def resnet18_package(out: Path) -> pkgmod.ModelPackage:
    """cpuai's ResNet-18 (ImageNet layout, 1000 classes, random weights) as an FP32 ONNX package at 224×224.

    Random weights are enough here: tune and the library defaults are compared on speed only, and a
    convolutional network's speed does not depend on its weight values.
    """
    import torch

    from cpuai.models.resnet import resnet18

    torch.manual_seed(0)
    return convert(
        resnet18(num_classes=1000).eval(),
        to="onnx",
        out=out,
        name="resnet18",
        input_shapes={"input": (1, 3, 224, 224)},
        output_names=["logits"],
        manifest=image_manifest(size=224, color="rgb", labels=[f"class{i}" for i in range(1000)]),
    )


def minilm_package(out: Path) -> pkgmod.ModelPackage | None:
    """all-MiniLM-L6-v2 as an ONNX package (128 tokens), or None when the exporter is unavailable."""
    try:
        from cpuai.models import minilm

        return minilm.export(out, max_length=128)
    except Exception as exc:  # noqa: BLE001 - the benchmark still runs on the CNN
        print(f"MiniLM skipped: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None


# ---- the default configurations, straight from the libraries ------------------------------------


class _Adapter:
    """A library session seen through the Engine protocol, so the same code measures every contender."""

    precision = "default"
    threads = 0

    def __init__(self, backend: str, inputs: list[TensorInfo], streams: int) -> None:
        self.backend, self.inputs, self.outputs, self.streams = backend, inputs, [], streams

    def close(self) -> None:  # pragma: no cover - nothing to free beyond garbage collection
        pass


class OrtDefault(_Adapter):
    """``onnxruntime.InferenceSession(path)`` exactly as a user would first write it."""

    def __init__(self, model: Path) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        inputs = [
            TensorInfo(i.name, _ort_dtype(i.type), tuple(d if isinstance(d, int) else -1 for d in i.shape))
            for i in self.session.get_inputs()
        ]
        super().__init__("ort-default", inputs, 1)
        self._pool = ThreadPoolExecutor(max_workers=1)

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(enumerate(self.session.run(None, feeds)))  # type: ignore[arg-type]

    def submit(self, feeds: dict[str, np.ndarray]) -> Future:
        return self._pool.submit(self.infer, feeds)

    def close(self) -> None:
        self._pool.shutdown()


class OvHint(_Adapter):
    """OpenVINO's CPU plugin with only a performance hint; it picks streams, threads and precision."""

    def __init__(self, model: Path, hint: str) -> None:
        import openvino as ov

        self.compiled = ov.Core().compile_model(str(model), "CPU", {"PERFORMANCE_HINT": hint})
        nireq = int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        inputs = [
            TensorInfo(
                p.any_name,
                "int64" if "i64" in str(p.element_type) else "float32",
                tuple(-1 if d.is_dynamic else d.get_length() for d in p.partial_shape),
            )
            for p in self.compiled.inputs
        ]
        super().__init__(f"ov-{hint.lower()}", inputs, nireq if hint == "THROUGHPUT" else 1)
        self.precision = str(self.compiled.get_property("INFERENCE_PRECISION_HINT"))
        self.threads = int(self.compiled.get_property("INFERENCE_NUM_THREADS"))
        self.ov_streams = int(self.compiled.get_property("NUM_STREAMS"))
        self.request = self.compiled.create_infer_request()
        self.queue = ov.AsyncInferQueue(self.compiled, self.streams)
        self.queue.set_callback(lambda req, fut: fut.set_result(None))

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.request.infer(feeds)
        return {}

    def submit(self, feeds: dict[str, np.ndarray]) -> Future:
        fut: Future = Future()
        fut.set_running_or_notify_cancel()
        self.queue.start_async(feeds, fut)
        return fut

    def close(self) -> None:
        self.queue.wait_all()


def _ort_dtype(t: str) -> str:
    return {"tensor(int64)": "int64", "tensor(int32)": "int32"}.get(t, "float32")


# ---- the run ------------------------------------------------------------------------------------


def _metric(engine: Any, feeds: dict[str, np.ndarray], objective: str, budget: Budget, batch: int) -> dict:
    if objective == "latency":
        s = measure_latency(engine, feeds, budget)
        return {"median_ms": s.median_ms, "p99_ms": s.p99_ms, "value": s.median_ms}
    t = measure_throughput(engine, feeds, budget, batch=batch)
    return {"samples_per_s": t.samples_per_s, "p99_ms": t.p99_ms, "value": t.samples_per_s}


def compare(pkg: pkgmod.ModelPackage, objective: str, args: argparse.Namespace, cores: int) -> dict[str, Any]:
    print(f"== {pkg.manifest.name}: tune --objective {objective}", flush=True)
    batches = [1] if objective == "latency" else args.batches
    result = tune(
        pkg,
        objective=objective,
        cores=cores,
        batches=batches,
        budget=Budget(duration=args.tune_budget, warmup=2),
        write=False,
        progress=lambda t: print("  " + t, flush=True),
    )
    pick = result.best.config
    print(f"  picked {pick.label()}: {result.why}", flush=True)
    tuned, _ = open_engine(pkg, pick, cores)
    contenders: dict[str, Any] = {
        "tuned": tuned,
        "ort-default": OrtDefault(pkg.model_file),
        "ov-throughput": OvHint(pkg.model_file, "THROUGHPUT"),
        "ov-latency": OvHint(pkg.model_file, "LATENCY"),
    }
    feeds = make_feeds(pkg, tuned, pick.batch)
    budget = Budget(duration=args.duration, warmup=3)
    runs: dict[str, list[dict]] = {k: [] for k in contenders}
    for r in range(args.repeats):  # interleaved: every contender once per repeat
        for name, engine in contenders.items():
            runs[name].append(_metric(engine, feeds.arrays, objective, budget, pick.batch))
        print(f"  repeat {r + 1}/{args.repeats} done", flush=True)
    summary: dict[str, Any] = {}
    for name, values in runs.items():
        e = contenders[name]
        summary[name] = {
            "value": statistics.median(v["value"] for v in values),
            "p99_ms": statistics.median(v["p99_ms"] for v in values),
            "repeats": [v["value"] for v in values],
            "settings": {
                "backend": e.backend,
                "precision": e.precision,
                "threads": e.threads,
                "streams": getattr(e, "ov_streams", e.streams),
                "in_flight": e.streams,
            },
        }
    for e in contenders.values():
        e.close()
    best = summary["tuned"]["value"]
    for name in ("ort-default", "ov-throughput", "ov-latency"):
        v = summary[name]["value"]
        summary[name]["tuned_ratio"] = (v / best) if objective == "latency" else (best / v)
    return {
        "model": pkg.manifest.name,
        "objective": objective,
        "batch": pick.batch,
        "inputs": feeds.source,
        "unit": "median ms (batch 1)" if objective == "latency" else f"samples/s (batch {pick.batch})",
        "pick": pick.to_dict(),
        "why": result.why,
        "trials": len(result.trials),
        "contenders": summary,
    }


def _write(out: Path, rows: list[dict], args: argparse.Namespace, cores: int) -> None:
    report = {
        "benchmark": "tune",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python benchmarks/tune.py"
        + (" --quick" if args.quick else "")
        + (f" --models {','.join(args.models)}" if list(args.models) != list(MODELS) else ""),
        "machine": machine_summary(),
        "cores": cores,
        "settings": {
            "duration_s": args.duration,
            "repeats": args.repeats,
            "tune_budget_s": args.tune_budget,
            "throughput_batches": "1,8,32 (MiniLM and ResNet-18 1,8 with --quick)",
            "models": args.models,
        },
        "results": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))


MODELS = ("digits", "resnet18", "minilm")


def _models(text: str) -> list[str]:
    wanted = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in wanted if m not in MODELS]
    if unknown or not wanted:
        raise SystemExit(
            f"error: unknown model(s) {', '.join(unknown) or '(none)'}; use: {', '.join(MODELS)}"
        )
    return wanted


def throughput_batches(pkg: pkgmod.ModelPackage, quick: bool) -> list[int]:
    """1, 8, 32; with --quick the heavy models (MiniLM, ResNet-18) stop at 8 to keep the run short."""
    heavy = pkg.manifest.task == "text-embedding" or pkg.manifest.name == "resnet18"
    return [1, 8] if (quick and heavy) else [1, 8, 32]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short measurements (under ~10 minutes on 2 cores)")
    ap.add_argument(
        "--models", type=_models, default=list(MODELS), help=f"comma-separated, from: {', '.join(MODELS)}"
    )
    ap.add_argument("--no-minilm", action="store_true", help="leave MiniLM out (same as --models without it)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.no_minilm:
        args.models = [m for m in args.models if m != "minilm"]
    args.duration = 0.5 if args.quick else 2.0
    args.repeats = 3 if args.quick else 5
    args.tune_budget = 0.15 if args.quick else 0.4
    args.batches = [1, 8, 32]
    cores = core_budget()
    rows = []
    with tempfile.TemporaryDirectory(prefix="cpuai-bench-tune-") as tmp:
        packages = []
        if "digits" in args.models:
            packages.append(digits_package(Path(tmp) / "digits", epochs=3 if args.quick else 10))
        if "resnet18" in args.models:
            packages.append(resnet18_package(Path(tmp) / "resnet18"))
        if "minilm" in args.models:
            mini = minilm_package(Path(tmp) / "minilm")
            if mini is not None:
                packages.append(mini)
        for pkg in packages:
            for objective in ("latency", "throughput"):
                args.batches = throughput_batches(pkg, args.quick)
                rows.append(compare(pkg, objective, args, cores))
                _write(
                    args.out, rows, args, cores
                )  # after every comparison: a long run keeps what it measured
    print()
    print(
        f"{'model':<12} {'objective':<11} {'tuned pick':<34} {'unit':<22} {'tuned':>9} "
        f"{'ort-default':>12} {'ov-THROUGHPUT':>14} {'ov-LATENCY':>11}"
    )
    for r in rows:
        c = r["contenders"]
        p = r["pick"]
        pick = f"{p['backend']} {p['precision']} {p['threads']}t×{p['streams']}s b{p['batch']}"
        cells = [f"{c['tuned']['value']:.4g}"] + [
            f"{c[k]['value']:.4g} ({c[k]['tuned_ratio']:.2f}×)"
            for k in ("ort-default", "ov-throughput", "ov-latency")
        ]
        print(
            f"{r['model']:<12} {r['objective']:<11} {pick:<34} {r['unit']:<22} {cells[0]:>9} {cells[1]:>12} "
            f"{cells[2]:>14} {cells[3]:>11}"
        )
    print(
        "ratios: how many times better the tuned pick is (latency: default/tuned; throughput: tuned/default)"
    )
    _write(args.out, rows, args, cores)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
