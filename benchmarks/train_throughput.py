"""Training throughput (examples/sec): cpuai's trainer vs a minimal hand-written PyTorch loop.

Same model (SmallCNN, width 16), same data (the real digits at 32x32, decoded in memory), same
global batch, same threads. Rows, all measured in one run:

- overhead: cpuai (fp32, no augmentation, contiguous) vs the hand-written loop (fp32) -> ratio;
- precision: cpuai fp32 vs cpuai bf16 autocast (AMX/AVX512-BF16 where the CPU has it);
- memory format: cpuai bf16 contiguous vs channels_last;
- workers: cpuai with 1 vs 2 data-parallel workers (gloo, pinned by cpuai.launch).

cpuai's figure comes from its own step records (metrics.jsonl), which time every step including
logging, the stop-flag check and the batch assembly, and exclude the per-epoch validation. Each
configuration runs ``--repeats`` times, interleaved, and the best run counts (the machine is shared).

    .venv/bin/python benchmarks/train_throughput.py --quick   # ~2 min: 1 epoch of 640 images, 1 repeat
    .venv/bin/python benchmarks/train_throughput.py           # full: 3 epochs of 1257 images, 3 repeats
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import tempfile
import time
from pathlib import Path

from cpuai.hardware import core_budget


def cpuai_run(
    data: Path, root: Path, tag: str, *, epochs: int, limit: int, threads: int, **overrides
) -> float:
    """Train with cpuai's job runner; examples/sec from its step records."""
    from cpuai.train.jobdir import JobDir
    from cpuai.train.jobs import run_job
    from cpuai.train.spec import make_spec

    out = root / f"{tag}-{time.monotonic_ns()}"
    values = dict(
        recipe="image-classification",
        data=str(data),
        out=str(out),
        epochs=epochs,
        limit=limit,
        threads=threads,
        log_every=5,
        patience=0,
        augment=False,
        channels_last=False,
        precision="fp32",
        batch_size=64,
    )
    values.update(overrides)
    run_job(make_spec(**values))
    steps = [r for r in JobDir(out).metrics() if r["kind"] == "step"]
    seconds = sum(r["sec_per_batch"] * _window(steps, i) for i, r in enumerate(steps))
    examples = sum(_window(steps, i) for i in range(len(steps))) * 64
    return examples / seconds


def _window(steps: list[dict], i: int) -> int:
    """How many steps the i-th record's window covered."""
    prev = (
        steps[i - 1]["step"] if i and steps[i - 1]["epoch"] == steps[i]["epoch"] else _epoch_start(steps, i)
    )
    return steps[i]["step"] - prev


def _epoch_start(steps: list[dict], i: int) -> int:
    before = [s["step"] for s in steps[:i] if s["epoch"] < steps[i]["epoch"]]
    return before[-1] if before else 0


def baseline_run(data: Path, *, epochs: int, limit: int, threads: int) -> float:
    """The minimal loop: tensors in memory, randperm, forward, cross-entropy, backward, AdamW step."""
    import numpy as np
    import torch

    from cpuai.data.imagefolder import ImageFolder
    from cpuai.data.images import decode_folder
    from cpuai.models.smallcnn import smallcnn

    torch.set_num_threads(threads)
    decoded = decode_folder(ImageFolder.open(data, "train"), size=(32, 32), color="gray")
    keep = np.sort(np.random.default_rng(0).permutation(len(decoded))[:limit])
    x = torch.from_numpy(decoded.pixels[keep]).float() / 255.0
    y = torch.from_numpy(decoded.labels[keep])
    torch.manual_seed(0)
    model = smallcnn(num_classes=10, in_channels=1, width=16)
    opt = torch.optim.AdamW(model.parameters(), lr=0.003, weight_decay=1e-4)
    steps = len(x) // 64
    seconds, count = 0.0, 0
    for _epoch in range(epochs):
        perm = torch.randperm(len(x))
        t = time.perf_counter()
        for b in range(steps):
            idx = perm[b * 64 : (b + 1) * 64]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            count += len(idx)
        seconds += time.perf_counter() - t
    return count / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 epoch of 640 images, 1 repeat")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="threads, 1-worker runs")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "train_throughput.json"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    epochs, limit = (1, 640) if args.quick else (3, 1257)
    repeats = args.repeats or (1 if args.quick else 3)
    threads = args.threads or core_budget()
    from cpuai.data.digits import export_digits

    with tempfile.TemporaryDirectory(prefix="cpuai-bench-train-") as tmp:
        root = Path(tmp)
        data = export_digits(root / "digits", size=32).root
        configs = {
            "baseline loop fp32": lambda: baseline_run(data, epochs=epochs, limit=limit, threads=threads),
            "cpuai fp32": lambda: cpuai_run(data, root, "fp32", epochs=epochs, limit=limit, threads=threads),
            "cpuai bf16": lambda: cpuai_run(
                data, root, "bf16", epochs=epochs, limit=limit, threads=threads, precision="bf16"
            ),
            "cpuai bf16 channels_last": lambda: cpuai_run(
                data,
                root,
                "bf16cl",
                epochs=epochs,
                limit=limit,
                threads=threads,
                precision="bf16",
                channels_last=True,
            ),
            "cpuai fp32 2 workers": lambda: cpuai_run(
                data, root, "w2", epochs=epochs, limit=limit, threads=max(1, threads // 2), workers=2
            ),
        }
        best: dict[str, float] = {}
        for _ in range(repeats):
            for name, fn in configs.items():
                best[name] = max(best.get(name, 0.0), fn())
    ratios = {
        "overhead (cpuai fp32 / baseline fp32)": best["cpuai fp32"] / best["baseline loop fp32"],
        "bf16 speed-up (bf16 / fp32)": best["cpuai bf16"] / best["cpuai fp32"],
        "channels_last speed-up (bf16)": best["cpuai bf16 channels_last"] / best["cpuai bf16"],
        "2 workers speed-up (fp32)": best["cpuai fp32 2 workers"] / best["cpuai fp32"],
    }
    print(f"{'configuration':<30} {'examples/sec':>12}")
    for name, value in best.items():
        print(f"{name:<30} {value:>12.1f}")
    print()
    for name, value in ratios.items():
        print(f"{name:<40} {value:>6.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": "train_throughput",
                "quick": args.quick,
                "epochs": epochs,
                "images": limit,
                "repeats": repeats,
                "threads": threads,
                "machine": platform.processor() or platform.machine(),
                "examples_per_sec": {k: round(v, 2) for k, v in best.items()},
                "ratios": {k: round(v, 4) for k, v in ratios.items()},
            },
            indent=2,
        )
    )
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
