"""Multi-instance launcher: split the usable physical cores, pin each instance, preload an allocator.

The equivalent of PyTorch's ``torch.backends.xeon.run_cpu`` for any command. ``plan(...)`` turns
the machine's topology and the request (instances, cores per instance, NUMA node, goal) into one
``InstancePlan`` per instance — disjoint CPU lists with the thread variables that fit them — and
``run(plans, command)`` starts them:

1. each instance gets its environment (``OMP_NUM_THREADS``, ``CPUAI_CORES``, ``KMP_*``,
   ``CPUAI_INSTANCE``...) and, when asked, ``LD_PRELOAD`` of jemalloc or tcmalloc;
2. it is pinned to its CPUs (``sched_setaffinity`` before exec; ``numactl`` adds memory binding
   when installed) and started in its own process group;
3. its output lines are prefixed with ``[i] `` (and copied to ``<log_dir>/instance_<i>.log``);
4. SIGINT/SIGTERM received by the launcher are forwarded to every instance;
5. ``run`` returns 0 only when every instance exited 0.

Data-parallel training uses ``plan`` alone: one worker per plan entry, each pinning itself with
``os.sched_setaffinity(0, p.cpus)`` and applying ``p.env``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

from cpuai import hardware
from cpuai.errors import ConfigError, CpuaiError, DependencyError, ResourceError

log = logging.getLogger(__name__)

Mode = Literal["latency", "throughput"]
ALLOCATOR_CHOICES = ("default", *hardware.ALLOCATORS)

# jemalloc settings that suit long-running inference (the ones PyTorch's launcher uses).
JEMALLOC_CONF = (
    "oversize_threshold:1,background_thread:true,metadata_thp:auto,dirty_decay_ms:-1,muzzy_decay_ms:-1"
)


class InstanceFailed(CpuaiError):
    """At least one launched instance exited non-zero; the launcher exits with that instance's code."""

    def __init__(self, code: int, ninstances: int) -> None:
        super().__init__(
            f"launch of {ninstances} instance(s) failed with exit code {code}",
            fix="the [launch] line above names the instance; read its output (lines [i]) or --log-dir",
        )
        self.exit_code = code


@dataclass(frozen=True)
class InstancePlan:
    """One instance: its index, the logical CPUs it is pinned to (one per physical core), its env."""

    index: int
    cpus: list[int]
    env: dict[str, str]
    nodes: list[int] = field(default_factory=list)

    @property
    def threads(self) -> int:
        """Compute threads of this instance (one per pinned core)."""
        return len(self.cpus)

    def to_dict(self) -> dict[str, object]:
        """Plain data for ``--dry-run --json``."""
        return {"index": self.index, "cpus": self.cpus, "nodes": self.nodes, "env": self.env}


def plan(
    ninstances: int | None = None,
    cores_per_instance: int | None = None,
    node_id: int | None = None,
    mode: Mode = "latency",
    cpus: Sequence[int] | None = None,
    *,
    machine: hardware.MachineInfo | None = None,
) -> list[InstancePlan]:
    """Split the usable physical cores into disjoint per-instance CPU lists with their environment.

    Without ``ninstances`` and ``cores_per_instance`` the split is the one ``cpuai doctor``
    recommends for ``mode``. ``node_id`` restricts the pool to one NUMA node; ``cpus`` to given
    logical CPUs (one per physical core is used). Asking for more than the pool holds is a
    ``ResourceError``; bad values are a ``ConfigError``.

    On a 2-core machine ``[p.cpus for p in plan(ninstances=2)]`` is ``[[0], [1]]``, each with
    ``OMP_NUM_THREADS=1``.
    """
    info = machine or hardware.current()
    if mode not in ("latency", "throughput"):
        raise ConfigError(f"mode must be 'latency' or 'throughput', got {mode!r}", fix="pick one of the two")
    for name, value in (("ninstances", ninstances), ("cores_per_instance", cores_per_instance)):
        if value is not None and value < 1:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{flag} must be at least 1, got {value}", fix=f"pass {flag} 1 or more")

    pool_cpus = _pool(info, node_id, cpus)
    cores = [c[0] for c in info.cores(pool_cpus)]
    where = _describe_pool(node_id, cpus)
    if not cores:
        raise ResourceError(f"no usable physical cores {where}", fix="check --node-id / the CPU list")

    if ninstances is None and cores_per_instance is None:
        groups = info.instance_cores(
            mode, cpus=pool_cpus if (node_id is not None or cpus is not None) else None
        )
    else:
        groups = _split(cores, ninstances, cores_per_instance, where)
        budget = _quota_budget(info)
        used = sum(len(g) for g in groups)
        if budget is not None and used > budget:
            log.warning(
                "the plan uses %d cores but the cgroup quota allows %g CPUs; instances will be throttled",
                used,
                info.cpu_quota,
            )

    total = len(groups)
    plans = []
    for i, group in enumerate(groups):
        env = hardware.thread_env(len(group))
        env.update(
            {
                "CPUAI_INSTANCE": str(i),
                "CPUAI_NINSTANCES": str(total),
                "CPUAI_CPUS": hardware.format_cpulist(group),
            }
        )
        nodes = sorted({n for n in (info.node_of(c) for c in group) if n is not None})
        plans.append(InstancePlan(index=i, cpus=list(group), env=env, nodes=nodes))
    return plans


