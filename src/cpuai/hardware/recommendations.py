"""The environment recommended per goal: instance core lists and thread variables.

``instance_cores`` splits the usable physical cores into per-instance CPU lists (latency: one
instance on one NUMA node; throughput: one per node, or per core / group of four on one node),
``recommend`` turns them into a ``Recommendation`` with ``thread_env`` variables. ``cpuai doctor``
prints them and ``cpuai launch`` runs them; ``MachineInfo.instance_cores`` and
``MachineInfo.recommend`` call these.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from cpuai.hardware.machine import MachineInfo

Goal = Literal["latency", "throughput"]


@dataclass(frozen=True)
class Recommendation:
    """The environment recommended for one goal: per-instance core lists and thread variables."""

    goal: str
    instances: list[list[int]]
    env: dict[str, str]
    intra_op_threads: int
    inter_op_threads: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "goal": self.goal,
            "ninstances": len(self.instances),
            "instances": [{"index": i, "cpus": cpus} for i, cpus in enumerate(self.instances)],
            "env": self.env,
            "intra_op_threads": self.intra_op_threads,
            "inter_op_threads": self.inter_op_threads,
            "notes": self.notes,
        }


def thread_env(threads: int) -> dict[str, str]:
    """OpenMP / oneDNN / MKL thread variables for an instance given ``threads`` physical cores.

    KMP_* are read by Intel OpenMP (OpenVINO, sklearnex, Intel builds of torch); GNU OpenMP ignores
    them and follows the affinity mask the launcher sets.
    """
    n = str(max(1, threads))
    return {
        "OMP_NUM_THREADS": n,
        "MKL_NUM_THREADS": n,
        "CPUAI_CORES": n,
        "KMP_AFFINITY": "granularity=fine,compact,1,0",
        "KMP_BLOCKTIME": "1",
    }


def instance_cores(
    info: MachineInfo,
    goal: Goal = "latency",
    cpus: Sequence[int] | None = None,
) -> list[list[int]]:
    """Default per-instance CPU lists (one CPU per physical core) for a goal.

    latency: one instance on the physical cores of one NUMA node (the largest usable one);
    throughput: one instance per NUMA node, or on a single node one per core (groups of four
    cores from eight cores up). Both stay within the cgroup quota.
    """
    cores = info.cores(cpus)
    if not cores:
        return []
    budget = info.thread_budget if cpus is None else len(cores)
    if info.cpu_quota is not None:
        budget = min(budget, max(1, math.floor(info.cpu_quota)))
    by_node: dict[int | None, list[int]] = {}
    for core in cores:
        by_node.setdefault(info.node_of(core[0]), []).append(core[0])
    if goal == "latency":
        best = max(by_node.values(), key=len)
        return [best[:budget]]
    if goal != "throughput":
        raise ValueError(f"goal must be 'latency' or 'throughput', got {goal!r}")
    if len(by_node) > 1 and budget >= len(cores):
        return [node_cpus for node_cpus in by_node.values()]
    pool = [c[0] for c in cores][:budget]
    group = 4 if len(pool) >= 8 else 1
    return [pool[i : i + group] for i in range(0, len(pool) - group + 1, group)]


def recommend(info: MachineInfo, goal: Goal = "latency") -> Recommendation:
    """The recommended environment for ``goal``: instance core lists and thread variables."""
    instances = info.instance_cores(goal)
    threads = len(instances[0]) if instances else 1
    notes: list[str] = []
    if goal == "latency":
        notes.append(f"one instance, {threads} thread(s), one per physical core of one NUMA node")
    else:
        notes.append(f"{len(instances)} instance(s) of {threads} thread(s); run them with `cpuai launch`")
    if info.threads_per_core > 1:
        notes.append("hyper-threads left idle: one compute thread per physical core")
    if info.cpu_quota is not None:
        notes.append(f"capped by the cgroup quota of {info.cpu_quota:g} CPUs")
    return Recommendation(
        goal=goal,
        instances=instances,
        env=thread_env(threads),
        intra_op_threads=threads,
        inter_op_threads=1,
        notes=notes,
    )
