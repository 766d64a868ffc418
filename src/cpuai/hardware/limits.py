"""The CPUs this process may use and how many threads compute may take.

``usable_cpus()`` (the affinity mask, i.e. the container's cpuset), ``cgroup_cpu_quota()`` and
``core_budget()`` are the contract every engine, server worker and launcher sizes its thread pools
from, so that nothing oversubscribes the cores this process may use. ``read_cgroup`` records the
same cgroup limits (quota and cpuset) on a probed ``MachineInfo``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from cpuai.hardware.cpulist import parse_cpulist
from cpuai.hardware.sources import read_text

if TYPE_CHECKING:
    from cpuai.hardware.machine import MachineInfo


def usable_cpus() -> list[int]:
    """Logical CPUs this process may run on (its affinity mask, i.e. the container's cpuset)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return list(range(os.cpu_count() or 1))


def cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs granted by a cgroup quota (v2 ``cpu.max`` or v1 cfs files), or None when unlimited."""
    v2 = root / "cpu.max"
    try:
        if v2.exists():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        q, p = root / "cpu" / "cpu.cfs_quota_us", root / "cpu" / "cpu.cfs_period_us"
        if q.exists() and p.exists():
            quota_us = int(q.read_text())
            return None if quota_us <= 0 else quota_us / int(p.read_text())
    except (OSError, ValueError):
        return None
    return None


def core_budget() -> int:
    """How many threads compute work may use in total: usable CPUs, capped by a cgroup quota.

    ``CPUAI_CORES`` overrides it (e.g. a launcher instance given two cores sets it to 2).
    """
    env = os.environ.get("CPUAI_CORES")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    n = len(usable_cpus())
    quota = cgroup_cpu_quota()
    if quota is not None:
        n = min(n, max(1, math.floor(quota)))
    return max(1, n)


def read_cgroup(info: MachineInfo, r: Path) -> None:
    """Record the cgroup CPU quota and cpuset of the machine under ``r`` on ``info``."""
    cg = r / "sys/fs/cgroup"
    info.cpu_quota = cgroup_cpu_quota(cg)
    for f in (
        cg / "cpuset.cpus.effective",
        cg / "cpuset" / "cpuset.effective_cpus",
        cg / "cpuset" / "cpuset.cpus",
    ):
        text = (read_text(f) or "").strip()
        if text:
            info.cgroup_cpuset = parse_cpulist(text)
            break
