"""Child side of ``cpuai ml run``: run a user's script under ``accelerated()``, hand back the report.

It runs in a fresh interpreter (so nothing, OpenVINO above all, was loaded before sklearnex), gives
the script its own ``sys.argv`` and ``__main__``, keeps the script's exit code, and writes the report
(or a cpuai error) as JSON to ``--report-file`` for the parent to print — also when the script fails.

    python -m cpuai.ml.runner --policy measured --report-file out.json -- script.py arg1 arg2
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
import traceback
from pathlib import Path

from cpuai.errors import CpuaiError


def _exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _write(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, default=str))
    os.replace(tmp, path)


def run(script: str, args: list[str], *, policy: str, report_file: Path, echo: bool = False) -> int:
    """Run ``script`` with ``args`` under the policy; write the report; return the script's exit code."""
    from cpuai.ml.session import accelerated

    def progress(key: str) -> None:
        print(f"cpuai ml: calibrating {key} (once per machine and library versions)", file=sys.stderr)

    try:
        with accelerated(policy, echo=echo, progress=progress) as session:
            sys.argv = [script, *args]
            sys.path.insert(0, str(Path(script).resolve().parent))
            code = 0
            try:
                runpy.run_path(script, run_name="__main__")
            except SystemExit as exc:
                code = _exit_code(exc)
            except KeyboardInterrupt:
                code = 130
            except BaseException:  # the user's script failed: show its traceback as python would
                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
        report = session.report(script=script, exit_code=code)
        _write(report_file, {"report": report.to_dict()})
        return code
    except CpuaiError as exc:
        _write(report_file, {"error": {"type": type(exc).__name__, "message": exc.message, "fix": exc.fix}})
        return exc.exit_code


def main(argv: list[str] | None = None) -> int:
    """Parse the runner's own flags, then run the script."""
    parser = argparse.ArgumentParser(prog="python -m cpuai.ml.runner")
    parser.add_argument("--policy", default="measured")
    parser.add_argument("--report-file", required=True, type=Path)
    parser.add_argument("--echo", action="store_true")
    parser.add_argument("script")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    ns = parser.parse_args(argv)
    args = ns.args[1:] if ns.args[:1] == ["--"] else ns.args
    return run(ns.script, args, policy=ns.policy, report_file=ns.report_file, echo=ns.echo)


if __name__ == "__main__":
    sys.exit(main())
