"""``probe(root)``: read a machine into a ``MachineInfo``; ``current()``: the live one, probed once.

The probe runs the readers in order (identity and ISA flags from /proc/cpuinfo and lscpu, then
topology, NUMA, caches, memory, power, cgroup limits, the usable CPUs, AMX permission, allocators,
numactl and engine versions). Every path is taken under ``root``, so a recorded tree of another
machine is read exactly as the live one.
"""

from __future__ import annotations

import functools
import os
import platform
import re
from collections.abc import Sequence
from pathlib import Path

from cpuai.hardware.cpulist import parse_cpulist
from cpuai.hardware.installed import ALLOCATORS, engine_versions, find_allocator
from cpuai.hardware.isa import amx_permitted
from cpuai.hardware.limits import read_cgroup, usable_cpus
from cpuai.hardware.machine import MachineInfo
from cpuai.hardware.memory import read_memory
from cpuai.hardware.power import read_power
from cpuai.hardware.sources import lscpu_text, parse_cpuinfo, parse_lscpu, read_text, to_int, which
from cpuai.hardware.topology import lscpu_caches, read_caches, read_numa, read_topology


def probe(
    root: str | Path = "/",
    *,
    lscpu: str | Path | None = None,
    usable: Sequence[int] | None = None,
    env: dict[str, str] | None = None,
) -> MachineInfo:
    """Read the machine under ``root`` (``/`` for this one) into a ``MachineInfo``.

    ``lscpu`` is a file holding ``lscpu`` output; by default the ``lscpu`` command runs on the live
    machine and ``<root>/lscpu.txt`` is read for a recorded one. ``usable`` overrides the CPUs this
    process may use (default: its affinity mask live, ``proc/self/status`` for a recorded tree).
    """
    r = Path(root)
    live = r.resolve() == Path("/")
    info = MachineInfo(env=dict(os.environ if env is None else env))
    info.architecture = platform.machine() if live else None

    cpuinfo = parse_cpuinfo(read_text(r / "proc/cpuinfo"))
    ls_text = lscpu_text(r, lscpu, live)
    ls = parse_lscpu(ls_text) if ls_text else {}
    if not cpuinfo:
        info.unknown.append("/proc/cpuinfo")
    if not ls_text:
        info.unknown.append("lscpu output")

    first = cpuinfo[0] if cpuinfo else {}
    info.vendor = first.get("vendor_id") or ls.get("Vendor ID")
    info.model_name = first.get("model name") or ls.get("Model name")
    info.family = to_int(first.get("cpu family") or ls.get("CPU family"))
    info.model = to_int(first.get("model") or ls.get("Model"))
    info.stepping = to_int(first.get("stepping") or ls.get("Stepping"))
    info.architecture = ls.get("Architecture") or info.architecture
    flag_text = first.get("flags") or ls.get("Flags") or ""
    info.flags = frozenset(flag_text.split())
    if not info.flags:
        info.unknown.append("ISA flags")
    info.hypervisor = ls.get("Hypervisor vendor") or (
        "unknown hypervisor" if "hypervisor" in info.flags else None
    )

    read_topology(info, r, cpuinfo, ls)
    read_numa(info, r, ls)
    info.caches = read_caches(r, info) or lscpu_caches(ls, len(info.cpus))
    if not info.caches:
        info.unknown.append("caches")
    read_memory(info, r)
    read_power(info, r)
    read_cgroup(info, r)

    if usable is not None:
        info.usable = sorted(usable)
        info.sources["usable"] = "argument"
    elif live:
        info.usable = usable_cpus()
        info.sources["usable"] = "sched_getaffinity"
    else:
        status = read_text(r / "proc/self/status") or ""
        m = re.search(r"^Cpus_allowed_list:\s*(\S+)", status, re.M)
        if m:
            info.usable = parse_cpulist(m.group(1))
            info.sources["usable"] = "proc/self/status"
        elif info.cgroup_cpuset:
            info.usable = list(info.cgroup_cpuset)
            info.sources["usable"] = "cgroup cpuset"
        else:
            info.usable = [c.cpu for c in info.cpus]
            info.sources["usable"] = "assumed all online CPUs"
    online = {c.cpu for c in info.cpus}
    info.usable = [c for c in info.usable if c in online] or sorted(online)

    if live:
        info.amx_os_enabled = amx_permitted() if "amx_tile" in info.flags else None
    if "amx_tile" in info.flags and info.amx_os_enabled is None:
        info.unknown.append("whether the kernel grants AMX state (arch_prctl)")

    info.allocators = {name: find_allocator(name, root=r) for name in ALLOCATORS}
    info.numactl = which("numactl", r, live)
    info.engines = engine_versions()
    return info


@functools.cache
def current() -> MachineInfo:
    """The live machine, probed once per process (launch plans and bench reports share it)."""
    return probe("/")
