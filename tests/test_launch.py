"""cpuai.launch and `cpuai launch`: plans on recorded machines, real pinned instances on this one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cpuai import hardware, launch
from cpuai.cli.app import main
from cpuai.errors import ConfigError, DependencyError, ResourceError

FIXTURES = Path(__file__).parent / "fixtures" / "hardware"
CPUAI = str(Path(sys.executable).with_name("cpuai"))

REPORT = (
    "import os, json; print(json.dumps({'cpus': sorted(os.sched_getaffinity(0)), "
    "'omp': os.environ['OMP_NUM_THREADS'], 'index': os.environ['CPUAI_INSTANCE']}))"
)


@pytest.fixture(scope="module")
def spr() -> hardware.MachineInfo:
    return hardware.probe(FIXTURES / "xeon-2s-spr", env={})


@pytest.fixture(scope="module")
def container() -> hardware.MachineInfo:
    return hardware.probe(FIXTURES / "container-1.5cpu", env={})


def two_cores() -> None:
    if hardware.current().usable_physical_cores < 2:
        pytest.skip("needs two usable physical cores")


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CPUAI, *args], capture_output=True, text=True, timeout=timeout)


# ---- plans on recorded machines ---------------------------------------------------------------


def test_plan_splits_physical_cores_without_overlap(spr):
    plans = launch.plan(ninstances=4, machine=spr)
    assert [p.cpus for p in plans] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15]]
    assert [p.nodes for p in plans] == [[0], [0], [1], [1]]
    for p in plans:
        assert p.env["OMP_NUM_THREADS"] == p.env["CPUAI_CORES"] == "4"
        assert p.env["CPUAI_INSTANCE"] == str(p.index) and p.env["CPUAI_NINSTANCES"] == "4"
    assert plans[2].env["CPUAI_CPUS"] == "8-11"


def test_plan_modes_node_and_cores_per_instance(spr):
    assert [p.cpus for p in launch.plan(machine=spr)] == [list(range(8))]  # latency: one socket
    assert [p.cpus for p in launch.plan(mode="throughput", machine=spr)] == [
        list(range(8)),
        list(range(8, 16)),
    ]
    assert [p.cpus for p in launch.plan(node_id=1, machine=spr)] == [list(range(8, 16))]
    assert [p.cpus for p in launch.plan(ninstances=2, node_id=1, machine=spr)] == [
        [8, 9, 10, 11],
        [12, 13, 14, 15],
    ]
    plans = launch.plan(cores_per_instance=3, machine=spr)
    assert len(plans) == 5 and all(p.threads == 3 for p in plans)
    assert [p.cpus for p in launch.plan(ninstances=2, cores_per_instance=2, machine=spr)] == [[0, 1], [2, 3]]
    # Hyper-thread siblings given in `cpus` collapse to one CPU per physical core.
    assert [p.cpus for p in launch.plan(ninstances=2, cpus=[0, 16, 1, 17], machine=spr)] == [[0], [1]]


def test_plan_respects_quota_by_default(container):
    plans = launch.plan(machine=container)
    assert [p.cpus for p in plans] == [[0]] and plans[0].env["OMP_NUM_THREADS"] == "1"


@pytest.mark.parametrize(
    "kwargs, exc, needle",
    [
        ({"ninstances": 17}, ResourceError, "--ninstances 17 is more than the 16 physical cores"),
        ({"cores_per_instance": 20}, ResourceError, "--cores-per-instance 20 is more than the 16"),
        ({"ninstances": 2, "cores_per_instance": 9}, ResourceError, "need 18 physical cores but only 16"),
        ({"ninstances": 9, "node_id": 0}, ResourceError, "more than the 8 physical cores on NUMA node 0"),
        ({"ninstances": 0}, ConfigError, "--ninstances must be at least 1, got 0"),
        ({"node_id": 5}, ConfigError, "--node-id 5 does not exist (NUMA nodes: 0, 1)"),
        ({"cpus": [99]}, ConfigError, "CPUs 99 are not usable"),
        ({"mode": "fast"}, ConfigError, "mode must be 'latency' or 'throughput', got 'fast'"),
    ],
)
def test_plan_errors_name_value_and_fix(spr, kwargs, exc, needle):
    with pytest.raises(exc) as info:
        launch.plan(machine=spr, **kwargs)
    assert needle in str(info.value) and info.value.fix


def test_allocator_env(spr):
    env = launch.allocator_env("jemalloc", spr)  # the recorded tree has libjemalloc.so.2
    assert env["LD_PRELOAD"].endswith("libjemalloc.so.2") and "background_thread:true" in env["MALLOC_CONF"]
    assert launch.allocator_env("default") == {}
    with pytest.raises(
        ConfigError, match="unknown allocator 'mimalloc'; use one of: default, jemalloc, tcmalloc"
    ):
        launch.allocator_env("mimalloc")
    if hardware.find_allocator("tcmalloc") is None:
        with pytest.raises(DependencyError, match="Debian package libgoogle-perftools4"):
            launch.allocator_env("tcmalloc")


def test_numactl_binds_cpus_and_memory(spr):
    p = launch.plan(ninstances=2, machine=spr)[1]
    argv = launch.command_for(p, ["python", "app.py"], "/usr/bin/numactl")
    assert argv == ["/usr/bin/numactl", "--physcpubind=8-15", "--membind=1", "python", "app.py"]
    assert launch.command_for(p, ["python"], None) == ["python"]


# ---- real instances on this machine -----------------------------------------------------------


def test_launch_two_pinned_instances_report_their_affinity():
    two_cores()
    done = cli("launch", "--ninstances", "2", "--", sys.executable, "-c", REPORT)
    assert done.returncode == 0, done.stderr
    reports = {}
    for line in done.stdout.splitlines():
        prefix, _, body = line.partition(" ")
        reports[prefix] = json.loads(body)
    assert set(reports) == {"[0]", "[1]"}
    cpus = [reports[f"[{i}]"]["cpus"] for i in range(2)]
    assert all(len(c) == 1 for c in cpus) and cpus[0] != cpus[1]
    assert all(reports[f"[{i}]"]["omp"] == "1" and reports[f"[{i}]"]["index"] == str(i) for i in range(2))
    assert set(cpus[0] + cpus[1]) <= set(hardware.usable_cpus())


def test_failing_instance_makes_launch_fail():
    two_cores()
    code = "import os, sys; print('hello'); sys.exit(3 if os.environ['CPUAI_INSTANCE'] == '1' else 0)"
    done = cli("launch", "--ninstances", "2", "--", sys.executable, "-c", code)
    assert done.returncode == 3
    assert "[launch] instance 1 exited with code 3" in done.stdout
    assert "[launch] instance 0" not in done.stdout
    assert done.stdout.count("hello") == 2


def test_log_dir_keeps_each_instance_output(tmp_path):
    two_cores()
    plans = launch.plan(ninstances=2)
    code = "import os; print('instance', os.environ['CPUAI_INSTANCE'])"
    with open(tmp_path / "console.txt", "w") as console:
        assert launch.run(plans, [sys.executable, "-c", code], log_dir=tmp_path / "logs", stdout=console) == 0
    for i in range(2):
        assert (tmp_path / "logs" / f"instance_{i}.log").read_text() == f"instance {i}\n"
    assert sorted((tmp_path / "console.txt").read_text().splitlines()) == ["[0] instance 0", "[1] instance 1"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_is_forwarded_to_every_instance(sig):
    two_cores()
    code = (
        "import os, signal, sys, time\n"
        "def bye(sig, frame):\n"
        "    print('got', sig, flush=True); sys.exit(7)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "signal.signal(signal.SIGINT, bye)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [CPUAI, "launch", "--ninstances", "2", "--", sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines = []
    while sum("ready" in line for line in lines) < 2:
        line = proc.stdout.readline()
        assert line, f"launcher ended early: {lines} {proc.stderr.read() if proc.stderr else ''}"
        lines.append(line)
    proc.send_signal(sig)
    rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 7
    assert f"[0] got {int(sig)}" in rest and f"[1] got {int(sig)}" in rest


def test_dry_run_prints_plan_and_runs_nothing(tmp_path, capsys):
    marker = tmp_path / "ran"
    code = main(["launch", "--ninstances", "1", "--dry-run", "--json", "--", "touch", str(marker)])
    assert code == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["instances"][0]["argv"][-2:] == ["touch", str(marker)]
    assert plan["instances"][0]["env"]["OMP_NUM_THREADS"] == str(len(plan["instances"][0]["cpus"]))
    assert not marker.exists()
    assert main(["launch", "--throughput-mode", "--dry-run", "--", "true"]) == 0
    assert "Launch plan (throughput" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--ninstances", "999", "--", "true"], "--ninstances 999 is more than the"),
        (["--allocator", "mimalloc", "--", "true"], "unknown allocator 'mimalloc'"),
        (["--latency-mode", "--throughput-mode", "--", "true"], "both given"),
        (["--ninstances", "1"], "no command to launch"),
        (["--ninstances", "1", "--", "no-such-command-xyz"], "command not found: 'no-such-command-xyz'"),
    ],
)
def test_launch_bad_input_is_one_line_error(capsys, args, needle):
    assert main(["launch", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and needle in err and "\n" not in err and "Traceback" not in err


def test_missing_allocator_names_the_debian_package():
    if hardware.find_allocator("jemalloc") is not None:
        pytest.skip("jemalloc is installed here")
    done = cli("launch", "--allocator", "jemalloc", "--", "true")
    assert done.returncode == 2
    assert (
        "libjemalloc.so.2 is not installed" in done.stderr and "apt-get install libjemalloc2" in done.stderr
    )


def test_plan_is_usable_for_self_pinning_workers():
    """What data-parallel training does: one worker per plan entry pins itself and applies the env."""
    p = launch.plan(ninstances=1)[0]
    code = f"import os; os.sched_setaffinity(0, {p.cpus}); print(sorted(os.sched_getaffinity(0)))"
    out = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **p.env}, capture_output=True, text=True
    )
    assert json.loads(out.stdout) == p.cpus
