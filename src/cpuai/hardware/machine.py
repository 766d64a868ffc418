"""The machine model: logical CPUs, caches, and ``MachineInfo`` with the facts derived from them.

``MachineInfo`` holds what ``probe`` read (topology, NUMA, caches, memory, ISA flags, limits,
installed software) and derives what the rest of cpuai uses: physical cores grouped by NUMA node,
the thread budget, the ISA facts of ``cpuai.hardware.isa``, the recommendations of
``cpuai.hardware.recommendations``, the warnings of ``cpuai.hardware.performance_warnings``, and
the plain data of ``summary()`` / ``to_dict()``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cpuai.hardware import performance_warnings, recommendations
from cpuai.hardware.isa import (
    amx_usable,
    bf16_available,
    int8_dot_available,
    precision_units,
    present_features,
    widest_vector_isa,
)
from cpuai.hardware.recommendations import Goal, Recommendation


@dataclass(frozen=True)
class LogicalCpu:
    """One online logical CPU and where it sits: physical core (within its socket), socket, NUMA node."""

    cpu: int
    core: int
    socket: int
    node: int | None = None


@dataclass(frozen=True)
class CacheInfo:
    """One cache level as seen from CPU 0: size of one instance and how many logical CPUs share it."""

    level: int
    kind: str  # Data, Instruction, Unified
    size_bytes: int
    shared_by: int
    instances: int | None = None

    @property
    def name(self) -> str:
        """lscpu's name for it: L1d, L1i, L2, L3."""
        suffix = {"Data": "d", "Instruction": "i"}.get(self.kind, "")
        return f"L{self.level}{suffix}"


