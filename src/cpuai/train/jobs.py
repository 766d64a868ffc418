"""Run, resume and supervise training jobs: one in-process worker, or N data-parallel worker processes.

``run_job(spec)`` creates the job directory and trains; ``resume_job(path)`` continues a crashed or
interrupted job from its last checkpoint. SIGTERM/SIGINT make the job write a checkpoint and stop
(``Interrupted``). With ``workers > 1`` (or several nodes) each worker is a process pinned to its
share of cores by ``cpuai.launch.plan`` and joined with torch.distributed (gloo); rank 0 writes the
log, checkpoints and package.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cpuai.errors import JobError
from cpuai.hardware import core_budget
from cpuai.package import ModelPackage
from cpuai.train.jobdir import JobDir
from cpuai.train.loop import Interrupted, StopRequest, train
from cpuai.train.spec import TrainSpec

log = logging.getLogger("cpuai.train")
LOGGERS = ("cpuai.train", "cpuai.data")


@contextlib.contextmanager
def job_log(job: JobDir) -> Iterator[None]:
    """Copy the training and data loggers to JOBDIR/train.log while the job runs."""
    handler = logging.FileHandler(job.log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    loggers = [logging.getLogger(n) for n in LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
        handler.close()


def build_recipe(spec: TrainSpec) -> Any:
    """The recipe object for ``spec.recipe`` (built under the job's seed, identical on every rank)."""
    import torch

    torch.manual_seed(spec.seed)
    if spec.recipe == "image-classification":
        from cpuai.train.image import ImageClassification

        return ImageClassification(spec)
    from cpuai.train.tabular import WideDeepRecipe

    return WideDeepRecipe(spec)


def run_job(spec: TrainSpec) -> ModelPackage:
    """Create the job directory for ``spec`` and train; returns the package (JOBDIR/package)."""
    if spec.node_rank > 0:  # other nodes keep a local copy of the spec; node 0 owns the job directory
        job = JobDir(spec.out)
        job.path.mkdir(parents=True, exist_ok=True)
        job.spec_file.write_text(spec.dump())
    else:
        job = JobDir.create(spec.out, spec)
    return _execute(job, spec, resume=False)


def resume_job(path: str | Path) -> ModelPackage:
    """Continue a job from its last checkpoint; JobError for a finished, running or foreign directory."""
    job = JobDir.open(path)
    state = job.state()
    if state == "finished":
        raise JobError(
            f"job {job.path} has already finished (package at {job.package_dir})",
            fix="evaluate it with 'cpuai evaluate', or start a new job with another --out",
        )
    status = job.status()
    if state == "running" and status.get("pid") != os.getpid():
        raise JobError(
            f"job {job.path} is still running (pid {status.get('pid')} on {status.get('host')})",
            fix="wait for it, or stop it with kill -TERM first",
        )
    spec = job.spec()
    resume = job.checkpoint_file.exists()
    if not resume:
        log.info("job %s has no checkpoint yet; starting it from the beginning", job.path)
    return _execute(job, spec, resume=resume)


def _execute(job: JobDir, spec: TrainSpec, *, resume: bool) -> ModelPackage:
    stop = StopRequest().install()
    try:
        with job_log(job):
            job.write_status("running", resumed=resume)
            try:
                if spec.world_size == 1:
                    package = _train_here(job, spec, resume=resume, stop=stop)
                else:
                    package = _launch_workers(job, spec, resume=resume, stop=stop)
            except Interrupted as err:
                job.write_status("interrupted", signal=err.signum)
                raise
            except BaseException as err:
                job.write_status("failed", error=f"{type(err).__name__}: {err}")
                raise
            job.write_status("finished", package=str(job.package_dir), finished=time.time())
            return package
    finally:
        stop.restore()


def _train_here(job: JobDir, spec: TrainSpec, *, resume: bool, stop: StopRequest) -> ModelPackage:
    import torch

    torch.set_num_threads(spec.threads or core_budget())
    recipe = build_recipe(spec)
    package = train(spec, recipe, job, stop=stop, resume=resume)
    assert package is not None
    return package


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def worker_plans(workers: int) -> list[tuple[list[int] | None, dict[str, str]]]:
    """(cpus, env) per local worker from ``cpuai.launch.plan``; unpinned when the planner cannot split."""
    from cpuai.errors import CpuaiError

    try:
        from cpuai.launch import plan

        return [(list(p.cpus), dict(p.env)) for p in plan(ninstances=workers)]
    except (ImportError, CpuaiError) as err:
        log.warning(
            "warning: cannot pin %d workers (%s); running them unpinned with %d thread(s) each",
            workers,
            err,
            max(1, core_budget() // workers),
        )
        threads = str(max(1, core_budget() // workers))
        return [(None, {"OMP_NUM_THREADS": threads, "CPUAI_CORES": threads}) for _ in range(workers)]


def _launch_workers(job: JobDir, spec: TrainSpec, *, resume: bool, stop: StopRequest) -> ModelPackage:
    port = spec.master_port if spec.nnodes > 1 else free_port()
    addr = spec.master_addr if spec.nnodes > 1 else "127.0.0.1"
    procs: list[subprocess.Popen[bytes]] = []
    for local, (cpus, env) in enumerate(worker_plans(spec.workers)):
        rank = spec.node_rank * spec.workers + local
        child_env = {
            **os.environ,
            **env,
            "MASTER_ADDR": addr,
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "WORLD_SIZE": str(spec.world_size),
            "LOCAL_RANK": str(local),
        }
        if cpus:
            child_env["CPUAI_WORKER_CPUS"] = ",".join(map(str, cpus))
        cmd = [sys.executable, "-m", "cpuai.train.worker", str(job.path)] + (["--resume"] if resume else [])
        procs.append(subprocess.Popen(cmd, env=child_env, preexec_fn=_die_with_parent))
    log.info(
        "started %d worker(s) on node %d of %d (world size %d, master %s:%d)",
        len(procs),
        spec.node_rank,
        spec.nnodes,
        spec.world_size,
        addr,
        port,
    )
    forwarded = False
    codes: list[int | None] = [None] * len(procs)
    while any(c is None for c in codes):
        if stop.signum and not forwarded:
            for p in procs:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)
            forwarded = True
        for i, p in enumerate(procs):
            codes[i] = p.poll()
        failed = [i for i, c in enumerate(codes) if c not in (None, 0) and c != 128 + signal.SIGTERM]
        if failed:
            for p in procs:
                if p.poll() is None:
                    p.kill()
            raise JobError(
                f"training worker {failed[0]} exited with code {codes[failed[0]]}",
                fix=f"see {job.log_file} and the output above",
            )
        time.sleep(0.1)
    if any(c == 128 + signal.SIGTERM for c in codes) or stop.signum:
        raise Interrupted(stop.signum or signal.SIGTERM)
    if spec.node_rank > 0:
        raise _NodeDone()
    from cpuai import package as pkg

    return pkg.read(job.package_dir)


class _NodeDone(JobError):
    """Workers of a non-zero node finished; node 0 holds the package."""

    exit_code = 0

    def __init__(self) -> None:
        super().__init__("this node's workers finished; node 0 wrote the package")


def _die_with_parent() -> None:
    """Child pre-exec: receive SIGKILL if the launcher dies (so kill -9 leaves no orphans)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
