"""``cpuai doctor``: what this machine offers for inference, and how to run on it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cpuai.errors import ConfigError

if TYPE_CHECKING:
    from rich.table import Table

    from cpuai.hardware import MachineInfo


def register(app: typer.Typer) -> None:
    """Add the ``doctor`` verb."""
    app.command("doctor")(doctor)


def doctor(
    json_out: bool = typer.Option(False, "--json", help="Print everything as JSON."),
    root: Path = typer.Option(
        Path("/"), "--root", help="Read /proc and /sys under this directory (a recorded machine)."
    ),
    lscpu: Path | None = typer.Option(
        None, "--lscpu", help="A file with lscpu output to use instead of running lscpu."
    ),
) -> None:
    """Read CPU topology, ISA, limits and engines; recommend threads and instance core lists."""
    from cpuai import hardware
    from cpuai.cli.output import console, print_json

    if not root.is_dir():
        raise ConfigError(f"--root {root} is not a directory", fix="pass / or a recorded machine tree")
    if lscpu is not None and not lscpu.is_file():
        raise ConfigError(
            f"--lscpu {lscpu} is not a file", fix="pass a file holding lscpu output, or omit --lscpu"
        )
    info = hardware.probe(root, lscpu=lscpu)
    if json_out:
        print_json(info.to_dict())
        return
    for t in render(info):
        console.print(t)


def render(info: MachineInfo) -> list[Table]:
    """The doctor report as rich renderables: machine, ISA, advice per goal, warnings, unknowns."""
    from cpuai.cli.output import table
    from cpuai.hardware import format_cpulist

    mib = 1024 * 1024
    caches = ", ".join(
        f"{c.name} {c.size_bytes // 1024} KiB x{c.instances}"
        if c.size_bytes < mib
        else f"{c.name} {c.size_bytes / mib:.4g} MiB x{c.instances}"
        for c in info.caches
    )
    mem = f"{info.memory_bytes / 1024**3:.1f} GiB" if info.memory_bytes else None
    if mem and info.memory_available_bytes:
        mem += f" ({info.memory_available_bytes / 1024**3:.1f} GiB available)"
    if info.memory_limit_bytes:
        mem = f"{mem}, cgroup limit {info.memory_limit_bytes / 1024**3:.1f} GiB"
    amx = {True: "granted by the kernel", False: "refused by the kernel", None: "kernel permission unknown"}
    machine_rows = [
        ("CPU", f"{info.vendor or '?'} {info.model_name or '?'}"),
        ("Hypervisor", info.hypervisor or "none detected"),
        ("Sockets", info.sockets),
        ("Physical cores", info.physical_cores),
        ("Threads per core", info.threads_per_core),
        ("Logical CPUs", info.logical_cpus),
        ("NUMA nodes", "; ".join(f"node{n}: {format_cpulist(c)}" for n, c in sorted(info.numa.items()))),
        ("Caches", caches or None),
        ("Memory", mem),
        ("Governor", ", ".join(info.governors) if info.governors else "unknown (no cpufreq in /sys)"),
        (
            "C-states",
            ", ".join(info.cstates)
            if info.cstates
            else f"unknown (cpuidle driver: {info.cpuidle_driver or 'unreadable'})",
        ),
        ("Usable CPUs", f"{format_cpulist(info.usable)} ({info.usable_physical_cores} physical cores)"),
        ("cgroup quota", f"{info.cpu_quota:g} CPUs" if info.cpu_quota is not None else "none"),
        ("cgroup cpuset", format_cpulist(info.cgroup_cpuset) if info.cgroup_cpuset else None),
        ("Allocators", ", ".join(f"{k}: {v or 'not installed'}" for k, v in info.allocators.items())),
        ("numactl", info.numactl or "not installed"),
        ("Engines", ", ".join(f"{k} {v}" for k, v in info.engines.items() if v) or "none installed"),
    ]
    isa_rows = [(name, "yes" if present else "no") for name, present in info.isa.items()]
    if "amx_tile" in info.flags:
        isa_rows.append(("AMX state", amx[info.amx_os_enabled]))
    prec = info.accelerated_precisions
    prec_rows = [("fp32", info.vector_isa)] + [(p, unit) for p, unit in prec.items()]
    for p in ("int8", "bf16"):
        if p not in prec:
            prec_rows.append((p, "not accelerated (runs, but no faster than fp32)"))
    env_rows = []
    for goal in ("latency", "throughput"):
        rec = info.recommend(goal)
        cores = "  ".join(f"[{format_cpulist(c)}]" for c in rec.instances)
        env = "\n".join(f"{k}={v}" for k, v in rec.env.items())
        threads = f"{rec.intra_op_threads} / {rec.inter_op_threads}"
        env_rows.append((goal, len(rec.instances), cores, threads, env))
    out = [
        table("Machine", ["", "value"], machine_rows),
        table("ISA", ["feature", "present"], isa_rows),
        table("Precisions accelerated here", ["precision", "unit"], prec_rows),
        table(
            "Recommended environment (per instance)",
            ["goal", "instances", "cores", "intra/inter-op", "env"],
            env_rows,
        ),
    ]
    if info.warnings:
        out.append(table("Warnings", ["warning"], [(w,) for w in info.warnings]))
    if info.unknown:
        out.append(table("Unknown (could not be read here)", ["item"], [(u,) for u in info.unknown]))
    return out
