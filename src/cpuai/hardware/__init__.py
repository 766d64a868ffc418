"""CPU topology and ISA probe, and the runtime environment it recommends.

``usable_cpus()`` and ``core_budget()`` are what every engine, server worker and launcher uses to
size its thread pools so that nothing oversubscribes the cores this process may use.

``probe(root="/")`` reads the machine from ``/proc``, ``/sys`` and ``lscpu`` (every path is taken
under ``root``, so tests feed recorded trees of other machines) and returns a ``MachineInfo``:
topology, caches, memory, ISA features, cgroup limits, allocators, engine versions, and from those
the accelerated precisions, the recommended environment per goal and warnings. Whatever could not
be read is listed in ``MachineInfo.unknown`` instead of being guessed silently.

The modules, and what each holds:

- ``limits``: ``usable_cpus``, ``cgroup_cpu_quota``, ``core_budget`` (the thread-budget contract)
- ``cpulist``: parse and format kernel CPU lists (``0-3,8``)
- ``machine``: ``LogicalCpu``, ``CacheInfo``, ``MachineInfo`` and the facts derived from them
- ``isa``: the ISA features that matter, accelerated precisions, the kernel's AMX permission
- ``recommendations``: ``Recommendation``, ``thread_env`` and the per-goal instance core lists
- ``performance_warnings``: what on the machine costs performance, and what to do about it
- ``machine_probe``: ``probe`` and ``current``, which run the readers below
- ``sources``, ``topology``, ``memory``, ``power``, ``installed``: the readers of /proc, /sys,
  lscpu, cgroups and installed software (engine versions, allocators)

Import from ``cpuai.hardware``; a test that patches a reader patches it in the module that calls
it (e.g. ``cpuai.hardware.machine_probe.engine_versions``).
"""

from __future__ import annotations

from cpuai.hardware.cpulist import format_cpulist, parse_cpulist
from cpuai.hardware.installed import ALLOCATORS, ENGINE_DISTRIBUTIONS, engine_versions, find_allocator
from cpuai.hardware.isa import ISA_FEATURES
from cpuai.hardware.limits import cgroup_cpu_quota, core_budget, usable_cpus
from cpuai.hardware.machine import CacheInfo, LogicalCpu, MachineInfo
from cpuai.hardware.machine_probe import current, probe
from cpuai.hardware.recommendations import Goal, Recommendation, thread_env

__all__ = [
    "ALLOCATORS",
    "ENGINE_DISTRIBUTIONS",
    "ISA_FEATURES",
    "CacheInfo",
    "Goal",
    "LogicalCpu",
    "MachineInfo",
    "Recommendation",
    "cgroup_cpu_quota",
    "core_budget",
    "current",
    "engine_versions",
    "find_allocator",
    "format_cpulist",
    "parse_cpulist",
    "probe",
    "thread_env",
    "usable_cpus",
]
