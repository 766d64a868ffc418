"""Reader for memory: total and available from /proc/meminfo, and a cgroup memory limit."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from cpuai.hardware.sources import read_text

if TYPE_CHECKING:
    from cpuai.hardware.machine import MachineInfo


def read_memory(info: MachineInfo, r: Path) -> None:
    """Set the memory fields of ``info``; a cgroup limit counts only when below the total."""
    text = read_text(r / "proc/meminfo") or ""
    total = re.search(r"^MemTotal:\s*(\d+) kB", text, re.M)
    avail = re.search(r"^MemAvailable:\s*(\d+) kB", text, re.M)
    info.memory_bytes = int(total.group(1)) * 1024 if total else None
    info.memory_available_bytes = int(avail.group(1)) * 1024 if avail else None
    if info.memory_bytes is None:
        info.unknown.append("memory")
    cg = r / "sys/fs/cgroup"
    for f in (cg / "memory.max", cg / "memory" / "memory.limit_in_bytes"):
        value = (read_text(f) or "").strip()
        if value.isdigit() and (info.memory_bytes is None or int(value) < info.memory_bytes):
            info.memory_limit_bytes = int(value)
            break
