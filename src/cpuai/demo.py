"""The main job: from nothing to a tuned INT8 model and a semantic search, in one command.

``cpuai demo`` is a pipeline of ordinary cpuai verbs, each run as its own process (so that
engines with clashing native parts never share one, and so that every step is exactly what a
user would type). A step whose artifact already exists is reused, so a second run in the same
work directory is quick; a training job that was interrupted is resumed. At the end the summary
is read back from the artifacts the steps left (manifests and JSON reports), never from memory.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cpuai.errors import CpuaiError

STEP_LOG = "steps.log"


class DemoError(CpuaiError):
    """A demo step failed; the message names the step, its command and its log."""

    exit_code = 1


@dataclass(frozen=True, kw_only=True)
class DemoSettings:
    """How big the demo run is. ``quick`` is for CI: fewer epochs and trials, a smaller corpus.

    >>> DemoSettings.make(quick=True).epochs
    6
    """

    workdir: Path
    quick: bool = False
    epochs: int = 12
    trials: int = 6
    corpus: int = 5000
    bench_seconds: float = 3.0
    calib: int = 300
    query: str = "join two paths into one file system path"

    @classmethod
    def make(cls, *, workdir: Path = Path("demo-work"), quick: bool = False) -> DemoSettings:
        if quick:
            return cls(
                workdir=workdir, quick=True, epochs=6, trials=3, corpus=600, bench_seconds=0.5, calib=64
            )
        return cls(workdir=workdir)


@dataclass
class Step:
    """One pipeline step: a cpuai command and the artifact that proves it has run."""

    title: str
    argv: list[str]
    artifact: Path
    resume_argv: list[str] | None = None  # used when a partial run left a resumable state
    partial: Path | None = None  # a path that exists when a previous run stopped midway
    capture: bool = False  # the command prints JSON on stdout: keep it as the artifact

    def done(self) -> bool:
        return self.artifact.exists()


@dataclass
class Paths:
    """Where each artifact of the demo lives inside the work directory."""

    root: Path
    digits: Path = field(init=False)
    job: Path = field(init=False)
    reports: Path = field(init=False)
    models: Path = field(init=False)

    def __post_init__(self) -> None:
        self.digits = self.root / "digits"
        self.job = self.root / "jobs" / "digits-cnn"
        self.reports = self.root / "reports"
        self.models = self.root / "models"

    @property
    def trained(self) -> Path:
        return self.job / "package"

    def model(self, name: str) -> Path:
        return self.models / name

    @property
    def corpus(self) -> Path:
        return self.root / "docstrings.txt"

    @property
    def corpus_eval(self) -> Path:
        return self.root / "docstrings-heldout.txt"

    @property
    def index(self) -> Path:
        return self.root / "indexes" / "docstrings"


#: The packages the demo benchmarks side by side; the first (the trained TorchScript model) is the baseline.
COMPARED = ("trained", "digits-fp32-onnx", "digits-fp32-ir", "digits-int8-onnx", "digits-int8-ir")


def benchmarked(p: Paths) -> list[Path]:
    """Package directories in COMPARED order."""
    return [p.trained if name == "trained" else p.model(name) for name in COMPARED]


def plan(settings: DemoSettings) -> list[Step]:
    """The demo's steps in order, with the exact cpuai command of each."""
    p = Paths(settings.workdir)
    r = p.reports
    m = p.model
    steps = [
        Step("Export the digits image folder", ["data", "digits", "--out", str(p.digits)], p.digits / "test"),
        Step(
            "Train the digits CNN",
            [
                "train",
                "image-classification",
                "--data",
                str(p.digits),
                "--out",
                str(p.job),
                "--epochs",
                str(settings.epochs),
            ],
            p.trained / "model.yaml",
            resume_argv=["train", "--resume", str(p.job)],
            partial=p.job,
        ),
        Step(
            "Evaluate it on the test split (confusion matrix PNG)",
            [
                "evaluate",
                str(p.trained),
                "--data",
                str(p.digits),
                "--split",
                "test",
                "--plot",
                str(r / "confusion.png"),
                "--json",
            ],
            r / "evaluate-trained.json",
            capture=True,
        ),
        Step(
            "Convert to ONNX",
            ["convert", str(p.trained), "--to", "onnx", "--out", str(m("digits-fp32-onnx"))],
            m("digits-fp32-onnx") / "model.yaml",
        ),
        Step(
            "Convert to OpenVINO IR",
            ["convert", str(m("digits-fp32-onnx")), "--to", "openvino", "--out", str(m("digits-fp32-ir"))],
            m("digits-fp32-ir") / "model.yaml",
        ),
    ]
    for fmt, backend in (("ir", "openvino"), ("onnx", "onnxruntime")):
        steps.append(
            Step(
                f"Quantize to INT8 within 1 % ({backend})",
                [
                    "quantize",
                    str(m(f"digits-fp32-{fmt}")),
                    "--calib",
                    str(p.digits / "train"),
                    "--eval",
                    str(p.digits / "val"),
                    "--tolerance",
                    "1%",
                    "--backend",
                    backend,
                    "--max-trials",
                    str(settings.trials),
                    "--calib-limit",
                    str(settings.calib),
                    "--out",
                    str(m(f"digits-int8-{fmt}")),
                ],
                m(f"digits-int8-{fmt}") / "model.yaml",
            )
        )
    compared = [str(path) for path in benchmarked(p)]
    for name in COMPARED[1:]:
        steps.append(
            Step(
                f"Evaluate {name} on the test split",
                ["evaluate", str(m(name)), "--data", str(p.digits), "--split", "test", "--json"],
                r / f"evaluate-{name}.json",
                capture=True,
            )
        )
    steps += [
        Step(
            "Benchmark FP32 vs INT8 on both backends (and PyTorch)",
            [
                "bench",
                "--compare",
                *compared,
                "--batch",
                "1,32",
                "--duration",
                f"{settings.bench_seconds}s",
                "--json",
                str(r / "bench.json"),
            ],
            r / "bench.json",
        ),
        Step(
            "Tune the INT8 deployment for latency",
            ["tune", str(m("digits-int8-ir")), "--objective", "latency", "--json", str(r / "tune.json")],
            r / "tune.json",
        ),
        Step(
            "Build the MiniLM text-embedding package",
            ["models", "export", "minilm", "--out", str(m("minilm-fp32"))],
            m("minilm-fp32") / "model.yaml",
        ),
        Step(
            "Write Python's docstrings as a text corpus",
            [
                "data",
                "docstrings",
                "--out",
                str(p.corpus),
                "--heldout",
                str(p.corpus_eval),
                "--limit",
                str(settings.corpus),
            ],
            p.corpus_eval,
        ),
        Step(
            "Quantize MiniLM to INT8 (mean cosine >= 0.99)",
            [
                "quantize",
                str(m("minilm-fp32")),
                "--calib",
                str(p.corpus),
                "--eval",
                str(p.corpus_eval),
                "--tolerance",
                "0.01",
                "--max-trials",
                str(settings.trials),
                "--calib-limit",
                str(settings.calib),
                "--out",
                str(m("minilm-int8")),
            ],
            m("minilm-int8") / "model.yaml",
        ),
        Step(
            "Build an INT8 HNSW index over the docstrings",
            [
                "vectors",
                "build",
                "--input",
                str(p.corpus),
                "--model",
                str(m("minilm-int8")),
                "--kind",
                "hnsw-sq8",
                "--out",
                str(p.index),
            ],
            p.index / "index.json",
        ),
        Step(
            "Run a sample semantic query",
            ["vectors", "search", str(p.index), settings.query, "-k", "3", "--json"],
            r / "search.json",
            capture=True,
        ),
    ]
    return steps