def _pool(info: hardware.MachineInfo, node_id: int | None, cpus: Sequence[int] | None) -> list[int]:
    pool = list(info.usable)
    if cpus is not None:
        bad = sorted(set(cpus) - set(pool))
        if bad:
            raise ConfigError(
                f"CPUs {hardware.format_cpulist(bad)} are not usable by this process "
                f"(usable: {hardware.format_cpulist(pool)})",
                fix="pick CPUs from the usable list",
            )
        pool = sorted(set(cpus))
    if node_id is not None:
        if node_id not in info.numa:
            nodes = ", ".join(str(n) for n in sorted(info.numa))
            raise ConfigError(
                f"--node-id {node_id} does not exist (NUMA nodes: {nodes})", fix="pick one of them"
            )
        node_cpus = set(info.numa[node_id])
        pool = [c for c in pool if c in node_cpus]
    return pool


def _describe_pool(node_id: int | None, cpus: Sequence[int] | None) -> str:
    if node_id is not None:
        return f"on NUMA node {node_id}"
    if cpus is not None:
        return f"among CPUs {hardware.format_cpulist(cpus)}"
    return "usable by this process"


def _split(cores: list[int], n: int | None, per: int | None, where: str) -> list[list[int]]:
    available = len(cores)
    cores_text = hardware.format_cpulist(cores)
    if n is not None and per is not None:
        if n * per > available:
            raise ResourceError(
                f"{n} instances x {per} cores need {n * per} physical cores but only {available} are {where} "
                f"(CPUs {cores_text})",
                fix=f"lower --ninstances or --cores-per-instance so their product is at most {available}",
            )
    elif n is not None:
        if n > available:
            raise ResourceError(
                f"--ninstances {n} is more than the {available} physical cores {where} (CPUs {cores_text})",
                fix=f"use --ninstances {available} or fewer",
            )
        per = available // n
    else:
        assert per is not None
        if per > available:
            raise ResourceError(
                f"--cores-per-instance {per} is more than the {available} physical cores {where} "
                f"(CPUs {cores_text})",
                fix=f"use --cores-per-instance {available} or fewer",
            )
        n = available // per
    return [cores[i * per : (i + 1) * per] for i in range(n)]


def _quota_budget(info: hardware.MachineInfo) -> int | None:
    if info.cpu_quota is None:
        return None
    return max(1, int(info.cpu_quota))


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


def allocator_env(allocator: str, machine: hardware.MachineInfo | None = None) -> dict[str, str]:
    """Environment that preloads ``allocator`` (``default`` adds nothing); a clear error if absent."""
    if allocator not in ALLOCATOR_CHOICES:
        raise ConfigError(
            f"unknown allocator {allocator!r}",
            fix=f"use one of: {', '.join(ALLOCATOR_CHOICES)}",
        )
    if allocator == "default":
        return {}
    path = (machine.allocators.get(allocator) if machine else None) or hardware.find_allocator(allocator)
    if path is None:
        libs, package = hardware.ALLOCATORS[allocator]
        raise DependencyError(
            f"allocator {allocator} requested but {libs[0]} is not installed",
            fix=f"install the Debian package {package} (apt-get install {package}), or --allocator default",
        )
    preload = os.environ.get("LD_PRELOAD", "")
    env = {"LD_PRELOAD": f"{path}:{preload}" if preload else path}
    if allocator == "jemalloc":
        env["MALLOC_CONF"] = os.environ.get("MALLOC_CONF", JEMALLOC_CONF)
    return env


