"""cpuai jobs list|show|logs [--follow] over real job directories."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cpuai.cli.app import main
from cpuai.data.digits import export_digits
from cpuai.train.jobdir import JobDir

SMALL = [
    "--epochs",
    "2",
    "--limit",
    "256",
    "--width",
    "8",
    "--threads",
    "1",
    "--log-every",
    "2",
    "--size",
    "16",
]


@pytest.fixture(scope="module")
def jobs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("jobs")
    data = export_digits(root / "data", size=16).root
    assert (
        main(
            ["train", "image-classification", "--data", str(data), "--out", str(root / "runs" / "a"), *SMALL]
        )
        == 0
    )
    return root


def test_list_and_show(jobs, capsys):
    capsys.readouterr()
    assert main(["jobs", "list", str(jobs), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert (
        len(rows) == 1
        and rows[0]["state"] == "finished"
        and rows[0]["epoch"] == 2
        and rows[0]["model"] == "smallcnn"
    )
    assert rows[0]["package"].endswith("package")
    assert main(["jobs", "show", str(jobs / "runs" / "a"), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["spec"]["epochs"] == 2 and shown["last_epoch"]["val_top1"] > 0
    assert main(["jobs", "list", str(jobs)]) == 0
    assert "finished" in capsys.readouterr().out


def test_logs_prints_the_classic_lines(jobs, capsys):
    capsys.readouterr()
    assert main(["jobs", "logs", str(jobs / "runs" / "a"), "--tail", "50"]) == 0
    out = capsys.readouterr().out
    assert "examples/sec" in out and "package written to" in out


def test_a_killed_job_reads_as_crashed(jobs, tmp_path):
    job = JobDir.create(
        tmp_path / "j", JobDir(jobs / "runs" / "a").spec().model_copy(update={"out": str(tmp_path / "j")})
    )
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    status = json.loads((job.path / "status.json").read_text())
    status.update(state="running", pid=proc.pid)
    (job.path / "status.json").write_text(json.dumps(status))
    assert job.state() == "running"
    proc.kill()
    proc.wait()
    assert job.state() == "crashed"


def test_logs_follow_stops_when_the_job_ends(jobs, tmp_path, capsys):
    src = JobDir(jobs / "runs" / "a")
    job = JobDir.create(tmp_path / "f", src.spec().model_copy(update={"out": str(tmp_path / "f")}))
    job.write_status("running")  # this process is the "job"
    job.log_file.write_text("first line\n")

    def finish() -> None:
        time.sleep(1.0)
        with job.log_file.open("a") as f:
            f.write("step 9, loss = 0.10 (10.0 examples/sec, 0.100 sec/batch)\n")
        time.sleep(0.5)
        job.write_status("finished")

    t = threading.Thread(target=finish)
    t.start()
    assert main(["jobs", "logs", str(job.path), "--follow"]) == 0
    t.join()
    out = capsys.readouterr().out
    assert out.splitlines() == ["first line", "step 9, loss = 0.10 (10.0 examples/sec, 0.100 sec/batch)"]


def test_bad_job_paths(tmp_path, capsys):
    assert main(["jobs", "show", str(tmp_path)]) == 2
    assert "is not a cpuai training job" in capsys.readouterr().err
    assert main(["jobs", "list", str(tmp_path / "missing")]) == 2
    assert "jobs folder" in capsys.readouterr().err
