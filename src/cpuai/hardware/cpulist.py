"""Kernel CPU lists (``0-3,8-11``): the form /sys, cgroups, numactl and taskset read and write."""

from __future__ import annotations

from collections.abc import Sequence


def parse_cpulist(text: str) -> list[int]:
    """Parse a kernel CPU list such as ``0-3,8-11`` or ``0,2`` into sorted CPU ids."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            cpus.update(range(int(lo), int(hi) + 1))
        else:
            cpus.add(int(part))
    return sorted(cpus)


def format_cpulist(cpus: Sequence[int]) -> str:
    """Format CPU ids as a compact kernel CPU list (``0-3,8``), the form numactl and taskset take."""
    ids = sorted(set(cpus))
    parts: list[str] = []
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        parts.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    return ",".join(parts)
