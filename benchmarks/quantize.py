"""FP32 vs tuned INT8 per backend on three models, accuracy and speed side by side, and the tuning cost.

Models: the digits SmallCNN, a ResNet-18 (3x3 "small" stem, 11 M parameters) trained briefly on the
digits at 32x32, and all-MiniLM-L6-v2 from the bundled package (held-out sentences: Python's own
docstrings). For each: PyTorch eager FP32 (the baseline), then per backend (ONNX Runtime, OpenVINO)
its FP32 engine and the INT8 package ``cpuai.quantize`` tunes to a 1-point tolerance (top-1 for the
CNNs, mean cosine to FP32 for MiniLM). Speed: batch-1 latency and batch-32 throughput, all cores.

    .venv/bin/python benchmarks/quantize.py --quick     # ~minutes: fewer images, epochs, timing runs
    .venv/bin/python benchmarks/quantize.py             # full

Writes benchmarks/results/quantize.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

RESULTS = Path(__file__).parent / "results" / "quantize.json"
SIZE = 32


class TorchEager:
    """PyTorch eager FP32 behind the ``infer`` call the speed helpers use."""

    def __init__(self, model: Any, output: str | None = None) -> None:
        self.model = model.eval()
        self.output = output

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():
            tensors = {k: torch.from_numpy(v) for k, v in feeds.items()}
            if self.output is None:
                out = self.model(*tensors.values())
            else:
                out = getattr(self.model(**tensors), self.output)
        return {"out": out.numpy()}


def digits(quick: bool) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.kron(d.images.astype(np.float32) / 16.0, np.ones((4, 4), np.float32))[:, None]
    return x, d.target.astype(np.int64)


def train(model: Any, x: np.ndarray, y: np.ndarray, epochs: int, lr: float = 0.003) -> Any:
    import torch

    torch.manual_seed(0)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for epoch in range(epochs):
        perm = torch.randperm(len(xt))
        t0 = time.time()
        for i in range(0, len(xt), 64):
            idx = perm[i : i + 64]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        print(
            f"  epoch {epoch + 1}/{epochs}, loss = {loss.item():.3f} "
            f"({len(xt) / (time.time() - t0):.0f} examples/sec)"
        )
    return model.eval()


def image_package(model: Any, dest: Path, name: str) -> Path:
    import torch

    from cpuai import package as pkgmod

    manifest = pkgmod.Manifest(
        name=name,
        task="image-classification",
        format="onnx",
        precision="fp32",
        inputs=[pkgmod.TensorSpec(name="input", shape=[-1, 1, SIZE, SIZE], layout="NCHW")],
        outputs=[pkgmod.TensorSpec(name="logits", shape=[-1, 10])],
        preprocessing=pkgmod.Preprocessing(image=pkgmod.ImagePreprocessing(size=(SIZE, SIZE), color="gray")),
        labels=[str(i) for i in range(10)],
    )

    def files(tmp: Path) -> None:
        torch.onnx.export(
            model,
            (torch.zeros(1, 1, SIZE, SIZE),),
            str(tmp / "model.onnx"),
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )

    return pkgmod.write(dest, manifest, files).path


def speed_of(engine: Any, feed: dict[str, np.ndarray], runs: int) -> dict[str, float]:
    from cpuai.quantize.speed import measure

    s = measure(engine, feed, with_throughput=True, runs=runs)
    return {"latency_ms": s.latency_ms, "throughput": float(s.throughput or 0.0)}


def bench_model(
    name: str, pkg: Path, eager: TorchEager, calib: Path, evals: Path, work: Path, runs: int, max_trials: int
) -> dict[str, Any]:
    import torch

    from cpuai import package as pkgmod
    from cpuai.hardware import core_budget
    from cpuai.quantize import load_samples, quantize

    threads = core_budget()
    torch.set_num_threads(threads)
    feed = load_samples(evals, pkgmod.read(pkg), limit=32).batches[0]
    row: dict[str, Any] = {"model": name, "threads": threads, "torch_eager_fp32": speed_of(eager, feed, runs)}
    print(f"  torch eager fp32: {row['torch_eager_fp32']}")
    for backend in ("onnxruntime", "openvino"):
        t0 = time.time()
        tuner = quantize(
            pkg,
            calib,
            evals,
            work / f"{name}-{backend}-int8",
            tolerance="1%",
            backend=backend,
            strategy="basic",
            max_trials=max_trials,
            timing_runs=runs,
        )
        wall = time.time() - t0
        s, r = tuner.speed_, tuner.report_
        eager_tput = row["torch_eager_fp32"]["throughput"]
        row[backend] = {
            "metric": r["metric"],
            "fp32_metric": r["baseline"]["metric"],
            "int8_metric": r["choice"]["metric"],
            "delta": r["choice"]["metric"] - r["baseline"]["metric"],
            "tolerance_met": r["tolerance_met"],
            "choice": r["choice"]["label"],
            "precision": tuner.best_.config.precision,
            "trials": len(r["trials"]),
            "tuning_seconds": wall,
            "fp32_latency_ms": s["fp32_latency_ms"],
            "int8_latency_ms": s["latency_ms"],
            "fp32_throughput": s["fp32_throughput"],
            "int8_throughput": s["throughput"],
            "latency_speedup_vs_fp32": s["latency_speedup"],
            "throughput_speedup_vs_fp32": s["throughput_speedup"],
            "throughput_speedup_vs_torch_eager": (s["throughput"] or 0) / eager_tput,
            "fp32_size_bytes": r["baseline"]["size_bytes"],
            "int8_size_bytes": next(
                t["size_bytes"] for t in r["trials"] if t["trial"] == r["choice"]["trial"]
            ),
        }
        print(f"  {backend}: {tuner.message()}")
        print(
            f"    batch-1 x{s['latency_speedup']:.2f}, batch-32 x{s['throughput_speedup']:.2f} vs FP32; "
            f"x{row[backend]['throughput_speedup_vs_torch_eager']:.2f} vs torch eager; {wall:.0f} s tuning"
        )
    return row


def write_results(out: Path, rows: list[dict[str, Any]], quick: bool) -> None:
    """Write what has been measured so far (after every model, so a long run keeps its partial figures)."""
    from cpuai.hardware import core_budget

    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "quantize",
        "mode": "quick" if quick else "full",
        "cores": core_budget(),
        "cpu": platform.processor() or platform.machine(),
        "python": sys.version.split()[0],
        "command": "python benchmarks/quantize.py" + (" --quick" if quick else ""),
        "tolerance": "1% absolute",
        "strategy": "basic",
        "results": rows,
    }
    out.write_text(json.dumps(payload, indent=2))


def record(rows: list[dict[str, Any]], out: Path, quick: bool, row: dict[str, Any]) -> None:
    rows.append(row)
    write_results(out, rows, quick)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, few epochs and timing runs")
    parser.add_argument("--models", default="digits,resnet18,minilm", help="comma-separated subset")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    quick = args.quick
    runs = 10 if quick else 40
    max_trials = 6 if quick else 8
    n_calib, n_eval = (100, 200) if quick else (300, 397)
    models = args.models.split(",")


    rows = []
    with tempfile.TemporaryDirectory(prefix="cpuai-bench-quantize-") as tmp:
        work = Path(tmp)
        x, y = digits(quick)
        np.save(work / "calib.npy", x[:n_calib])
        np.savez(work / "eval.npz", x=x[1400 : 1400 + n_eval], y=y[1400 : 1400 + n_eval])
        if "digits" in models:
            from cpuai.models.smallcnn import smallcnn

            print("digits SmallCNN (width 16): training")
            cnn = train(
                smallcnn(num_classes=10, in_channels=1, width=16), x[:1400], y[:1400], 6 if quick else 10
            )
            pkg = image_package(cnn, work / "digits", "digits")
            record(
                rows,
                args.out,
                quick,
                bench_model(
                    "digits-cnn",
                    pkg,
                    TorchEager(cnn),
                    work / "calib.npy",
                    work / "eval.npz",
                    work,
                    runs,
                    max_trials,
                ),
            )
        if "resnet18" in models:
            from cpuai.models.resnet import resnet18

            print("ResNet-18 (small stem) on digits 32x32: training")
            n_train = 512 if quick else 1400
            net = train(
                resnet18(num_classes=10, in_channels=1, stem="small"),
                x[:n_train],
                y[:n_train],
                1 if quick else 3,
                lr=0.001,
            )
            pkg = image_package(net, work / "resnet18", "resnet18-digits")
            record(
                rows,
                args.out,
                quick,
                bench_model(
                    "resnet18-digits",
                    pkg,
                    TorchEager(net),
                    work / "calib.npy",
                    work / "eval.npz",
                    work,
                    runs,
                    max_trials,
                ),
            )
        if "minilm" in models:
            from cpuai.data.docstrings import docstrings
            from cpuai.models.minilm import export, transformer

            print("all-MiniLM-L6-v2: exporting")
            texts = docstrings(limit=n_calib + n_eval + 100, seed=0)
            (work / "calib.txt").write_text("\n".join(texts[:n_calib]) + "\n")
            (work / "eval.txt").write_text("\n".join(texts[n_calib : n_calib + n_eval]) + "\n")
            pkg = export(work / "minilm").path
            record(
                rows,
                args.out,
                quick,
                bench_model(
                    "minilm",
                    pkg,
                    TorchEager(transformer(), "last_hidden_state"),
                    work / "calib.txt",
                    work / "eval.txt",
                    work,
                    runs,
                    max_trials,
                ),
            )

    print()
    header = (
        "model",
        "backend",
        "metric",
        "fp32",
        "int8",
        "met",
        "choice",
        "trials",
        "tune s",
        "b1 x",
        "b32 x",
        "vs eager",
    )
    lines = [header]
    for r in rows:
        for b in ("onnxruntime", "openvino"):
            v = r[b]
            lines.append(
                (
                    r["model"],
                    b,
                    v["metric"],
                    f"{v['fp32_metric']:.4f}",
                    f"{v['int8_metric']:.4f}",
                    "yes" if v["tolerance_met"] else "NO",
                    v["choice"],
                    str(v["trials"]),
                    f"{v['tuning_seconds']:.0f}",
                    f"{v['latency_speedup_vs_fp32']:.2f}",
                    f"{v['throughput_speedup_vs_fp32']:.2f}",
                    f"{v['throughput_speedup_vs_torch_eager']:.2f}",
                )
            )
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)))

    write_results(args.out, rows, quick)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
