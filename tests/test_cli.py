"""The CLI contract: --version, --help listing verbs, one-line errors with exit 2, --debug tracebacks."""

from __future__ import annotations

import subprocess
import sys

import typer

import cpuai
from cpuai.cli import app as cli
from cpuai.errors import ConfigError, CpuaiError, EngineError


def test_version(capsys):
    assert cli.main(["--version"]) == 0
    assert cpuai.__version__ in capsys.readouterr().out


def test_help_lists_every_registered_verb(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    names = [c.name or c.callback.__name__ for c in cli.app.registered_commands]
    names += [g.name for g in cli.app.registered_groups]
    assert names, "no verbs registered"
    for name in names:
        assert name in out


def _add_failing_verb(exc: Exception) -> None:
    @cli.app.command("fail-for-test", hidden=True)
    def _fail() -> None:
        raise exc


def test_user_error_is_one_line_exit_2(capsys):
    _add_failing_verb(ConfigError("batch must be at least 1 (got 0)", fix="pass --batch 1 or more"))
    rc = cli.main(["fail-for-test"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.strip() == "error: batch must be at least 1 (got 0); pass --batch 1 or more"
    cli.app.registered_commands.pop()


def test_debug_shows_traceback(capsys):
    _add_failing_verb(ConfigError("bad"))
    rc = cli.main(["--debug", "fail-for-test"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" in err
    cli.app.registered_commands.pop()


def test_internal_error_exit_1_without_traceback(capsys):
    _add_failing_verb(ZeroDivisionError("boom"))
    rc = cli.main(["fail-for-test"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err and "--debug" in err
    cli.app.registered_commands.pop()


def test_unknown_verb_is_usage_error(capsys):
    assert cli.main(["no-such-verb"]) == 2


def test_error_hierarchy():
    assert issubclass(ConfigError, CpuaiError) and ConfigError("x").exit_code == 2
    assert EngineError("x").exit_code == 1
    assert str(ConfigError("a", fix="b")) == "a; b"


def test_console_script_starts_without_heavy_engines():
    code = (
        "import sys; from cpuai.cli.app import main; main(['--help']);"
        "names = ('torch', 'onnxruntime', 'openvino', 'faiss', 'sklearnex', 'tensorflow');"
        "heavy = [m for m in names if m in sys.modules];"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out


def test_typer_app_is_typer():
    assert isinstance(cli.app, typer.Typer)


def test_exit_code_of_a_verb_is_returned():
    @cli.app.command("exit-for-test", hidden=True)
    def _exit() -> None:
        raise typer.Exit(3)

    assert cli.main(["exit-for-test"]) == 3
    cli.app.registered_commands.pop()
