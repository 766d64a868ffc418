"""cpuai's per-call overhead: ``Engine.infer`` against the library's own call on the same settings.

For each backend, one process holds a cpuai engine and a bare library object built with the *same*
options (ONNX Runtime: ``cpuai.runtime.onnxruntime.session_options``; OpenVINO: the same compile
config), on the same model, and calls them alternately (the order flips every call) so machine
noise hits both alike. It reports the median of many calls in µs, the difference (cpuai's overhead
per call) and the ratio engine/raw. ``openvino`` is ``request.infer(feeds)`` as users write it (it
copies the inputs first); ``openvino-shared`` passes ``share_inputs=True`` as cpuai's engine does.
A tiny model makes the overhead visible: the digits-sized CNN (random weights; speed does not
depend on them) runs in well under a millisecond.

    .venv/bin/python benchmarks/engine_overhead.py               # ~20 s
    .venv/bin/python benchmarks/engine_overhead.py --calls 500   # a quick look
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cpuai import package as pkgmod
from cpuai.convert import convert


def tiny_cnn_package(out: Path) -> pkgmod.ModelPackage:
    """The digits SmallCNN (width 8, 1×32×32, random weights) as an FP32 ONNX package."""
    import torch

    from cpuai.models.smallcnn import smallcnn

    torch.manual_seed(0)
    return convert(
        smallcnn(num_classes=10, in_channels=1, width=8).eval(),
        to="onnx",
        out=out,
        name="tiny-cnn",
        input_shapes={"input": (1, 1, 32, 32)},
        output_names=["logits"],
        manifest={"task": "image-classification", "labels": [str(i) for i in range(10)]},
    )


def interleaved(raw: Callable[[], Any], engine: Callable[[], Any], calls: int) -> tuple[float, float]:
    """Median µs of ``raw`` and ``engine``, called alternately ``calls`` times each after a warm-up."""
    for _ in range(50):
        raw()
        engine()
    t_raw, t_eng = [], []
    clock = time.perf_counter
    for i in range(calls):  # the order flips every call, so neither always runs first
        first, second, t_first, t_second = (
            (raw, engine, t_raw, t_eng) if i % 2 else (engine, raw, t_eng, t_raw)
        )
        t0 = clock()
        first()
        t1 = clock()
        second()
        t2 = clock()
        t_first.append(t1 - t0)
        t_second.append(t2 - t1)
    return statistics.median(t_raw) * 1e6, statistics.median(t_eng) * 1e6


def ort_pair(pkg: pkgmod.ModelPackage, threads: int, feeds: dict[str, np.ndarray]) -> tuple[Any, Any]:
    import onnxruntime as ort

    from cpuai import runtime
    from cpuai.runtime.onnxruntime import session_options

    engine = runtime.load(pkg, backend="onnxruntime", threads=threads, streams=1)
    session = ort.InferenceSession(
        str(pkg.model_file), sess_options=session_options(threads, 1), providers=["CPUExecutionProvider"]
    )
    return (lambda: session.run(None, feeds)), engine


def ov_pair(
    pkg: pkgmod.ModelPackage, threads: int, feeds: dict[str, np.ndarray], *, share: bool = False
) -> tuple[Any, Any]:
    import openvino as ov

    from cpuai import runtime
    from cpuai.runtime.openvino import compile_config

    engine = runtime.load(pkg, backend="openvino", threads=threads, streams=1)
    config = compile_config(threads=threads, streams=1, hint="latency", precision="fp32")
    request = ov.Core().compile_model(str(pkg.model_file), "CPU", config).create_infer_request()
    return (lambda: request.infer(feeds, share_inputs=share)), engine


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=3000, help="timed calls per contender (default 3000)")
    ap.add_argument("--threads", type=int, default=None, help="intra-op threads (default: all cores)")
    ap.add_argument(
        "--backends",
        default="onnxruntime,openvino,openvino-shared",
        help="openvino: raw request.infer(feeds) as users write it; openvino-shared: with share_inputs=True",
    )
    args = ap.parse_args(argv)
    from cpuai.hardware import core_budget

    threads = args.threads or core_budget()
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {threads} thread(s); {args.calls} calls")
    feeds = {"input": np.random.default_rng(0).random((1, 1, 32, 32), dtype=np.float32)}
    print(f"{'backend':<16} {'raw µs':>9} {'engine µs':>10} {'overhead µs':>12} {'ratio':>7}")
    with tempfile.TemporaryDirectory(prefix="cpuai-overhead-") as tmp:
        pkg = tiny_cnn_package(Path(tmp) / "cnn")
        for backend in args.backends.split(","):
            if backend == "onnxruntime":
                raw, engine = ort_pair(pkg, threads, feeds)
            else:
                raw, engine = ov_pair(pkg, threads, feeds, share=backend == "openvino-shared")
            try:
                r, e = interleaved(raw, lambda eng=engine: eng.infer(feeds), args.calls)
            finally:
                engine.close()
            print(f"{backend:<16} {r:>9.1f} {e:>10.1f} {e - r:>12.1f} {e / r:>6.2f}×", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
