"""Reader for power management: the cpufreq governors and the C-states of cpuidle.

Both are often missing in VMs and containers; then they are named in ``MachineInfo.unknown``
rather than guessed.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import TYPE_CHECKING

from cpuai.hardware.sources import read_text

if TYPE_CHECKING:
    from cpuai.hardware.machine import MachineInfo


def read_power(info: MachineInfo, r: Path) -> None:
    """Set ``info.governors``, ``info.cpuidle_driver`` and ``info.cstates`` (first online CPU)."""
    cpu_dir = r / "sys/devices/system/cpu"
    files = sorted(glob.glob(str(cpu_dir / "cpufreq/policy*/scaling_governor"))) or sorted(
        glob.glob(str(cpu_dir / "cpu[0-9]*/cpufreq/scaling_governor"))
    )
    govs = [g.strip() for g in (read_text(Path(f)) for f in files) if g]
    info.governors = sorted(set(govs)) or None
    if info.governors is None:
        info.unknown.append("frequency governor (no cpufreq in /sys: VM or container)")
    driver = (read_text(cpu_dir / "cpuidle/current_driver") or "").strip()
    info.cpuidle_driver = driver or None
    first = info.cpus[0].cpu if info.cpus else 0
    states = [
        (read_text(Path(d) / "name") or "").strip()
        for d in sorted(glob.glob(str(cpu_dir / f"cpu{first}/cpuidle/state[0-9]*")))
    ]
    info.cstates = [s for s in states if s] or None
    if info.cstates is None:
        info.unknown.append(f"C-states (cpuidle driver: {driver or 'unreadable'})")
