"""``load(package)``: pick a backend, size its threads and streams, and return a ready ``Engine``.

The backend rule for ``backend="auto"`` (also in docs/runtime.md):

1. a ``deploy`` section written by ``cpuai tune`` wins (its backend, threads, streams, precision);
2. otherwise the package's format decides: ``openvino`` IR runs on OpenVINO, ``torchscript`` on
   PyTorch, and ``onnx`` on ONNX Runtime, which reads ONNX natively (OpenVINO can run the same file
   with ``backend="openvino"``, which is faster on Intel CPUs for large models; see
   docs/benchmarks.md#engines).

Threads × streams never exceed ``cpuai.hardware.core_budget()``. Asked for explicitly beyond it, the
load is refused with ``ResourceError``; values from a ``deploy`` section made on a bigger machine are
scaled down to fit (with a log line).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from cpuai import package as pkgmod
from cpuai.errors import ConfigError, ModelError, ResourceError
from cpuai.hardware import core_budget
from cpuai.runtime.engine import BACKENDS, Engine

log = logging.getLogger(__name__)

HINTS = ("latency", "throughput")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")

#: Which backends can run each package format.
FORMAT_BACKENDS: dict[str, tuple[str, ...]] = {
    "onnx": ("onnxruntime", "openvino"),
    "openvino": ("openvino",),
    "torchscript": ("torch",),
}


def plan_threads(
    threads: int | None, streams: int | None, hint: str, budget: int | None = None
) -> tuple[int, int]:
    """Threads per stream and streams for ``hint`` within ``budget`` cores (default ``core_budget()``).

    ``latency`` runs one stream on every core; ``throughput`` runs many narrow streams (one core each
    up to four cores, then two cores each). Explicit values beyond the budget raise ``ResourceError``.
    """
    budget = core_budget() if budget is None else budget
    for name, value in (("threads", threads), ("streams", streams)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ConfigError(
                f"{name} must be a whole number >= 1, got {value!r}", fix=f"pass {name}=1 or more"
            )
    if threads is not None and streams is not None:
        pass
    elif threads is not None:
        streams = 1 if hint == "latency" else max(1, budget // threads)
    elif streams is not None:
        threads = max(1, budget // streams)
    elif hint == "latency":
        threads, streams = budget, 1
    else:
        streams = budget if budget <= 4 else budget // 2
        threads = max(1, budget // streams)
    assert threads is not None and streams is not None
    if threads * streams > budget:
        raise ResourceError(
            f"threads x streams = {threads} x {streams} = {threads * streams} is more than the {budget} "
            "core(s) this process may use",
            fix=f"ask for at most {budget} in total (e.g. threads={budget} streams=1), or set CPUAI_CORES",
        )
    return threads, streams


def _fit(threads: int, streams: int, budget: int) -> tuple[int, int]:
    """Scale a tuned (threads, streams) down to ``budget`` cores: fewer streams first, then threads."""
    t, s = min(threads, budget), streams
    s = max(1, min(s, budget // t))
    if (t, s) != (threads, streams):
        log.info(
            "deploy settings %d threads x %d streams do not fit %d cores; using %d x %d",
            threads,
            streams,
            budget,
            t,
            s,
        )
    return t, s


def choose_backend(package: pkgmod.ModelPackage) -> str:
    """The backend ``auto`` picks for this package (see the module docstring for the rule)."""
    deploy = package.manifest.deploy
    if deploy is not None and deploy.backend in FORMAT_BACKENDS[package.manifest.format]:
        return deploy.backend
    return FORMAT_BACKENDS[package.manifest.format][0]


def _as_package(package_or_path: pkgmod.ModelPackage | str | Path) -> pkgmod.ModelPackage:
    if isinstance(package_or_path, pkgmod.ModelPackage):
        return package_or_path
    if isinstance(package_or_path, str | Path):
        return pkgmod.read(package_or_path)
    raise ConfigError(
        f"load() takes a ModelPackage or a path, got {type(package_or_path).__name__}",
        fix="pass the package directory",
    )


def load(
    package_or_path: pkgmod.ModelPackage | str | Path,
    backend: str = "auto",
    threads: int | None = None,
    streams: int | None = None,
    hint: str = "latency",
    precision: str | None = None,
    spin: bool | None = None,
) -> Engine:
    """Load a model package on a backend with an explicit thread budget; see the module docstring.

    ``spin`` sets whether ONNX Runtime's threads spin-wait between runs (None: only with one stream;
    ``cpuai serve`` passes False). OpenVINO and PyTorch have no such switch and ignore it.
    """
    if backend != "auto" and backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}", fix=f"use one of: auto, {', '.join(BACKENDS)}")
    if hint not in HINTS:
        raise ConfigError(f"unknown hint {hint!r}", fix="use latency or throughput")
    if precision is not None and precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}", fix=f"use one of: {', '.join(PRECISIONS)}")
    if spin is not None and not isinstance(spin, bool):
        raise ConfigError(
            f"spin must be True, False or None, got {spin!r}", fix="pass spin=False or leave it out"
        )
    package = _as_package(package_or_path)
    manifest = package.manifest
    fmt = manifest.format

    deploy = manifest.deploy
    use_deploy = (
        deploy is not None and backend in ("auto", deploy.backend) and deploy.backend in FORMAT_BACKENDS[fmt]
    )
    if backend == "auto":
        backend = choose_backend(package)
    if backend not in FORMAT_BACKENDS[fmt]:
        raise ModelError(
            f"backend '{backend}' cannot run a {fmt} package ({package.path})",
            fix=f"use --backend {' or '.join(FORMAT_BACKENDS[fmt])}, or convert it with cpuai convert",
        )
    budget = core_budget()
    if use_deploy and deploy is not None and threads is None and streams is None:
        threads, streams = _fit(deploy.threads, deploy.streams, budget)
        precision = precision or deploy.precision
    threads, streams = plan_threads(threads, streams, hint, budget)

    engine = _build(
        package, backend, threads=threads, streams=streams, hint=hint, precision=precision, spin=spin
    )
    engine.package = package  # type: ignore[attr-defined]  # lets tasks find their tokenizer/labels
    return engine


def _build(
    package: pkgmod.ModelPackage,
    backend: str,
    *,
    threads: int,
    streams: int,
    hint: str,
    precision: str | None,
    spin: bool | None = None,
) -> Engine:
    manifest = package.manifest
    run_precision = precision or manifest.precision
    opts: dict[str, Any] = {"threads": threads, "streams": streams, "hint": hint}
    if backend == "onnxruntime":
        if run_precision != manifest.precision and run_precision != "fp32":
            raise ConfigError(
                f"onnxruntime runs the graph as stored ({manifest.precision}), not in {run_precision}",
                fix="use --backend openvino for bf16, or convert/quantize the package to that precision",
            )
        from cpuai.runtime.onnxruntime import OnnxRuntimeEngine

        return OnnxRuntimeEngine(
            package.file(package.model_file.name), precision=manifest.precision, spin=spin, **opts
        )
    if backend == "openvino":
        from cpuai.runtime.openvino import OpenVinoEngine

        return OpenVinoEngine(
            package.model_file, package_precision=manifest.precision, precision=precision, **opts
        )
    from cpuai.runtime.torch import TorchEngine

    return TorchEngine(
        package.file(package.model_file.name),
        inputs=manifest.inputs,
        outputs=manifest.outputs,
        package_precision=manifest.precision,
        precision=precision,
        **opts,
    )
