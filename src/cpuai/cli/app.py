"""The ``cpuai`` entry point: global flags, verb discovery and the one-line error contract.

Each module in ``cpuai.cli`` that defines ``register(app)`` adds its verb(s); a verb exists only
once its module does. Verb modules import heavy libraries inside their commands, so that
``cpuai --help`` stays fast. A ``CpuaiError`` prints ``error: <message>; <fix>`` on one line and
exits with its code (2 for user errors); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys
import traceback

import typer
from typer.exceptions import TyperException

import cpuai
from cpuai.errors import CpuaiError

app = typer.Typer(
    name="cpuai",
    help="cpuai: train, convert, quantize, benchmark, tune and serve models on CPU servers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_NOT_VERBS = {"app", "output"}


class _State:
    debug = False


state = _State()


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cpuai {cpuai.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
) -> None:
    """cpuai: the CPU-first AI platform."""
    state.debug = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(message)s" if not debug else "%(asctime)s %(name)s %(levelname)s %(message)s",
    )


def _register_verbs() -> None:
    package = importlib.import_module("cpuai.cli")
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name in _NOT_VERBS:
            continue
        module = importlib.import_module(f"cpuai.cli.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_verbs()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code (used by the console script and by tests)."""
    args = list(sys.argv[1:] if argv is None else argv)
    state.debug = "--debug" in args
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=args, prog_name="cpuai", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except TyperException as exc:  # usage errors: unknown verb, bad option (typer's click)
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        return int(getattr(exc, "exit_code", 2))
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except CpuaiError as exc:
        if state.debug:
            traceback.print_exc()
        typer.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except Exception as exc:  # an internal error: say so, and how to see more
        if state.debug:
            traceback.print_exc()
            return 1
        typer.echo(
            f"error: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
            err=True,
        )
        return 1


def console_main() -> None:
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    console_main()