def _cpuai(argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "cpuai", *argv]


def _child_env() -> dict[str, str]:
    # Steps print through a pipe: give their tables a readable width.
    return {**os.environ, "COLUMNS": os.environ.get("COLUMNS", "110")}


def run_step(step: Step, log: Path, echo: Callable[[str], None]) -> str:
    """Run one step (or reuse its artifact); returns 'reused', 'resumed' or 'ran'."""
    if step.done():
        return "reused"
    argv = step.argv
    how = "ran"
    if step.partial is not None and step.partial.exists() and step.resume_argv is not None:
        argv, how = step.resume_argv, "resumed"
        echo(f"  found an unfinished run in {step.partial}; resuming it")
    echo(f"  $ cpuai {shlex.join(argv)}")
    tmp = step.artifact.with_name(f".{step.artifact.name}.partial")
    with log.open("a") as fh:
        fh.write(f"\n$ cpuai {shlex.join(argv)}\n")
        fh.flush()
        out = tmp.open("w") if step.capture else subprocess.PIPE
        try:
            proc = subprocess.Popen(
                _cpuai(argv),
                env=_child_env(),
                stdout=out,
                stderr=subprocess.PIPE if step.capture else subprocess.STDOUT,
                text=True,
                bufsize=1,
            )
            stream = proc.stderr if step.capture else proc.stdout
            assert stream is not None
            for line in stream:
                fh.write(line)
                echo("    " + line.rstrip("\n"))
            rc = proc.wait()
        finally:
            if step.capture:
                out.close()  # type: ignore[union-attr]
    if step.capture and rc == 0:
        os.replace(tmp, step.artifact)
    tmp.unlink(missing_ok=True)
    if rc != 0 or not step.done():
        why = f"exit code {rc}" if rc != 0 else f"it did not write {step.artifact}"
        raise DemoError(
            f"demo step '{step.title}' failed ({why}): cpuai {shlex.join(argv)}",
            fix=f"see {log}; rerun 'cpuai demo' to continue from this step",
        )
    return how


def run(settings: DemoSettings, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every step, then read the summary back from the artifacts."""
    settings.workdir.mkdir(parents=True, exist_ok=True)
    (settings.workdir / "reports").mkdir(exist_ok=True)
    log = settings.workdir / STEP_LOG
    steps = plan(settings)
    started = time.perf_counter()
    outcomes = []
    for n, step in enumerate(steps, 1):
        echo(f"[Step {n}/{len(steps)}] {step.title}")
        t0 = time.perf_counter()
        how = run_step(step, log, echo)
        outcomes.append({"step": step.title, "outcome": how, "seconds": round(time.perf_counter() - t0, 1)})
        if how == "reused":
            echo(f"  reused {step.artifact.parent if step.artifact.name == 'model.yaml' else step.artifact}")
    from cpuai.demo_summary import summarize

    summary = summarize(Paths(settings.workdir), settings)
    summary["steps"] = outcomes
    summary["seconds"] = round(time.perf_counter() - started, 1)
    (settings.workdir / "reports" / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def environment_note() -> str:
    """One line saying how many cores the demo runs on (timings scale with it)."""
    from cpuai.hardware import core_budget

    return f"running on {core_budget()} core(s); pid {os.getpid()}"
