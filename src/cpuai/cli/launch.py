"""``cpuai launch``: run N pinned instances of a command on disjoint physical cores."""

from __future__ import annotations

from pathlib import Path

import typer

from cpuai.errors import ConfigError


def register(app: typer.Typer) -> None:
    """Add the ``launch`` verb."""
    app.command(
        "launch",
        context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True},
    )(launch)


def launch(
    command: list[str] = typer.Argument(None, help="The command to run in every instance, after --."),
    ninstances: int | None = typer.Option(None, "--ninstances", help="Number of instances."),
    cores_per_instance: int | None = typer.Option(
        None, "--cores-per-instance", help="Physical cores per instance."
    ),
    node_id: int | None = typer.Option(None, "--node-id", help="Use only the cores of this NUMA node."),
    latency_mode: bool = typer.Option(
        False, "--latency-mode", help="One instance on the cores of one node (default)."
    ),
    throughput_mode: bool = typer.Option(
        False, "--throughput-mode", help="One instance per NUMA node, or per core (groups of 4 from 8 cores)."
    ),
    allocator: str = typer.Option(
        "default", "--allocator", help="Preload jemalloc or tcmalloc (or default)."
    ),
    log_dir: Path | None = typer.Option(
        None, "--log-dir", help="Also write each instance's output to DIR/instance_<i>.log."
    ),
    no_numactl: bool = typer.Option(
        False, "--no-numactl", help="Pin with sched_setaffinity only, even if numactl exists."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and exit."),
    json_out: bool = typer.Option(False, "--json", help="With --dry-run: print the plan as JSON."),
) -> None:
    """Split the usable physical cores among instances, pin each, and run COMMAND in all of them."""
    import shutil

    from cpuai import hardware
    from cpuai import launch as launcher
    from cpuai.cli.output import console, print_json, table

    if latency_mode and throughput_mode:
        raise ConfigError(
            "--latency-mode and --throughput-mode were both given", fix="pass at most one of them"
        )
    mode: launcher.Mode = "throughput" if throughput_mode else "latency"
    argv = list(command or [])
    launcher.allocator_env(allocator)  # an unknown or missing allocator fails before anything starts
    plans = launcher.plan(ninstances, cores_per_instance, node_id, mode)
    if dry_run:
        numactl = None if no_numactl else shutil.which("numactl")
        if json_out:
            print_json(
                {
                    "mode": mode,
                    "allocator": allocator,
                    "numactl": numactl,
                    "command": argv,
                    "instances": [
                        {**p.to_dict(), "argv": launcher.command_for(p, argv, numactl)} for p in plans
                    ],
                }
            )
            return
        rows = [
            (
                p.index,
                hardware.format_cpulist(p.cpus),
                ",".join(map(str, p.nodes)) or "?",
                p.env["OMP_NUM_THREADS"],
                " ".join(launcher.command_for(p, argv, numactl)) or "(no command)",
            )
            for p in plans
        ]
        console.print(
            table(
                f"Launch plan ({mode}, allocator {allocator}, "
                f"pinning by {'numactl' if numactl else 'sched_setaffinity'})",
                ["instance", "cpus", "node", "OMP_NUM_THREADS", "argv"],
                rows,
            )
        )
        return
    if not argv:
        raise ConfigError(
            "no command to launch", fix="put the command after --, e.g. cpuai launch -- python app.py"
        )
    code = launcher.run(plans, argv, allocator=allocator, log_dir=log_dir, use_numactl=not no_numactl)
    if code:
        raise launcher.InstanceFailed(code, len(plans))
