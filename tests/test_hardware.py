"""cpuai.hardware and `cpuai doctor`: recorded machines (fixtures), degraded trees, and the live machine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cpuai import hardware
from cpuai.cli.app import main

FIXTURES = Path(__file__).parent / "fixtures" / "hardware"
SPR = FIXTURES / "xeon-2s-spr"
VM = FIXTURES / "vm-4vcpu-avx2"
CONTAINER = FIXTURES / "container-1.5cpu"


def run_doctor(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["doctor", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


# ---- recorded machines ------------------------------------------------------------------------


def test_two_socket_xeon_topology_isa_and_advice():
    m = hardware.probe(SPR, env={})
    assert m.model_name == "Intel(R) Xeon(R) Gold 5415+"
    assert (m.sockets, m.physical_cores, m.threads_per_core, m.logical_cpus) == (2, 16, 2, 32)
    assert m.numa_nodes == 2
    assert m.numa[0] == list(range(0, 8)) + list(range(16, 24))
    assert m.sources["topology"] == "sysfs"
    assert m.has_avx512 and m.has_int8_dot and m.has_bf16 and m.has_amx
    assert m.accelerated_precisions["int8"] == "AMX-INT8"
    assert m.accelerated_precisions["bf16"] == "AMX-BF16"
    # Caches as one instance each: L2 per core (2 threads), L3 per socket.
    caches = {c.name: c for c in m.caches}
    assert caches["L2"].size_bytes == 2 * 1024 * 1024 and caches["L2"].shared_by == 2
    assert caches["L3"].instances == 2 and caches["L3"].shared_by == 16
    assert m.governors == ["powersave"] and m.cstates == ["POLL", "C1", "C1E", "C6"]
    assert m.numactl is not None and m.allocators["jemalloc"] is not None and m.allocators["tcmalloc"] is None

    lat = m.recommend("latency")
    assert lat.instances == [list(range(0, 8))]  # physical cores of one socket, no hyper-thread siblings
    assert lat.env["OMP_NUM_THREADS"] == "8" and lat.intra_op_threads == 8 and lat.inter_op_threads == 1
    assert lat.env["KMP_AFFINITY"].startswith("granularity=fine")
    thr = m.recommend("throughput")
    assert thr.instances == [list(range(0, 8)), list(range(8, 16))]  # one per NUMA node
    assert thr.env["OMP_NUM_THREADS"] == "8"

    warnings = " | ".join(m.warnings)
    assert "32 usable logical CPUs are only 16 physical cores" in warnings
    assert "governor is powersave" in warnings
    assert "numactl" not in warnings and "quota" not in warnings
    # A recorded tree cannot say whether its kernel grants AMX state: said, not guessed.
    assert m.amx_os_enabled is None
    assert any("AMX" in u for u in m.unknown)


def test_vm_without_avx512_degrades_numa_to_lscpu():
    m = hardware.probe(VM, env={})
    assert m.vendor == "AuthenticAMD" and m.hypervisor == "KVM"
    assert (m.sockets, m.physical_cores, m.threads_per_core, m.numa_nodes) == (1, 2, 2, 1)
    assert m.cores() == [[0, 2], [1, 3]]  # siblings enumerated after all cores
    assert m.sources["numa"] == "lscpu"  # /sys/devices/system/node is absent in this guest
    assert m.vector_isa == "AVX2" and not m.has_avx512
    assert not m.has_int8_dot and not m.has_bf16 and not m.has_amx
    assert m.accelerated_precisions == {}
    assert m.isa["AVX2"] and not m.isa["AVX512F"] and not m.isa["AVX512-VNNI"]

    assert m.recommend("latency").instances == [[0, 1]]
    assert m.recommend("latency").env["OMP_NUM_THREADS"] == "2"  # physical cores, not the 4 vCPUs
    assert m.recommend("throughput").instances == [[0], [1]]
    assert any("4 usable logical CPUs are only 2 physical cores" in w for w in m.warnings)
    assert any("numactl not found" in w for w in m.warnings)
    assert any("frequency governor" in u for u in m.unknown)
    assert any("C-states" in u for u in m.unknown)


def test_container_quota_caps_threads_below_visible_cpus():
    m = hardware.probe(CONTAINER, env={"OMP_NUM_THREADS": "8"})
    assert m.cpu_quota == pytest.approx(1.5)
    assert m.usable == list(range(8)) and m.cgroup_cpuset == list(range(8))
    assert m.physical_cores == 4 and m.thread_budget == 1
    assert m.accelerated_precisions == {"int8": "AVX512-VNNI"}  # Ice Lake: VNNI, no BF16, no AMX
    assert not m.has_bf16 and not m.has_amx
    assert m.memory_limit_bytes == 4 * 1024**3
    # No cache directories in this tree: sizes come from lscpu's totals and instance counts.
    assert {c.name: c.size_bytes for c in m.caches}["L2"] == 5 * 1024 * 1024 // 4

    lat = m.recommend("latency")
    assert lat.instances == [[0]] and lat.env["OMP_NUM_THREADS"] == "1"
    assert m.recommend("throughput").instances == [[0]]
    warnings = " | ".join(m.warnings)
    assert "quota is 1.5 CPUs but 8 CPUs are visible" in warnings
    assert "OMP_NUM_THREADS=8 exceeds" in warnings
    assert "memory limit is 4.0 GiB" in warnings


@pytest.mark.parametrize("tree", [SPR, VM, CONTAINER], ids=lambda p: p.name)
def test_recommended_instances_never_overlap_or_use_siblings(tree):
    m = hardware.probe(tree, env={})
    first_threads = {core[0] for core in m.cores()}
    for goal in ("latency", "throughput"):
        cpus = [c for inst in m.recommend(goal).instances for c in inst]
        assert len(cpus) == len(set(cpus))
        assert set(cpus) <= first_threads
        assert len(cpus) <= m.thread_budget


def test_summary_is_short_and_json_ready():
    s = hardware.probe(SPR, env={}).summary()
    assert json.loads(json.dumps(s)) == s
    for key in (
        "model",
        "sockets",
        "physical_cores",
        "threads_per_core",
        "numa_nodes",
        "isa",
        "accelerated_precisions",
        "usable_cpus",
        "cpu_quota",
        "engines",
    ):
        assert key in s
    assert s["isa"][:3] == ["AVX2", "FMA", "AVX512F"] and "AMX-INT8" in s["isa"]


# ---- degraded trees ---------------------------------------------------------------------------


def test_empty_tree_degrades_and_says_what_is_unknown(tmp_path):
    m = hardware.probe(tmp_path, env={})
    assert m.physical_cores == 1 and m.recommend("latency").env["OMP_NUM_THREADS"] == "1"
    unknown = " | ".join(m.unknown)
    for item in ("/proc/cpuinfo", "lscpu output", "ISA flags", "topology", "NUMA nodes", "memory", "caches"):
        assert item in unknown
    assert m.vector_isa == "unknown" and m.accelerated_precisions == {}
    hardware.probe(tmp_path, env={}).to_dict()  # every derived field still renders


def test_topology_falls_back_to_cpuinfo_then_lscpu(tmp_path):
    only_cpuinfo = tmp_path / "a"
    (only_cpuinfo / "proc").mkdir(parents=True)
    shutil.copy(SPR / "proc/cpuinfo", only_cpuinfo / "proc/cpuinfo")
    m = hardware.probe(only_cpuinfo, env={})
    assert m.sources["topology"] == "/proc/cpuinfo"
    assert (m.sockets, m.physical_cores, m.threads_per_core) == (2, 16, 2)

    only_lscpu = tmp_path / "b"
    only_lscpu.mkdir()
    shutil.copy(SPR / "lscpu.txt", only_lscpu / "lscpu.txt")
    m = hardware.probe(only_lscpu, env={})
    assert m.sources["topology"].startswith("lscpu")
    assert (m.sockets, m.physical_cores, m.threads_per_core, m.numa_nodes) == (2, 16, 2, 2)
    assert m.has_amx and m.model_name == "Intel(R) Xeon(R) Gold 5415+"
    assert m.recommend("latency").instances == [list(range(8))]


def test_cgroup_v1_quota_and_unlimited(tmp_path):
    cg = tmp_path / "cpu"
    cg.mkdir()
    (cg / "cpu.cfs_quota_us").write_text("250000\n")
    (cg / "cpu.cfs_period_us").write_text("100000\n")
    assert hardware.cgroup_cpu_quota(tmp_path) == pytest.approx(2.5)
    (cg / "cpu.cfs_quota_us").write_text("-1\n")
    assert hardware.cgroup_cpu_quota(tmp_path) is None
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert hardware.cgroup_cpu_quota(tmp_path) is None


def test_core_budget_env_override(monkeypatch):
    monkeypatch.setenv("CPUAI_CORES", "1")
    assert hardware.core_budget() == 1
    monkeypatch.delenv("CPUAI_CORES")
    assert 1 <= hardware.core_budget() <= len(hardware.usable_cpus())


@pytest.mark.parametrize(
    "text, cpus", [("0-3,8-11", [0, 1, 2, 3, 8, 9, 10, 11]), ("0,2", [0, 2]), ("5", [5])]
)
def test_cpulist_round_trip(text, cpus):
    assert hardware.parse_cpulist(text) == cpus
    assert hardware.format_cpulist(cpus) == text


# ---- the live machine -------------------------------------------------------------------------


def _lscpu() -> dict[str, str]:
    exe = shutil.which("lscpu")
    if exe is None:
        pytest.skip("lscpu is not installed")
    text = subprocess.run([exe], capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"}).stdout
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def test_live_machine_agrees_with_lscpu_and_affinity():
    m = hardware.probe()
    ls = _lscpu()
    assert m.sockets == int(ls["Socket(s)"])
    assert m.threads_per_core == int(ls["Thread(s) per core"])
    assert m.physical_cores == m.sockets * int(ls["Core(s) per socket"])
    assert m.numa_nodes == int(ls.get("NUMA node(s)", "1"))
    flags = set(ls["Flags"].split())
    assert m.isa["AVX512-VNNI"] == ("avx512_vnni" in flags)
    assert m.isa["AVX512-BF16"] == ("avx512_bf16" in flags)
    assert m.isa["AMX-TILE"] == ("amx_tile" in flags)
    assert m.usable == sorted(os.sched_getaffinity(0))
    if m.threads_per_core == 1:
        assert m.usable_physical_cores == len(m.usable)
    if "amx_tile" in flags:
        assert m.amx_os_enabled is not None  # the kernel was asked (arch_prctl)
    assert m.recommend("latency").env["OMP_NUM_THREADS"] == str(len(m.recommend("latency").instances[0]))


def test_probe_reads_engine_versions_without_importing_engines():
    code = (
        "import sys, json; from cpuai import hardware; s = hardware.probe().summary();"
        "heavy = [m for m in ('torch', 'openvino', 'onnxruntime', 'faiss') if m in sys.modules];"
        "print(json.dumps([s['engines'], heavy]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    engines, imported = json.loads(out)
    assert imported == []
    import importlib.metadata

    assert engines["torch"] == importlib.metadata.version("torch")
    assert engines["onnxruntime"] == importlib.metadata.version("onnxruntime")


def test_doctor_json_on_live_machine(capsys):
    code, out, _ = run_doctor(capsys, "--json")
    assert code == 0
    d = json.loads(out)
    m = hardware.probe()
    for key in ("sockets", "physical_cores", "threads_per_core", "numa_nodes", "usable_cpus", "cpu_quota"):
        assert d[key] == m.summary()[key]
    assert set(d["isa_flags"]) >= {"AVX2", "AVX512F", "AVX512-VNNI", "AVX512-BF16", "AMX-TILE", "AMX-INT8"}
    lat = d["recommendations"]["latency"]
    assert lat["env"]["OMP_NUM_THREADS"] == str(m.thread_budget)
    assert lat["ninstances"] == 1
    assert "warnings" in d and "unknown" in d


def test_doctor_table_on_recorded_machine(capsys):
    code, out, _ = run_doctor(capsys, "--root", str(SPR))
    assert code == 0
    for text in (
        "Gold 5415+",
        "Physical cores",
        "16",
        "AMX-INT8",
        "powersave",
        "OMP_NUM_THREADS=8",
        "node1: 8-15,24-31",
    ):
        assert text in out


def test_doctor_json_on_recorded_container(capsys):
    code, out, _ = run_doctor(capsys, "--json", "--root", str(CONTAINER))
    assert code == 0
    d = json.loads(out)
    assert d["cpu_quota"] == 1.5 and d["recommendations"]["latency"]["env"]["OMP_NUM_THREADS"] == "1"
    assert d["accelerated_precisions"] == {"int8": "AVX512-VNNI"}


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--root", "/no/such/dir"], "--root /no/such/dir is not a directory"),
        (["--lscpu", "/no/such/file"], "--lscpu /no/such/file is not a file"),
    ],
)
def test_doctor_bad_input_is_one_line(capsys, args, needle):
    code, out, err = run_doctor(capsys, *args)
    assert code == 2
    assert err.strip().count("\n") == 0 and err.startswith("error: ") and needle in err and ";" in err
