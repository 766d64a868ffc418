"""FP32 vs tuned INT8 per backend on three models, accuracy and speed side by side, and the tuning cost.

Models: the digits SmallCNN, cpuai's own ResNet-18 (ImageNet stem, 11 M parameters) at 224x224
trained briefly by ``cpuai train`` on the digits image folder, and all-MiniLM-L6-v2 from the bundled
package (held-out sentences: Python's own docstrings). For each: PyTorch eager FP32 (the baseline),
then per backend (ONNX Runtime, OpenVINO) its FP32 engine and the INT8 package ``cpuai.quantize``
tunes to a 1-point tolerance (top-1 for the CNNs, mean cosine to FP32 for MiniLM). Speed: batch-1
latency and batch-32 throughput, all cores; "vs eager" is INT8 batch-32 throughput over PyTorch eager
FP32 batch-32 throughput (target on this CPU: 6x or more for ResNet-18 and MiniLM).

    .venv/bin/python benchmarks/quantize.py --quick     # under ~15 min on 2 idle cores (see below)
    .venv/bin/python benchmarks/quantize.py             # full: more images, epochs, timing runs

The ResNet-18 is the expensive part to make: at 224x224 one training step of batch 32 took 1.35 s
with BF16 autocast (AMX) and 2.8 s in FP32 on 2 cores (load ~0.8). Quick mode therefore trains
3 epochs on 640 of the 1257 training images (60 steps at lr 0.002, about 1.5 min of steps; it
reached test top-1 0.985), full mode 3 epochs on all of them; the trained FP32 package (TorchScript
and its ONNX conversion) is cached under benchmarks/results/cache/ (git-ignored), keyed by those
settings, so reruns skip training.
``--prepare`` trains and caches it and stops.

Writes benchmarks/results/quantize.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import logging
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
CACHE = Path(__file__).parent / "results" / "cache"
SIZE = 32
RESNET_SIZE = 224
#: ResNet-18 training per mode: images, epochs, lr (AdamW, short warm-up), batch size.
RESNET_TRAINING = {
    "quick": {"limit": 640, "epochs": 3, "lr": 0.002, "batch_size": 32, "warmup_epochs": 0.25},
    "full": {"limit": 1257, "epochs": 3, "lr": 0.001, "batch_size": 32, "warmup_epochs": 0.5},
}


class TorchEager:
    """PyTorch eager FP32 behind the ``infer`` call the speed helpers use.

    ``by_name`` passes the feeds as keyword arguments (a text encoder's ``input_ids``,
    ``attention_mask``, ...), otherwise positionally (an image model's single input).
    """

    def __init__(self, model: Any, *, by_name: bool = False) -> None:
        self.model = model.eval()
        self.by_name = by_name

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():
            tensors = {k: torch.from_numpy(v) for k, v in feeds.items()}
            out = self.model(**tensors) if self.by_name else self.model(*tensors.values())
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


def resnet18_package(quick: bool, images: Path) -> tuple[Path, Any]:
    """cpuai's ResNet-18 trained by ``cpuai train`` on the digits folder at 224x224, as ONNX (cached).

    Returns the ONNX package and the eager PyTorch module rebuilt from the trained package.
    """
    import shutil

    from cpuai import package as pkgmod
    from cpuai.convert import convert, rebuild_module
    from cpuai.hardware import core_budget
    from cpuai.train.jobs import run_job
    from cpuai.train.spec import make_spec

    settings = {
        "model": "resnet18",
        "size": RESNET_SIZE,
        "data": "digits (cpuai data digits, 32x32 PNGs, resized by the trainer)",
        **RESNET_TRAINING["quick" if quick else "full"],
    }
    key = "resnet18-digits-224-" + ("quick" if quick else "full")
    cache = CACHE / key
    onnx_dir, job_dir, stamp = cache / "onnx", cache / "job", cache / "settings.json"
    if (onnx_dir / "model.yaml").exists() and stamp.exists() and json.loads(stamp.read_text()) == settings:
        print(f"  using the cached trained package {onnx_dir} (delete {cache} to retrain)")
    else:
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir(parents=True)
        t = RESNET_TRAINING["quick" if quick else "full"]
        steps = -(-t["limit"] // t["batch_size"]) * t["epochs"]
        print(
            f"  training {t['epochs']} epochs on {t['limit']} images at {RESNET_SIZE}x{RESNET_SIZE} "
            f"({steps} steps; about 1.4 s each with BF16 on 2 idle cores, 2.8 s in FP32; progress below)"
        )
        t0 = time.time()
        trained = run_job(
            make_spec(
                recipe="image-classification",
                data=str(images),
                out=str(job_dir),
                model="resnet18",
                size=RESNET_SIZE,
                epochs=t["epochs"],
                limit=t["limit"],
                lr=t["lr"],
                batch_size=t["batch_size"],
                warmup_epochs=t["warmup_epochs"],
                patience=0,
                augment=False,
                precision="auto",
                threads=core_budget(),
                log_every=5,
            )
        )
        print(f"  trained in {time.time() - t0:.0f} s: {trained.manifest.metrics}")
        convert(trained, to="onnx", out=onnx_dir, name="resnet18-digits-224")
        stamp.write_text(json.dumps(settings, indent=2))
    eager = rebuild_module(pkgmod.read(job_dir / "package"))
    return onnx_dir, eager


def speed_of(engine: Any, feed: dict[str, np.ndarray], runs: int) -> dict[str, float]:
    from cpuai.quantize.speed import measure

    s = measure(engine, feed, with_throughput=True, runs=runs)
    return {"latency_ms": s.latency_ms, "throughput": float(s.throughput or 0.0)}


def _progress(trial: Any) -> None:
    if trial.error:
        print(f"    trial {trial.index}: {trial.config.label()}: failed: {trial.error}")
    else:
        print(
            f"    trial {trial.index}: {trial.config.label()}: {trial.metric:.4f} "
            f"({'within' if trial.within else 'outside'} tolerance, {trial.seconds:.0f} s)"
        )


def bench_model(
    name: str,
    pkg: Path,
    eager: TorchEager,
    calib: Path,
    evals: Path,
    work: Path,
    runs: int,
    max_trials: int,
    *,
    calib_limit: int = 300,
    eval_limit: int | None = None,
) -> dict[str, Any]:
    import torch

    from cpuai import package as pkgmod
    from cpuai.hardware import core_budget
    from cpuai.quantize import load_samples, quantize

    threads = core_budget()
    torch.set_num_threads(threads)
    feed = load_samples(evals, pkgmod.read(pkg), limit=32).batches[0]
    print(f"  torch eager fp32: timing batch 1 and batch 32 ({runs} runs)")
    row: dict[str, Any] = {"model": name, "threads": threads, "torch_eager_fp32": speed_of(eager, feed, runs)}
    print(f"  torch eager fp32: {row['torch_eager_fp32']}")
    for backend in ("onnxruntime", "openvino"):
        print(f"  {backend}: tuning (at most {max_trials} trials)")
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
            calib_limit=calib_limit,
            eval_limit=eval_limit,
            on_trial=_progress,
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
    parser.add_argument(
        "--prepare", action="store_true", help="only train and cache the ResNet-18 package, then stop"
    )
    args = parser.parse_args(argv)
    quick = args.quick
    runs = 10 if quick else 40
    max_trials = 6 if quick else 8
    n_calib, n_eval = (100, 200) if quick else (300, 397)
    models = ["resnet18"] if args.prepare else args.models.split(",")
    logging.basicConfig(level=logging.WARNING, format="    %(message)s")
    logging.getLogger("cpuai.train").setLevel(logging.INFO)  # training progress: steps and epochs
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    started = time.time()

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
            from cpuai.data.digits import export_digits

            print(f"ResNet-18 (ImageNet stem) on the digits image folder at {RESNET_SIZE}x{RESNET_SIZE}")
            images = export_digits(work / "digits-images").root
            pkg, net = resnet18_package(quick, images)
            if args.prepare:
                print(f"prepared {pkg}")
                return 0
            record(
                rows,
                args.out,
                quick,
                bench_model(
                    "resnet18-digits-224",
                    pkg,
                    TorchEager(net),
                    images / "train",
                    images / "test",
                    work,
                    runs,
                    max_trials,
                    calib_limit=n_calib,
                    eval_limit=n_eval,
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
                    TorchEager(transformer(), by_name=True),
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

    for r in rows:
        if r["model"].startswith(("resnet18", "minilm")):
            best = max(r[b]["throughput_speedup_vs_torch_eager"] for b in ("onnxruntime", "openvino"))
            verdict = "meets" if best >= 6.0 else "MISSES"
            print(
                f"{r['model']}: best INT8 throughput x{best:.2f} vs PyTorch eager FP32 "
                f"({verdict} the 6x target)"
            )
    print(f"total {time.time() - started:.0f} s; load average at end: {os.getloadavg()[0]:.2f}")
    write_results(args.out, rows, quick)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
