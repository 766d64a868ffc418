"""Parent side of ``cpuai ml run``: check the script, start the child runner, return its report and code."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cpuai.errors import CpuaiError, EngineError, InvalidInput
from cpuai.hardware import core_budget
from cpuai.ml.policy import check_policy
from cpuai.ml.report import Report


class ScriptExit(CpuaiError):
    """The user's script ended with a non-zero exit code; the CLI exits with that same code."""

    def __init__(self, script: Path, code: int) -> None:
        super().__init__(f"{script} exited with code {code}", fix="its output and the report are above")
        self.exit_code = code


@dataclass
class RunResult:
    """The script's exit code and the report (None only when the child died before writing it)."""

    exit_code: int
    report: Report | None


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _error_class(name: str) -> type[CpuaiError]:
    import cpuai.errors as errors

    cls = getattr(errors, name, CpuaiError)
    return cls if isinstance(cls, type) and issubclass(cls, CpuaiError) else CpuaiError


def check_script(script: Path) -> Path:
    """The script must be an existing file."""
    if not script.exists():
        raise InvalidInput(f"script not found: {script}", fix="give the path of an existing Python script")
    if not script.is_file():
        raise InvalidInput(f"not a file: {script}", fix="give the path of a Python script, not a directory")
    return script


def run_script(
    script: Path,
    args: list[str],
    *,
    policy: str = "measured",
    echo: bool = False,
    env: dict[str, str] | None = None,
) -> RunResult:
    """Run ``script`` in a fresh Python with sklearnex patched under ``policy``; stdio passes through."""
    check_policy(policy)
    check_script(script)
    with tempfile.TemporaryDirectory(prefix="cpuai-ml-") as tmp:
        report_file = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "cpuai.ml.runner", "--policy", policy, "--report-file", str(report_file)]
        if echo:
            cmd.append("--echo")
        cmd += ["--", str(script), *args]
        child_env = dict(os.environ if env is None else env)
        child_env.pop("SKLEARNEX_VERBOSE", None)  # the tracker sets the logger level itself
        budget = str(core_budget())
        for var in _THREAD_VARS:  # an explicit budget for BLAS/OpenMP too, unless the user set one
            child_env.setdefault(var, budget)
        sys.stdout.flush()
        sys.stderr.flush()
        proc = subprocess.run(cmd, env=child_env, check=False)
        if not report_file.exists():
            if proc.returncode < 0:
                raise EngineError(
                    f"the script was killed by signal {-proc.returncode} before a report was written",
                    fix="check memory use and run it again",
                )
            return RunResult(exit_code=proc.returncode, report=None)
        import json

        data = json.loads(report_file.read_text())
    if "error" in data:
        err = data["error"]
        raise _error_class(err["type"])(err["message"], fix=err.get("fix"))
    return RunResult(exit_code=proc.returncode, report=Report.from_dict(data["report"]))
