"""CPU topology and ISA probe, and the runtime environment it recommends.

``usable_cpus()`` and ``core_budget()`` are what every engine, server worker and launcher uses to
size its thread pools so that nothing oversubscribes the cores this process may use.

``probe(root="/")`` reads the machine from ``/proc``, ``/sys`` and ``lscpu`` (every path is taken
under ``root``, so tests feed recorded trees of other machines) and returns a ``MachineInfo``:
topology, caches, memory, ISA features, cgroup limits, allocators, engine versions, and from those
the accelerated precisions, the recommended environment per goal and warnings. Whatever could not
be read is listed in ``MachineInfo.unknown`` instead of being guessed silently.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import importlib.metadata
import math
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Goal = Literal["latency", "throughput"]

# ISA features that matter for inference, as (display name, /proc/cpuinfo flag).
ISA_FEATURES: tuple[tuple[str, str], ...] = (
    ("AVX2", "avx2"),
    ("FMA", "fma"),
    ("AVX512F", "avx512f"),
    ("AVX512BW", "avx512bw"),
    ("AVX512VL", "avx512vl"),
    ("AVX512-VNNI", "avx512_vnni"),
    ("AVX-VNNI", "avx_vnni"),
    ("AVX512-BF16", "avx512_bf16"),
    ("AVX512-FP16", "avx512_fp16"),
    ("AMX-TILE", "amx_tile"),
    ("AMX-INT8", "amx_int8"),
    ("AMX-BF16", "amx_bf16"),
    ("AMX-FP16", "amx_fp16"),
)

# Engines whose versions matter for performance; read with importlib.metadata (never imported).
ENGINE_DISTRIBUTIONS: tuple[str, ...] = (
    "onnxruntime",
    "openvino",
    "torch",
    "faiss-cpu",
    "scikit-learn-intelex",
    "scikit-learn",
    "nncf",
    "numpy",
)

# Allocators the launcher can preload: name -> (shared object names, Debian package).
ALLOCATORS: dict[str, tuple[tuple[str, ...], str]] = {
    "jemalloc": (("libjemalloc.so.2", "libjemalloc.so"), "libjemalloc2"),
    "tcmalloc": (("libtcmalloc.so.4", "libtcmalloc_minimal.so.4", "libtcmalloc.so"), "libgoogle-perftools4"),
}

_LIB_DIRS = (
    "usr/lib/x86_64-linux-gnu",
    "usr/lib/aarch64-linux-gnu",
    "lib/x86_64-linux-gnu",
    "usr/lib64",
    "usr/lib",
    "usr/local/lib",
    "lib64",
    "lib",
)


# --------------------------------------------------------------------------------------------
# The contract kept from the foundation: usable CPUs, cgroup quota, total thread budget.
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Facts
# --------------------------------------------------------------------------------------------


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

    # ---- ISA ------------------------------------------------------------------------------

    @property
    def isa(self) -> dict[str, bool]:
        """The ISA features that matter, by display name, present or not."""
        return {name: flag in self.flags for name, flag in ISA_FEATURES}

    @property
    def vector_isa(self) -> str:
        """Widest vector ISA: AVX-512, AVX2, AVX or SSE (unknown when no flags were read)."""
        if not self.flags:
            return "unknown"
        if {"avx512f", "avx512bw", "avx512vl"} <= self.flags:
            return "AVX-512"
        if "avx2" in self.flags:
            return "AVX2"
        return "AVX" if "avx" in self.flags else "SSE"

    @property
    def has_avx512(self) -> bool:
        """AVX-512 F, BW and VL (what oneDNN and ONNX Runtime need for their AVX-512 kernels)."""
        return self.vector_isa == "AVX-512"

    @property
    def has_amx(self) -> bool:
        """AMX tiles with INT8 or BF16, and the kernel does not refuse AMX state to this process."""
        return (
            "amx_tile" in self.flags
            and bool({"amx_int8", "amx_bf16"} & self.flags)
            and self.amx_os_enabled is not False
        )

    @property
    def has_int8_dot(self) -> bool:
        """INT8 dot-product instructions (AVX512-VNNI, AVX-VNNI or AMX-INT8): INT8 beats FP32 here."""
        amx_int8 = self.has_amx and "amx_int8" in self.flags
        return amx_int8 or bool({"avx512_vnni", "avx_vnni"} & self.flags)

    @property
    def has_bf16(self) -> bool:
        """BF16 arithmetic in hardware (AVX512-BF16 or AMX-BF16)."""
        return "avx512_bf16" in self.flags or (self.has_amx and "amx_bf16" in self.flags)

    @property
    def accelerated_precisions(self) -> dict[str, str]:
        """Precisions faster than FP32 here and the unit that does it, e.g. {"int8": "AVX512-VNNI"}."""
        out: dict[str, str] = {}
        if self.has_amx and "amx_int8" in self.flags:
            out["int8"] = "AMX-INT8"
        elif "avx512_vnni" in self.flags:
            out["int8"] = "AVX512-VNNI"
        elif "avx_vnni" in self.flags:
            out["int8"] = "AVX-VNNI"
        if self.has_amx and "amx_bf16" in self.flags:
            out["bf16"] = "AMX-BF16"
        elif "avx512_bf16" in self.flags:
            out["bf16"] = "AVX512-BF16"
        if self.has_amx and "amx_fp16" in self.flags:
            out["fp16"] = "AMX-FP16"
        elif "avx512_fp16" in self.flags:
            out["fp16"] = "AVX512-FP16"
        return out

    # ---- recommendations ------------------------------------------------------------------

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
        cores = self.cores(cpus)
        if not cores:
            return []
        budget = self.thread_budget if cpus is None else len(cores)
        if self.cpu_quota is not None:
            budget = min(budget, max(1, math.floor(self.cpu_quota)))
        by_node: dict[int | None, list[int]] = {}
        for core in cores:
            by_node.setdefault(self.node_of(core[0]), []).append(core[0])
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

    def recommend(self, goal: Goal = "latency") -> Recommendation:
        """The recommended environment for ``goal``: instance core lists and thread variables."""
        instances = self.instance_cores(goal)
        threads = len(instances[0]) if instances else 1
        notes: list[str] = []
        if goal == "latency":
            notes.append(f"one instance, {threads} thread(s), one per physical core of one NUMA node")
        else:
            notes.append(f"{len(instances)} instance(s) of {threads} thread(s); run them with `cpuai launch`")
        if self.threads_per_core > 1:
            notes.append("hyper-threads left idle: one compute thread per physical core")
        if self.cpu_quota is not None:
            notes.append(f"capped by the cgroup quota of {self.cpu_quota:g} CPUs")
        return Recommendation(
            goal=goal,
            instances=instances,
            env=thread_env(threads),
            intra_op_threads=threads,
            inter_op_threads=1,
            notes=notes,
        )

    @property
    def warnings(self) -> list[str]:
        """Things on this machine that cost performance, each with what to do about it."""
        out: list[str] = []
        usable_logical = len(self.usable)
        usable_phys = self.usable_physical_cores
        if self.threads_per_core > 1 and usable_logical > usable_phys:
            out.append(
                f"hyper-threading: the {usable_logical} usable logical CPUs are only {usable_phys} physical "
                f"cores; size thread pools by physical cores ({usable_phys}), not os.cpu_count()"
            )
        omp = self.env.get("OMP_NUM_THREADS", "")
        if omp.isdigit() and int(omp) > self.thread_budget:
            out.append(
                f"OMP_NUM_THREADS={omp} exceeds the {self.thread_budget} cores this process should use; "
                f"set OMP_NUM_THREADS={self.thread_budget}"
            )
        if self.governors and any(g != "performance" for g in self.governors):
            out.append(
                f"frequency governor is {'/'.join(sorted(set(self.governors)))}, not performance; "
                "run `cpupower frequency-set -g performance` for stable timings"
            )
        if self.cpu_quota is not None and self.cpu_quota < usable_logical:
            out.append(
                f"cgroup CPU quota is {self.cpu_quota:g} CPUs but {usable_logical} CPUs are visible; "
                f"use {self.thread_budget} thread(s), more only adds throttling"
            )
        if self.numactl is None:
            scope = (
                f"memory of {self.numa_nodes} NUMA nodes is not bound to the instances"
                if self.numa_nodes > 1
                else "harmless on one NUMA node, needed for memory binding on multi-socket servers"
            )
            out.append(f"numactl not found: launch pins cores only ({scope}); apt-get install numactl")
        if "amx_tile" in self.flags and self.amx_os_enabled is False:
            out.append(
                "the CPU reports AMX but the kernel refuses AMX state to this process (needs Linux >= 5.16)"
            )
        if (
            self.memory_limit_bytes is not None
            and self.memory_bytes
            and self.memory_limit_bytes < self.memory_bytes
        ):
            out.append(
                f"cgroup memory limit is {_human_bytes(self.memory_limit_bytes)} "
                f"of {_human_bytes(self.memory_bytes)}"
            )
        return out

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


# --------------------------------------------------------------------------------------------
# Probe
# --------------------------------------------------------------------------------------------


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

    cpuinfo = _parse_cpuinfo(_read(r / "proc/cpuinfo"))
    lscpu_text = _lscpu_text(r, lscpu, live)
    ls = _parse_lscpu(lscpu_text) if lscpu_text else {}
    if not cpuinfo:
        info.unknown.append("/proc/cpuinfo")
    if not lscpu_text:
        info.unknown.append("lscpu output")

    first = cpuinfo[0] if cpuinfo else {}
    info.vendor = first.get("vendor_id") or ls.get("Vendor ID")
    info.model_name = first.get("model name") or ls.get("Model name")
    info.family = _int(first.get("cpu family") or ls.get("CPU family"))
    info.model = _int(first.get("model") or ls.get("Model"))
    info.stepping = _int(first.get("stepping") or ls.get("Stepping"))
    info.architecture = ls.get("Architecture") or info.architecture
    flag_text = first.get("flags") or ls.get("Flags") or ""
    info.flags = frozenset(flag_text.split())
    if not info.flags:
        info.unknown.append("ISA flags")
    info.hypervisor = ls.get("Hypervisor vendor") or (
        "unknown hypervisor" if "hypervisor" in info.flags else None
    )

    _read_topology(info, r, cpuinfo, ls)
    _read_numa(info, r, ls)
    info.caches = _read_caches(r, info) or _lscpu_caches(ls, len(info.cpus))
    if not info.caches:
        info.unknown.append("caches")
    _read_memory(info, r)
    _read_power(info, r)
    _read_cgroup(info, r)

    if usable is not None:
        info.usable = sorted(usable)
        info.sources["usable"] = "argument"
    elif live:
        info.usable = usable_cpus()
        info.sources["usable"] = "sched_getaffinity"
    else:
        status = _read(r / "proc/self/status") or ""
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
        info.amx_os_enabled = _amx_permitted() if "amx_tile" in info.flags else None
    if "amx_tile" in info.flags and info.amx_os_enabled is None:
        info.unknown.append("whether the kernel grants AMX state (arch_prctl)")

    info.allocators = {name: find_allocator(name, root=r) for name in ALLOCATORS}
    info.numactl = _which("numactl", r, live)
    info.engines = engine_versions()
    return info


@functools.cache
def current() -> MachineInfo:
    """The live machine, probed once per process (launch plans and bench reports share it)."""
    return probe("/")


def engine_versions() -> dict[str, str | None]:
    """Installed versions of the inference and ML engines (None when absent), without importing them."""
    out: dict[str, str | None] = {}
    for dist in ENGINE_DISTRIBUTIONS:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def find_allocator(name: str, root: str | Path = "/") -> str | None:
    """Path of the shared library for allocator ``name`` (jemalloc, tcmalloc), or None if absent."""
    libs, _package = ALLOCATORS[name]
    r = Path(root)
    dirs = [r / d for d in _LIB_DIRS]
    if r.resolve() == Path("/"):
        for var in ("CONDA_PREFIX", "VIRTUAL_ENV"):
            if os.environ.get(var):
                dirs.append(Path(os.environ[var]) / "lib")
    for d in dirs:
        for lib in libs:
            p = d / lib
            if p.exists():
                return _as_seen_on_machine(p, r)
    return None


def _as_seen_on_machine(path: Path, root: Path) -> str:
    """A path under a recorded tree as that machine sees it (``<root>/usr/bin/x`` -> ``/usr/bin/x``)."""
    try:
        return "/" + str(path.relative_to(root)) if root.resolve() != Path("/") else str(path)
    except ValueError:
        return str(path)


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


# ---- readers -------------------------------------------------------------------------------


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _int(text: str | None) -> int | None:
    try:
        return int(str(text).strip()) if text is not None else None
    except ValueError:
        return None


def _parse_cpuinfo(text: str | None) -> list[dict[str, str]]:
    if not text:
        return []
    blocks: list[dict[str, str]] = []
    for block in re.split(r"\n\s*\n", text.strip()):
        entry: dict[str, str] = {}
        for line in block.splitlines():
            if ":" in line:
                key, _, value = line.partition(":")
                entry[key.strip()] = value.strip()
        if entry:
            blocks.append(entry)
    return blocks


def _lscpu_text(root: Path, lscpu: str | Path | None, live: bool) -> str | None:
    if lscpu is not None:
        return _read(Path(lscpu))
    if not live:
        return _read(root / "lscpu.txt")
    exe = shutil.which("lscpu")
    if exe is None:
        return None
    try:
        done = subprocess.run(
            [exe], capture_output=True, text=True, timeout=10, env={**os.environ, "LC_ALL": "C"}, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _parse_lscpu(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _read_topology(info: MachineInfo, r: Path, cpuinfo: list[dict[str, str]], ls: dict[str, str]) -> None:
    cpu_dir = r / "sys/devices/system/cpu"
    online_text = _read(cpu_dir / "online")
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
        core = _int(_read(cpu_dir / f"cpu{cpu}/topology/core_id"))
        sock = _int(_read(cpu_dir / f"cpu{cpu}/topology/physical_package_id"))
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

    sockets = _int(ls.get("Socket(s)"))
    per_socket = _int(ls.get("Core(s) per socket"))
    tpc = _int(ls.get("Thread(s) per core"))
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


def _read_numa(info: MachineInfo, r: Path, ls: dict[str, str]) -> None:
    numa: dict[int, list[int]] = {}
    for d in sorted(glob.glob(str(r / "sys/devices/system/node/node[0-9]*"))):
        text = _read(Path(d) / "cpulist")
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


def _size_bytes(text: str) -> int | None:
    m = re.match(r"\s*([\d.]+)\s*([KMG]?)(i?B)?", text)
    if not m:
        return None
    mult = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[m.group(2)]
    return int(float(m.group(1)) * mult)


def _read_caches(r: Path, info: MachineInfo) -> list[CacheInfo]:
    cpu_dir = r / "sys/devices/system/cpu"
    first = info.cpus[0].cpu if info.cpus else 0
    caches: list[CacheInfo] = []
    for d in sorted(glob.glob(str(cpu_dir / f"cpu{first}/cache/index[0-9]*"))):
        p = Path(d)
        level, kind, size = _int(_read(p / "level")), _read(p / "type"), _read(p / "size")
        shared = _read(p / "shared_cpu_list")
        if level is None or kind is None or size is None:
            continue
        size_b = _size_bytes(size)
        if size_b is None:
            continue
        sharers = parse_cpulist(shared) if shared else [first]
        # Count instances from every CPU's view when the tree has them, else estimate.
        views = set()
        for c in info.cpus:
            text = _read(cpu_dir / f"cpu{c.cpu}/cache/{p.name}/shared_cpu_list")
            if text:
                views.add(text.strip())
        instances = len(views) if len(views) > 1 or len(info.cpus) == len(sharers) else None
        if instances is None:
            instances = max(1, len(info.cpus) // max(1, len(sharers)))
        caches.append(CacheInfo(level, kind.strip(), size_b, len(sharers), instances))
    return caches


def _lscpu_caches(ls: dict[str, str], ncpus: int) -> list[CacheInfo]:
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
        total = _size_bytes(m.group(1)) or 0
        inst = int(m.group(2)) if m.group(2) else 1
        caches.append(CacheInfo(level, kind, total // inst, max(1, ncpus // inst), inst))
    return caches


def _read_memory(info: MachineInfo, r: Path) -> None:
    text = _read(r / "proc/meminfo") or ""
    total = re.search(r"^MemTotal:\s*(\d+) kB", text, re.M)
    avail = re.search(r"^MemAvailable:\s*(\d+) kB", text, re.M)
    info.memory_bytes = int(total.group(1)) * 1024 if total else None
    info.memory_available_bytes = int(avail.group(1)) * 1024 if avail else None
    if info.memory_bytes is None:
        info.unknown.append("memory")
    cg = r / "sys/fs/cgroup"
    for f in (cg / "memory.max", cg / "memory" / "memory.limit_in_bytes"):
        value = (_read(f) or "").strip()
        if value.isdigit() and (info.memory_bytes is None or int(value) < info.memory_bytes):
            info.memory_limit_bytes = int(value)
            break


def _read_power(info: MachineInfo, r: Path) -> None:
    cpu_dir = r / "sys/devices/system/cpu"
    files = sorted(glob.glob(str(cpu_dir / "cpufreq/policy*/scaling_governor"))) or sorted(
        glob.glob(str(cpu_dir / "cpu[0-9]*/cpufreq/scaling_governor"))
    )
    govs = [g.strip() for g in (_read(Path(f)) for f in files) if g]
    info.governors = sorted(set(govs)) or None
    if info.governors is None:
        info.unknown.append("frequency governor (no cpufreq in /sys: VM or container)")
    driver = (_read(cpu_dir / "cpuidle/current_driver") or "").strip()
    info.cpuidle_driver = driver or None
    first = info.cpus[0].cpu if info.cpus else 0
    states = [
        (_read(Path(d) / "name") or "").strip()
        for d in sorted(glob.glob(str(cpu_dir / f"cpu{first}/cpuidle/state[0-9]*")))
    ]
    info.cstates = [s for s in states if s] or None
    if info.cstates is None:
        info.unknown.append(f"C-states (cpuidle driver: {driver or 'unreadable'})")


def _read_cgroup(info: MachineInfo, r: Path) -> None:
    cg = r / "sys/fs/cgroup"
    info.cpu_quota = cgroup_cpu_quota(cg)
    for f in (
        cg / "cpuset.cpus.effective",
        cg / "cpuset" / "cpuset.effective_cpus",
        cg / "cpuset" / "cpuset.cpus",
    ):
        text = (_read(f) or "").strip()
        if text:
            info.cgroup_cpuset = parse_cpulist(text)
            break


def _which(name: str, r: Path, live: bool) -> str | None:
    if live:
        return shutil.which(name)
    for d in ("usr/bin", "bin", "usr/local/bin", "usr/sbin"):
        if (r / d / name).exists():
            return _as_seen_on_machine(r / d / name, r)
    return None


def _amx_permitted() -> bool | None:
    """Ask the kernel for AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM), as oneDNN does; None if unknown."""
    if platform.machine() != "x86_64":
        return None
    sys_arch_prctl, arch_get_xcomp_supp, arch_req_xcomp_perm, xtiledata = 158, 0x1021, 0x1023, 18
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        mask = ctypes.c_uint64(0)
        if libc.syscall(sys_arch_prctl, arch_get_xcomp_supp, ctypes.byref(mask)) != 0:
            return False if ctypes.get_errno() == 22 else None  # EINVAL: kernel without AMX support
        if not mask.value & (1 << xtiledata):
            return False
        return libc.syscall(sys_arch_prctl, arch_req_xcomp_perm, ctypes.c_ulong(xtiledata)) == 0
    except (OSError, AttributeError):
        return None


def _human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n = n / 1024  # type: ignore[assignment]
    return f"{n} B"