@dataclass
class MachineInfo:
    """What ``probe`` read about a machine, and the facts derived from it.

    Fields hold raw readings (``None`` or empty when unreadable, named in ``unknown``); properties
    derive what other modules use: ``physical_cores``, ``has_int8_dot``, ``accelerated_precisions``,
    ``recommend(goal)``, ``warnings``, ``summary()``.
    """

    vendor: str | None = None
    model_name: str | None = None
    family: int | None = None
    model: int | None = None
    stepping: int | None = None
    architecture: str | None = None
    hypervisor: str | None = None
    cpus: list[LogicalCpu] = field(default_factory=list)
    numa: dict[int, list[int]] = field(default_factory=dict)
    caches: list[CacheInfo] = field(default_factory=list)
    memory_bytes: int | None = None
    memory_available_bytes: int | None = None
    memory_limit_bytes: int | None = None
    flags: frozenset[str] = frozenset()
    amx_os_enabled: bool | None = None
    governors: list[str] | None = None
    cpuidle_driver: str | None = None
    cstates: list[str] | None = None
    cpu_quota: float | None = None
    cgroup_cpuset: list[int] | None = None
    usable: list[int] = field(default_factory=list)
    allocators: dict[str, str | None] = field(default_factory=dict)
    numactl: str | None = None
    engines: dict[str, str | None] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)

    # ---- topology -------------------------------------------------------------------------

    @property
    def logical_cpus(self) -> int:
        """Online logical CPUs of the machine (hyper-threads counted)."""
        return len(self.cpus)

    @property
    def sockets(self) -> int:
        """Number of CPU packages."""
        return len({c.socket for c in self.cpus}) or 1

    @property
    def physical_cores(self) -> int:
        """Physical cores of the whole machine (hyper-threads not counted)."""
        return len({(c.socket, c.core) for c in self.cpus}) or 1

    @property
    def threads_per_core(self) -> int:
        """Hardware threads per physical core (1 without SMT/hyper-threading)."""
        counts: dict[tuple[int, int], int] = {}
        for c in self.cpus:
            counts[(c.socket, c.core)] = counts.get((c.socket, c.core), 0) + 1
        return max(counts.values(), default=1)

    @property
    def numa_nodes(self) -> int:
        """Number of NUMA nodes that have CPUs."""
        return len([n for n, cpus in self.numa.items() if cpus]) or 1

    def cores(self, cpus: Sequence[int] | None = None) -> list[list[int]]:
        """Physical cores among ``cpus`` (default: the usable ones), each as its logical CPUs.

        Ordered by NUMA node, socket and core, so that consecutive cores are close together;
        the first CPU of each entry is the one to pin a thread to.
        """
        allowed = set(self.usable if cpus is None else cpus)
        groups: dict[tuple[int, int], list[LogicalCpu]] = {}
        for c in self.cpus:
            if c.cpu in allowed:
                groups.setdefault((c.socket, c.core), []).append(c)
        ordered = sorted(
            groups.values(),
            key=lambda g: (g[0].node if g[0].node is not None else -1, g[0].socket, min(x.cpu for x in g)),
        )
        return [sorted(x.cpu for x in g) for g in ordered]

    def node_of(self, cpu: int) -> int | None:
        """NUMA node of a logical CPU, or None when unknown."""
        for n, cpus in self.numa.items():
            if cpu in cpus:
                return n
        return None

    @property
    def usable_physical_cores(self) -> int:
        """Physical cores this process may run on."""
        return len(self.cores())

    @property
    def thread_budget(self) -> int:
        """Compute threads to use in total: usable physical cores, capped by the cgroup quota."""
        n = self.usable_physical_cores
        if self.cpu_quota is not None:
            n = min(n, max(1, math.floor(self.cpu_quota)))
        return max(1, n)

    # ---- ISA (cpuai.hardware.isa) -----------------------------------------------------------

    @property
    def isa(self) -> dict[str, bool]:
        """The ISA features that matter, by display name, present or not."""
        return present_features(self.flags)

    @property
    def vector_isa(self) -> str:
        """Widest vector ISA: AVX-512, AVX2, AVX or SSE (unknown when no flags were read)."""
        return widest_vector_isa(self.flags)

    @property
    def has_avx512(self) -> bool:
        """AVX-512 F, BW and VL (what oneDNN and ONNX Runtime need for their AVX-512 kernels)."""
        return self.vector_isa == "AVX-512"

    @property
    def has_amx(self) -> bool:
        """AMX tiles with INT8 or BF16, and the kernel does not refuse AMX state to this process."""
        return amx_usable(self.flags, self.amx_os_enabled)

    @property
    def has_int8_dot(self) -> bool:
        """INT8 dot-product instructions (AVX512-VNNI, AVX-VNNI or AMX-INT8): INT8 beats FP32 here."""
        return int8_dot_available(self.flags, self.amx_os_enabled)

    @property
    def has_bf16(self) -> bool:
        """BF16 arithmetic in hardware (AVX512-BF16 or AMX-BF16)."""
        return bf16_available(self.flags, self.amx_os_enabled)

    @property
    def accelerated_precisions(self) -> dict[str, str]:
        """Precisions faster than FP32 here and the unit that does it, e.g. {"int8": "AVX512-VNNI"}."""
        return precision_units(self.flags, self.amx_os_enabled)

    # ---- advice (cpuai.hardware.recommendations, cpuai.hardware.performance_warnings) -------

    def instance_cores(
        self,
        goal: Goal = "latency",
        cpus: Sequence[int] | None = None,
    ) -> list[list[int]]:
        """Default per-instance CPU lists (one CPU per physical core) for a goal.

        latency: one instance on the physical cores of one NUMA node (the largest usable one);
        throughput: one instance per NUMA node, or on a single node one per core (groups of four
        cores from eight cores up). Both stay within the cgroup quota.
        """
        return recommendations.instance_cores(self, goal, cpus)

    def recommend(self, goal: Goal = "latency") -> Recommendation:
        """The recommended environment for ``goal``: instance core lists and thread variables."""
        return recommendations.recommend(self, goal)

    @property
    def warnings(self) -> list[str]:
        """Things on this machine that cost performance, each with what to do about it."""
        return performance_warnings.machine_warnings(self)

    # ---- output ---------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """A short description for benchmark reports: model, topology, ISA, limits, engine versions."""
        return {
            "model": self.model_name,
            "vendor": self.vendor,
            "hypervisor": self.hypervisor,
            "sockets": self.sockets,
            "physical_cores": self.physical_cores,
            "threads_per_core": self.threads_per_core,
            "logical_cpus": self.logical_cpus,
            "numa_nodes": self.numa_nodes,
            "isa": [name for name, present in self.isa.items() if present],
            "amx_os_enabled": self.amx_os_enabled,
            "accelerated_precisions": self.accelerated_precisions,
            "usable_cpus": list(self.usable),
            "cpu_quota": self.cpu_quota,
            "thread_budget": self.thread_budget,
            "engines": {k: v for k, v in self.engines.items() if v is not None},
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything ``cpuai doctor --json`` prints: the readings, derived facts, advice, unknowns."""
        return {
            **self.summary(),
            "family": self.family,
            "cpu_model": self.model,
            "stepping": self.stepping,
            "architecture": self.architecture,
            "vector_isa": self.vector_isa,
            "isa_flags": self.isa,
            "has_avx512": self.has_avx512,
            "has_int8_dot": self.has_int8_dot,
            "has_bf16": self.has_bf16,
            "has_amx": self.has_amx,
            "numa": {str(n): cpus for n, cpus in sorted(self.numa.items())},
            "cores": self.cores(),
            "usable_physical_cores": self.usable_physical_cores,
            "caches": [
                {
                    "name": c.name,
                    "size_bytes": c.size_bytes,
                    "shared_by": c.shared_by,
                    "instances": c.instances,
                }
                for c in self.caches
            ],
            "memory_bytes": self.memory_bytes,
            "memory_available_bytes": self.memory_available_bytes,
            "memory_limit_bytes": self.memory_limit_bytes,
            "governors": self.governors,
            "cpuidle_driver": self.cpuidle_driver,
            "cstates": self.cstates,
            "cgroup_cpuset": self.cgroup_cpuset,
            "allocators": self.allocators,
            "numactl": self.numactl,
            "engines": self.engines,
            "recommendations": {g: self.recommend(g).to_dict() for g in ("latency", "throughput")},
            "warnings": self.warnings,
            "unknown": self.unknown,
            "sources": self.sources,
        }
