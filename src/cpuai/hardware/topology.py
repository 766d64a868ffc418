"""Readers for the CPU layout: online CPUs with core and socket, NUMA nodes, and caches.

Each reader tries the most exact source first and falls back: topology from sysfs, then
/proc/cpuinfo, then lscpu's counts, then an assumption (named in ``MachineInfo.unknown``); NUMA
nodes from sysfs, then lscpu; caches from sysfs, then lscpu. ``MachineInfo.sources`` records which
one answered.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

from cpuai.hardware.cpulist import parse_cpulist
from cpuai.hardware.machine import CacheInfo, LogicalCpu, MachineInfo
from cpuai.hardware.sources import read_text, to_int


def read_topology(info: MachineInfo, r: Path, cpuinfo: list[dict[str, str]], ls: dict[str, str]) -> None:
    """Set ``info.cpus``: each online logical CPU with its physical core and socket."""
    cpu_dir = r / "sys/devices/system/cpu"
    online_text = read_text(cpu_dir / "online")
    online = parse_cpulist(online_text) if online_text else []
    if not online and cpuinfo:
        online = [int(b["processor"]) for b in cpuinfo if b.get("processor", "").isdigit()]
    if not online and ls.get("On-line CPU(s) list"):
        online = parse_cpulist(ls["On-line CPU(s) list"])
    if not online:
        online = list(range(os.cpu_count() or 1)) if r.resolve() == Path("/") else [0]
        info.unknown.append("online CPUs")

    cpus: list[LogicalCpu] = []
    for cpu in online:
        core = to_int(read_text(cpu_dir / f"cpu{cpu}/topology/core_id"))
        sock = to_int(read_text(cpu_dir / f"cpu{cpu}/topology/physical_package_id"))
        if core is None or sock is None:
            break
        cpus.append(LogicalCpu(cpu=cpu, core=core, socket=sock))
    if len(cpus) == len(online):
        info.sources["topology"] = "sysfs"
        info.cpus = cpus
        return

    by_proc = {int(b["processor"]): b for b in cpuinfo if b.get("processor", "").isdigit()}
    if all(c in by_proc and "core id" in by_proc[c] and "physical id" in by_proc[c] for c in online):
        info.cpus = [
            LogicalCpu(cpu=c, core=int(by_proc[c]["core id"]), socket=int(by_proc[c]["physical id"]))
            for c in online
        ]
        info.sources["topology"] = "/proc/cpuinfo"
        return

    sockets = to_int(ls.get("Socket(s)"))
    per_socket = to_int(ls.get("Core(s) per socket"))
    tpc = to_int(ls.get("Thread(s) per core"))
    if sockets and per_socket and tpc and sockets * per_socket * tpc == len(online):
        ncores = sockets * per_socket
        info.cpus = [
            LogicalCpu(cpu=c, core=(i % ncores) % per_socket, socket=(i % ncores) // per_socket)
            for i, c in enumerate(online)
        ]
        info.sources["topology"] = "lscpu (CPU numbering assumed: siblings after all cores)"
        return

    info.cpus = [LogicalCpu(cpu=c, core=c, socket=0) for c in online]
    info.sources["topology"] = "assumed: one socket, one core per logical CPU"
    info.unknown.append("topology (sockets, cores, threads per core)")


def read_numa(info: MachineInfo, r: Path, ls: dict[str, str]) -> None:
    """Set ``info.numa`` (node -> CPUs) and the node of each CPU in ``info.cpus``."""
    numa: dict[int, list[int]] = {}
    for d in sorted(glob.glob(str(r / "sys/devices/system/node/node[0-9]*"))):
        text = read_text(Path(d) / "cpulist")
        if text is not None:
            numa[int(Path(d).name[4:])] = parse_cpulist(text)
    if numa:
        info.sources["numa"] = "sysfs"
    else:
        for key, value in ls.items():
            m = re.fullmatch(r"NUMA node(\d+) CPU\(s\)", key)
            if m:
                numa[int(m.group(1))] = parse_cpulist(value) if value else []
        if numa:
            info.sources["numa"] = "lscpu"
        else:
            numa = {0: [c.cpu for c in info.cpus]}
            info.sources["numa"] = "assumed one node"
            info.unknown.append("NUMA nodes")
    info.numa = numa
    node_of = {cpu: n for n, cpus in numa.items() for cpu in cpus}
    info.cpus = [LogicalCpu(c.cpu, c.core, c.socket, node_of.get(c.cpu)) for c in info.cpus]


def size_bytes(text: str) -> int | None:
    """A size such as ``48K``, ``2 MiB`` or ``105 MiB`` in bytes (binary units), None if unparsable."""
    m = re.match(r"\s*([\d.]+)\s*([KMG]?)(i?B)?", text)
    if not m:
        return None
    mult = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[m.group(2)]
    return int(float(m.group(1)) * mult)


def read_caches(r: Path, info: MachineInfo) -> list[CacheInfo]:
    """The cache levels sysfs reports for the first online CPU, with their instance counts."""
    cpu_dir = r / "sys/devices/system/cpu"
    first = info.cpus[0].cpu if info.cpus else 0
    caches: list[CacheInfo] = []
    for d in sorted(glob.glob(str(cpu_dir / f"cpu{first}/cache/index[0-9]*"))):
        p = Path(d)
        level, kind, size = to_int(read_text(p / "level")), read_text(p / "type"), read_text(p / "size")
        shared = read_text(p / "shared_cpu_list")
        if level is None or kind is None or size is None:
            continue
        size_b = size_bytes(size)
        if size_b is None:
            continue
        sharers = parse_cpulist(shared) if shared else [first]
        # Count instances from every CPU's view when the tree has them, else estimate.
        views = set()
        for c in info.cpus:
            text = read_text(cpu_dir / f"cpu{c.cpu}/cache/{p.name}/shared_cpu_list")
            if text:
                views.add(text.strip())
        instances = len(views) if len(views) > 1 or len(info.cpus) == len(sharers) else None
        if instances is None:
            instances = max(1, len(info.cpus) // max(1, len(sharers)))
        caches.append(CacheInfo(level, kind.strip(), size_b, len(sharers), instances))
    return caches


def lscpu_caches(ls: dict[str, str], ncpus: int) -> list[CacheInfo]:
    """The cache levels from lscpu's ``L1d cache: 48 KiB (2 instances)`` lines (when sysfs has none)."""
    caches: list[CacheInfo] = []
    for name, level, kind in (
        ("L1d", 1, "Data"),
        ("L1i", 1, "Instruction"),
        ("L2", 2, "Unified"),
        ("L3", 3, "Unified"),
    ):
        value = ls.get(f"{name} cache")
        if not value:
            continue
        m = re.match(r"([\d.]+\s*[KMG]i?B)(?:\s*\((\d+) instances?\))?", value)
        if not m:
            continue
        total = size_bytes(m.group(1)) or 0
        inst = int(m.group(2)) if m.group(2) else 1
        caches.append(CacheInfo(level, kind, total // inst, max(1, ncpus // inst), inst))
    return caches
