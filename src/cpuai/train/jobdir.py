"""A training job directory: spec, status, log, metrics, atomic checkpoints and the final package.

JOBDIR/
  spec.yaml        everything needed to re-run the job
  status.json      state (running, interrupted, failed, finished), pid, epoch, step
  train.log        the log, with "step N, loss = L (X examples/sec, Y sec/batch)" lines
  metrics.jsonl    one JSON record per logged step and per epoch
  checkpoint.pt    the latest checkpoint (written to a temporary file, then os.replace)
  best.pt          the weights with the best validation score so far
  package/         the model package, once the job has finished
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cpuai.errors import JobError
from cpuai.train.spec import TrainSpec, load_spec

SPEC = "spec.yaml"
STATUS = "status.json"
LOG = "train.log"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
PACKAGE = "package"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class JobDir:
    """One job directory on disk (see the module docstring for its layout)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"JobDir({self.path})"

    spec_file = property(lambda self: self.path / SPEC)
    log_file = property(lambda self: self.path / LOG)
    metrics_file = property(lambda self: self.path / METRICS)
    checkpoint_file = property(lambda self: self.path / CHECKPOINT)
    best_file = property(lambda self: self.path / BEST)
    package_dir = property(lambda self: self.path / PACKAGE)

    def is_job(self) -> bool:
        return self.spec_file.is_file()

    @classmethod
    def create(cls, path: str | Path, spec: TrainSpec) -> JobDir:
        """Make a new job directory; refuses one that already holds a job or other files."""
        job = cls(path)
        if job.is_job():
            raise JobError(
                f"{job.path} already holds a training job",
                fix=f"continue it with 'cpuai train --resume {job.path}' or pick another --out",
            )
        if job.path.exists() and (not job.path.is_dir() or any(job.path.iterdir())):
            raise JobError(
                f"--out {job.path} exists and is not empty", fix="pick a new --out directory for the job"
            )
        job.path.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(job.spec_file, spec.dump().encode())
        job.write_status("created")
        return job

    @classmethod
    def open(cls, path: str | Path) -> JobDir:
        """An existing job directory; JobError for a folder that is not one."""
        job = cls(path)
        if not job.path.is_dir():
            raise JobError(
                f"job directory {job.path} does not exist", fix="check the path (cpuai jobs list shows jobs)"
            )
        if not job.is_job():
            raise JobError(
                f"{job.path} is not a cpuai training job (no {SPEC})",
                fix="point at a directory made by 'cpuai train ... --out JOBDIR'",
            )
        return job

    def spec(self) -> TrainSpec:
        return load_spec(self.spec_file)

    def status(self) -> dict[str, Any]:
        try:
            return json.loads((self.path / STATUS).read_text())
        except (OSError, ValueError):
            return {"state": "unknown"}

    def write_status(self, state: str, **fields: Any) -> None:
        status = (
            {k: v for k, v in self.status().items() if k != "state"} if (self.path / STATUS).exists() else {}
        )
        status.update(fields, state=state, pid=os.getpid(), host=socket.gethostname(), updated=time.time())
        status.setdefault("started", time.time())
        atomic_write_bytes(self.path / STATUS, json.dumps(status, indent=1).encode())

    def state(self) -> str:
        """The job's state; a 'running' job whose process is gone on this host reads as 'crashed'."""
        status = self.status()
        state = status.get("state", "unknown")
        if state in ("running", "created") and status.get("host") == socket.gethostname():
            pid = status.get("pid")
            if isinstance(pid, int) and not _alive(pid):
                return "crashed"
        return state

    def append_metrics(self, record: dict[str, Any]) -> None:
        with self.metrics_file.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def metrics(self) -> Iterator[dict[str, Any]]:
        if not self.metrics_file.exists():
            return
        with self.metrics_file.open() as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        yield json.loads(line)
                    except ValueError:  # a line cut short by kill -9
                        continue

    def save(self, path: Path, state: dict[str, Any]) -> None:
        """torch.save ``state`` atomically (temporary file in the same folder, then os.replace)."""
        import io

        import torch

        buf = io.BytesIO()
        torch.save(state, buf)
        atomic_write_bytes(path, buf.getvalue())

    def load_checkpoint(self) -> dict[str, Any]:
        import torch

        if not self.checkpoint_file.exists():
            raise JobError(
                f"{self.path} has no checkpoint to resume from", fix="start the job again with 'cpuai train'"
            )
        return torch.load(self.checkpoint_file, map_location="cpu", weights_only=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed, not yet reaped) is not alive either.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return True


def find_jobs(root: str | Path) -> list[JobDir]:
    """Job directories at ``root`` or up to two levels below it, newest first."""
    base = Path(root)
    if not base.is_dir():
        raise JobError(
            f"jobs folder {base} does not exist", fix="pass the folder that holds your job directories"
        )
    found = [JobDir(p.parent) for p in [*base.glob(SPEC), *base.glob(f"*/{SPEC}"), *base.glob(f"*/*/{SPEC}")]]
    return sorted(found, key=lambda j: j.spec_file.stat().st_mtime, reverse=True)