def command_for(p: InstancePlan, command: Sequence[str], numactl: str | None) -> list[str]:
    """The argv an instance runs: ``numactl`` with CPU and memory binding in front when available."""
    if numactl is None:
        return list(command)
    bind = ["--membind=" + ",".join(str(n) for n in p.nodes)] if p.nodes else []
    return [numactl, "--physcpubind=" + hardware.format_cpulist(p.cpus), *bind, *command]


def run(
    plans: Sequence[InstancePlan],
    command: Sequence[str],
    *,
    allocator: str = "default",
    log_dir: str | Path | None = None,
    use_numactl: bool = True,
    stdout: IO[str] | None = None,
    machine: hardware.MachineInfo | None = None,
) -> int:
    """Start one pinned process per plan, stream their prefixed output, and wait for all of them.

    Returns 0 when every instance exits 0, else the first non-zero exit code (128 + signal for an
    instance killed by a signal). The launcher's SIGINT/SIGTERM are forwarded to every instance.
    """
    if not command:
        raise ConfigError(
            "no command to launch", fix="put the command after --, e.g. cpuai launch -- python app.py"
        )
    if not plans:
        raise ConfigError("the launch plan has no instances", fix="check --ninstances / --cores-per-instance")
    extra = allocator_env(allocator, machine)
    numactl = shutil.which("numactl") if use_numactl else None
    out = stdout or sys.stdout
    logs_path = Path(log_dir) if log_dir is not None else None
    if logs_path is not None:
        logs_path.mkdir(parents=True, exist_ok=True)

    write_lock = threading.Lock()
    procs: list[subprocess.Popen[bytes]] = []
    previous = _forward_signals(procs)  # before the first fork: no signal may orphan an instance
    try:
        for p in plans:
            try:
                procs.append(
                    subprocess.Popen(
                        command_for(p, command, numactl),
                        env={**os.environ, **p.env, **extra},
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        preexec_fn=_pinner(p.cpus),  # readers start only after every fork
                        process_group=0,
                    )
                )
            except FileNotFoundError as exc:
                _terminate(procs)
                raise ConfigError(
                    f"command not found: {command[0]!r}", fix="check the command after --"
                ) from exc
        readers = []
        for p, proc in zip(plans, procs, strict=True):
            log_file = (logs_path / f"instance_{p.index}.log").open("w") if logs_path is not None else None
            t = threading.Thread(target=_pump, args=(p.index, proc, out, log_file, write_lock), daemon=True)
            t.start()
            readers.append(t)
        codes = [_wait(proc) for proc in procs]
        for t in readers:
            t.join()
    finally:
        _restore_signals(previous)

    failed = [(p.index, _exit_code(c)) for p, c in zip(plans, codes, strict=True) if c != 0]
    for index, code in failed:
        with write_lock:
            out.write(f"[launch] instance {index} exited with code {code}\n")
            out.flush()
    return failed[0][1] if failed else 0


def _pinner(cpus: list[int]) -> Callable[[], None]:
    def pin() -> None:
        os.sched_setaffinity(0, cpus)

    return pin


def _pump(
    index: int, proc: subprocess.Popen[bytes], out: IO[str], log_file: IO[str] | None, lock: threading.Lock
) -> None:
    assert proc.stdout is not None
    prefix = f"[{index}] "
    try:
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode(errors="replace")
            if not line.endswith("\n"):
                line += "\n"
            with lock:
                out.write(prefix + line)
                out.flush()
            if log_file is not None:
                log_file.write(line)
                log_file.flush()
    finally:
        proc.stdout.close()
        if log_file is not None:
            log_file.close()


def _wait(proc: subprocess.Popen[bytes]) -> int:
    """Wait for an instance in short slices, so that a signal the kernel handed to a reader thread
    still reaches our handler (Python runs handlers only in the main thread, between bytecodes)."""
    while True:
        try:
            return proc.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            continue


def _exit_code(code: int) -> int:
    return 128 - code if code < 0 else code


def _forward_signals(procs: list[subprocess.Popen[bytes]]) -> dict[int, object]:
    if threading.current_thread() is not threading.main_thread():
        return {}

    received: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        received.append(signum)
        target = signal.SIGKILL if len(received) > 2 else signum  # a third signal stops them for good
        for proc in procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, target)

    previous: dict[int, object] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, forward)
    return previous


def _restore_signals(previous: dict[int, object]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)  # type: ignore[arg-type]


def _terminate(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            proc.wait()
