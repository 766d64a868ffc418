"""Things on a probed machine that cost performance, each with what to do about it.

``machine_warnings(info)`` is what ``MachineInfo.warnings`` returns and ``cpuai doctor`` prints:
hyper-threads counted as cores, OMP_NUM_THREADS above the budget, a non-performance governor, a
cgroup quota below the visible CPUs, numactl missing, AMX refused by the kernel, a memory limit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cpuai.hardware.machine import MachineInfo


def machine_warnings(info: MachineInfo) -> list[str]:
    """Things on this machine that cost performance, each with what to do about it."""
    out: list[str] = []
    usable_logical = len(info.usable)
    usable_phys = info.usable_physical_cores
    if info.threads_per_core > 1 and usable_logical > usable_phys:
        out.append(
            f"hyper-threading: the {usable_logical} usable logical CPUs are only {usable_phys} physical "
            f"cores; size thread pools by physical cores ({usable_phys}), not os.cpu_count()"
        )
    omp = info.env.get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) > info.thread_budget:
        out.append(
            f"OMP_NUM_THREADS={omp} exceeds the {info.thread_budget} cores this process should use; "
            f"set OMP_NUM_THREADS={info.thread_budget}"
        )
    if info.governors and any(g != "performance" for g in info.governors):
        out.append(
            f"frequency governor is {'/'.join(sorted(set(info.governors)))}, not performance; "
            "run `cpupower frequency-set -g performance` for stable timings"
        )
    if info.cpu_quota is not None and info.cpu_quota < usable_logical:
        out.append(
            f"cgroup CPU quota is {info.cpu_quota:g} CPUs but {usable_logical} CPUs are visible; "
            f"use {info.thread_budget} thread(s), more only adds throttling"
        )
    if info.numactl is None:
        scope = (
            f"memory of {info.numa_nodes} NUMA nodes is not bound to the instances"
            if info.numa_nodes > 1
            else "harmless on one NUMA node, needed for memory binding on multi-socket servers"
        )
        out.append(f"numactl not found: launch pins cores only ({scope}); apt-get install numactl")
    if "amx_tile" in info.flags and info.amx_os_enabled is False:
        out.append(
            "the CPU reports AMX but the kernel refuses AMX state to this process (needs Linux >= 5.16)"
        )
    if (
        info.memory_limit_bytes is not None
        and info.memory_bytes
        and info.memory_limit_bytes < info.memory_bytes
    ):
        out.append(
            f"cgroup memory limit is {human_bytes(info.memory_limit_bytes)} "
            f"of {human_bytes(info.memory_bytes)}"
        )
    return out


def human_bytes(n: int) -> str:
    """A byte count in binary units with one decimal (``1.5 GiB``)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n = n / 1024  # type: ignore[assignment]
    return f"{n} B"
