"""Unit tests of the serving parts that need no server: batch queue, core plan, codec, config, CLI."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from cpuai.cli.app import main
from cpuai.errors import ConfigError, EngineError, InvalidInput, ResourceError
from cpuai.package import Deploy
from cpuai.serve import ServeConfig, ServerThread, create_app, free_port
from cpuai.serve.batching import BatchQueue
from cpuai.serve.budget import MAX_SPLIT, pinned, plan
from cpuai.serve.codec import decode_v2_inputs, encode_v2_outputs
from cpuai.serve.errors import QueueFull
from cpuai.serve.http_protocol import OneWriteHttpTools, _PairedWrites

# -- batch queue -------------------------------------------------------------------------------


async def _queue_behind_first(
    q: BatchQueue, first_started, release, rest: list[tuple[int, str | None]]
) -> list:
    """Put 0, wait until its batch holds the slot, queue ``rest`` (item, key) behind it, release
    the first batch; every answer in put order, then the queue closed."""
    first = asyncio.ensure_future(q.put(0))
    await first_started()
    waiting = [asyncio.ensure_future(q.put(i, key=key)) for i, key in rest]
    await asyncio.sleep(0.01)
    release.set()
    out = [await first] + [await w for w in waiting]
    await q.close()
    return out


def test_idle_queue_runs_a_request_at_once_without_waiting_for_the_delay():
    seen: list[list[int]] = []

    async def run(items):
        seen.append(list(items))
        return [i * 10 for i in items]

    async def go():
        q = BatchQueue(run, max_batch=8, max_delay_s=5.0)  # a huge window that must not be waited out
        start = time.perf_counter()
        result = await q.put(3)
        took = time.perf_counter() - start
        await q.close()
        return result, took

    result, took = asyncio.run(go())
    assert result == 30 and seen == [[3]]
    assert took < 5.0  # never waited for the 5 s window (the logic, not a timing benchmark)


def test_busy_queue_gathers_a_batch_and_splits_results_back():
    sizes: list[int] = []
    gate = asyncio.Event

    async def go():
        release = gate()

        async def run(items):
            sizes.append(len(items))
            if len(sizes) == 1:
                await release.wait()  # the first batch holds the only slot
            return [f"r{i}" for i in items]

        q = BatchQueue(run, max_batch=4, max_delay_s=0.001, slots=1)
        return await _queue_behind_first(
            q, lambda: asyncio.sleep(0.01), release, [(i, None) for i in range(1, 7)]
        )

    out = asyncio.run(go())
    assert out == [f"r{i}" for i in range(7)]
    assert sizes == [1, 4, 2]


def test_keys_group_items_and_the_oldest_goes_first():
    batches: list[list[str]] = []

    async def go():
        release = asyncio.Event()

        async def run(items):
            batches.append(list(items))
            if len(batches) == 1:
                await release.wait()
            return items

        q = BatchQueue(run, max_batch=8, slots=1)
        hold = asyncio.ensure_future(q.put("hold", key="x"))
        await asyncio.sleep(0.01)
        waiting = [asyncio.ensure_future(q.put(v, key=v[0])) for v in ["a1", "b1", "a2", "b2", "a3"]]
        await asyncio.sleep(0.01)
        release.set()
        await asyncio.gather(hold, *waiting)
        await q.close()

    asyncio.run(go())
    assert batches == [["hold"], ["a1", "a2", "a3"], ["b1", "b2"]]


def test_wrong_result_count_and_batch_exception_fail_every_waiting_request_of_that_batch():
    async def go():
        async def short(items):
            return items[:-1]

        q = BatchQueue(short, max_batch=4)
        with pytest.raises(EngineError, match="returned 0 results for a batch of 1"):
            await q.put(1)
        await q.close()

        async def boom(items):
            if "bad" in items:
                raise RuntimeError("batch failed")
            return items

        q2 = BatchQueue(boom, max_batch=4)
        assert await q2.put("good") == "good"
        with pytest.raises(RuntimeError, match="batch failed"):
            await q2.put("bad")
        assert await q2.put("good again") == "good again"  # the queue survives
        await q2.close()

        async def per_item(items):
            return [ValueError(i) if i == "x" else i for i in items]

        q3 = BatchQueue(per_item)
        assert await q3.put("y") == "y"
        with pytest.raises(ValueError):
            await q3.put("x")
        await q3.close()

    asyncio.run(go())


def test_full_queue_raises_queue_full():
    async def go():
        release = asyncio.Event()

        async def run(items):
            await release.wait()
            return items

        q = BatchQueue(run, max_batch=1, max_queue=2)
        running = asyncio.ensure_future(q.put(0))
        await asyncio.sleep(0.01)
        queued = [asyncio.ensure_future(q.put(i)) for i in (1, 2)]
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFull, match="2 requests waiting"):
            await q.put(3)
        release.set()
        await asyncio.gather(running, *queued)
        await q.close()

    asyncio.run(go())


def test_batch_threads_chain_waiting_batches_without_the_event_loop():
    """A batch thread that finishes takes the next waiting batch itself; every request gets its own answer."""
    import threading

    started, release = threading.Event(), threading.Event()
    runs: list[tuple[int, list[int]]] = []

    def compute(items):
        runs.append((threading.get_ident(), list(items)))
        if len(runs) == 1:
            started.set()
            release.wait(10)  # the first batch holds the only slot while the rest queue up
        return [i * 10 for i in items]

    async def go():
        async def never(items):
            raise AssertionError("engine batches must not go through the async runner")

        async def first_started() -> None:
            while not started.is_set():
                await asyncio.sleep(0.001)

        q = BatchQueue(never, max_batch=4, slots=1, name="m")
        q.use_threads(compute, 1)
        rest = [(i, "a" if i % 2 else "b") for i in range(1, 8)]
        return await _queue_behind_first(q, first_started, release, rest)

    out = asyncio.run(go())
    assert out == [i * 10 for i in range(8)]
    assert [items for _, items in runs] == [[0], [1, 3, 5, 7], [2, 4, 6]]  # oldest key first, then the other
    assert len({ident for ident, _ in runs}) == 1  # one batch thread ran all three in a row


def test_batch_thread_errors_fail_only_their_batch():
    def compute(items):
        if "bad" in items:
            raise RuntimeError("engine failed")
        if "short" in items:
            return items[:-1]
        return [ValueError(i) if i == "x" else i for i in items]

    async def go():
        async def never(items):
            raise AssertionError("not used")

        q = BatchQueue(never, max_batch=4)
        q.use_threads(compute, 1)
        assert await q.put("good") == "good"
        with pytest.raises(RuntimeError, match="engine failed"):
            await q.put("bad")
        with pytest.raises(EngineError, match="returned 0 results for a batch of 1"):
            await q.put("short")
        with pytest.raises(ValueError):
            await q.put("x")
        assert await q.put("good again") == "good again"  # the queue and its thread survive
        await q.close()

    asyncio.run(go())


@pytest.mark.parametrize("kwargs", [{"max_batch": 0}, {"max_queue": 0}, {"slots": 0}, {"max_delay_s": -1}])
def test_batch_queue_validates_its_arguments(kwargs):
    async def run(items):
        return items

    with pytest.raises(ConfigError):
        BatchQueue(run, **kwargs)


# -- core plan ---------------------------------------------------------------------------------


def test_plan_never_oversubscribes_the_budget():
    for budget in (1, 2, 4, 8, 16):
        for instances in (1, 2):
            for streams in (1, 2):
                if instances * streams > budget:
                    with pytest.raises(ResourceError, match="instances"):
                        plan(budget, instances=instances, streams=streams)
                    continue
                p = plan(budget, instances=instances, streams=streams)
                assert p.cores <= budget and p.slots == instances * streams


def test_default_plan_splits_the_cores_under_load_and_explicit_layouts_do_not():
    p = plan(2)
    assert (p.instances, p.threads, p.split_engines, p.split_threads, p.slots, p.cores) == (1, 2, 2, 1, 1, 2)
    big = plan(32)  # at most MAX_SPLIT copies of the model: wider per-core engines instead
    assert (big.split_engines, big.split_threads) == (MAX_SPLIT, 32 // MAX_SPLIT)
    assert plan(1).split_engines == 0  # one core: nothing to split
    assert plan(4, threads=4).split_engines == 0  # a flag fixes the layout
    assert plan(4, threads=4, split=True).split_engines == 4
    assert plan(4, split=False).split_engines == 0
    assert plan(4, instances=2, split=True).split_engines == 0  # only a single all-core engine splits
    deploy = Deploy(backend="onnxruntime", threads=4, streams=1, instances=1, hint="latency")
    assert plan(4, deploy).split_engines == 0  # cpuai tune's choice stands


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="Linux affinity API")
def test_pinned_runs_the_calling_thread_on_its_cpus_and_then_where_it_ran():
    before = os.sched_getaffinity(0)
    cpu = min(before)
    with pinned([cpu]):
        assert os.sched_getaffinity(0) == {cpu}
    assert os.sched_getaffinity(0) == before
    with pinned(None):  # the all-core engine: no change
        assert os.sched_getaffinity(0) == before
    with pinned([max(before) + 4096]):  # outside the cpuset: runs unpinned rather than failing
        assert os.sched_getaffinity(0) == before
    with pytest.raises(RuntimeError), pinned([cpu]):  # restored even when the batch raises
        raise RuntimeError("engine failed")
    assert os.sched_getaffinity(0) == before


def test_plan_uses_the_deploy_section_and_scales_it_to_the_budget():
    deploy = Deploy(backend="onnxruntime", threads=4, streams=2, instances=1, hint="throughput")
    p = plan(16, deploy)
    assert (p.backend, p.threads, p.streams, p.hint, p.source) == (
        "onnxruntime",
        4,
        2,
        "throughput",
        "deploy",
    )
    small = plan(4, deploy)  # tuned on a bigger machine: threads shrink to fit
    assert small.cores <= 4 and small.streams == 2
    assert plan(4, deploy, instances=2, streams=1).source == "flags"


# -- codec and config --------------------------------------------------------------------------


def test_v2_codec_round_trip_binary_and_json():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    specs, raw = encode_v2_outputs({"a": x, "b": x.astype(np.int64)}, {"a"})
    assert specs[0]["parameters"]["binary_data_size"] == 24 and specs[1]["data"] == list(range(6))
    header = {
        "inputs": [
            dict(specs[0], parameters={"binary_data_size": 24}),
            {"name": "b", "shape": [2, 3], "datatype": "INT64", "data": [[0, 1, 2], [3, 4, 5]]},
        ]
    }
    feeds, types = decode_v2_inputs(header, raw)
    np.testing.assert_array_equal(feeds["a"], x)
    assert feeds["b"].dtype == np.int64 and types == {"a": "FP32", "b": "INT64"}
    with pytest.raises(InvalidInput, match="fractional"):
        decode_v2_inputs({"inputs": [{"name": "b", "shape": [1], "datatype": "INT64", "data": [1.5]}]}, b"")
    with pytest.raises(InvalidInput, match="bytes follow"):
        decode_v2_inputs({"inputs": [{"name": "b", "shape": [1], "datatype": "INT64", "data": [1]}]}, b"xx")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_batch": 0},
        {"max_delay_ms": -1},
        {"instances": 0},
        {"poll_seconds": 0},
        {"backend": "tpu"},
        {"max_body_bytes": 0},
    ],
)
def test_serve_config_rejects_bad_values(kwargs):
    with pytest.raises(ConfigError):
        ServeConfig(**kwargs)


# -- CLI ---------------------------------------------------------------------------------------


def test_cli_serve_bad_arguments_are_one_line_errors(capsys, tmp_path):
    assert main(["serve", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "does not exist" in err and "\n" not in err
    assert main(["serve", str(tmp_path), "--max-batch", "0"]) == 2
    assert "max_batch must be between 1" in capsys.readouterr().err
    assert main(["loadtest", "ftp://x", "-n", "1"]) == 2
    assert "not http" in capsys.readouterr().err


def test_cli_loadtest_against_a_real_server(digits_onnx_package, tmp_path, capsys):
    from PIL import Image

    png = tmp_path / "digit.png"
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(png)
    with ServerThread(create_app(digits_onnx_package, ServeConfig(access_log=False))) as url:
        code = main(
            [
                "loadtest",
                f"{url}/service",
                "-c",
                "4",
                "-n",
                "40",
                "--warmup",
                "2",
                "--payload",
                str(png),
                "--json",
            ]
        )
        assert code == 0
        result = json.loads(capsys.readouterr().out)
        assert result["ok"] == 40 and result["errors"] == {} and result["rps"] > 0
        assert result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
        assert main(["loadtest", f"{url}/service", "-c", "2", "-n", "6", "--warmup", "0"]) == 0
        out = capsys.readouterr().out
        assert "req/s" in out and "errors: 400: 6" in out  # an empty body is refused, and counted


@pytest.mark.slow
def test_cli_serve_process_serves_and_drains_on_sigterm(digits_onnx_package):
    port = free_port()
    exe = Path(sys.executable).with_name("cpuai")
    proc = subprocess.Popen(
        [str(exe), "serve", str(digits_onnx_package), "--port", str(port), "--token", "t0k"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "CPUAI_CORES": "2"},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):  # bounded wait for start-up (up to ~60 s)
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        r = httpx.post(
            f"{url}/v2/models/digits/infer",
            headers={"authorization": "Bearer t0k"},
            json={
                "inputs": [
                    {"name": "input", "shape": [1, 1, 32, 32], "datatype": "FP32", "data": [0.0] * 1024}
                ]
            },
        )
        assert r.status_code == 200, r.text
        assert httpx.get(f"{url}/v2/models/digits").status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "KServe v2" in out and "model digits v1 ready" in out


def test_cli_serve_start_up_failures_are_one_line_errors(digits_onnx_package, tmp_path, capsys, monkeypatch):
    from cpuai import package as pkgmod

    monkeypatch.setenv("CPUAI_CORES", "2")
    port = str(free_port())
    assert main(["serve", str(digits_onnx_package), "--port", port, "--instances", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: 3 instance(s)") and "--instances 2" in err and "Traceback" not in err
    broken = pkgmod.copy_with(pkgmod.read(digits_onnx_package), tmp_path / "broken")
    (broken.path / "model.onnx").write_bytes(b"not an onnx file")
    assert main(["serve", str(broken.path), "--port", port]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "onnxruntime cannot load" in err and "Traceback" not in err


@pytest.mark.parametrize("spin, entry", [(None, "1"), (False, "0"), (True, "1")])
def test_served_onnxruntime_engines_spin_as_configured(digits_onnx_package, spin, entry):
    """One-stream engines spin-wait by default (as cpuai bench measures them); --no-spin turns it off."""
    app = create_app(digits_onnx_package, ServeConfig(access_log=False, cores=2, spin=spin))
    with ServerThread(app) as url:
        engines = app.state.registry.get("digits").engines
        assert engines and all(e.backend == "onnxruntime" and e.spin is (entry == "1") for e in engines)
        entries = {
            s.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")
            for e in engines
            for s in e.sessions
        }
        assert entries == {entry}
        meta = httpx.get(url + "/v2/models/digits").json()
        assert meta["parameters"]["spin"] is (entry == "1")


def test_spin_and_split_settings_are_validated():
    with pytest.raises(ConfigError, match="spin must be True, False or None"):
        ServeConfig(spin="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="split must be True, False or None"):
        ServeConfig(split=1)  # type: ignore[arg-type]


class _RecordingTransport:
    """What the socket would be sent, write by write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 5)}.get(name, default)


def test_paired_writes_send_a_response_head_and_body_in_one_write():
    async def go():
        loop = asyncio.get_running_loop()
        real = _RecordingTransport()
        t = _PairedWrites(real, loop)  # type: ignore[arg-type]
        t.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        assert real.writes == []  # the head waits for its body
        t.write(memoryview(b"{}"))
        assert real.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
        t.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # a lone write goes out when the loop turns
        await asyncio.sleep(0)
        assert real.writes[-1] == b"HTTP/1.1 100 Continue\r\n\r\n" and len(real.writes) == 2
        t.write(b"last")
        t.close()  # closing sends what is held first
        assert real.writes[-1] == b"last" and real.closed
        assert t.get_extra_info("peername") == ("127.0.0.1", 5)  # the rest is the real transport's
        await asyncio.sleep(0)
        assert len(real.writes) == 3  # the scheduled flush found nothing left to send

    asyncio.run(go())


def test_server_uses_the_one_write_protocol():
    from cpuai.serve.server import uvicorn_config

    assert uvicorn_config(object(), "127.0.0.1", 8080).http is OneWriteHttpTools


def _form(*parts: tuple[str, str | None, bytes], boundary: str = "xYz") -> bytes:
    """A multipart/form-data body of (field name, filename or None, data) parts."""
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def test_multipart_first_item_takes_the_first_file_else_the_first_text():
    from cpuai.serve.multipart_form import first_item

    ctype = "multipart/form-data; boundary=xYz"
    image = bytes(range(256)) * 3 + b"\r\n--not-the-boundary\r\n"  # binary, with CRLFs and dashes inside
    body = _form(("note", None, b"ignored: a file comes later"), ("file", "d.png", image))
    assert first_item(body, ctype) == image
    assert first_item(_form(("a", None, b""), ("text", None, "héllo".encode())), ctype) == "héllo"
    assert first_item(_form(("f", "e.png", b"")), ctype) == b""  # an empty file is still the file
    quoted = 'multipart/form-data; boundary="xYz"'
    assert first_item(_form(("file", "d.png", b"abc")), quoted) == b"abc"


@pytest.mark.parametrize(
    ("body", "ctype", "message"),
    [
        (_form(("file", "d.png", b"abc")), "multipart/form-data", "no boundary"),
        (_form(("file", "d.png", b"abc"))[:-12], "multipart/form-data; boundary=xYz", "closing boundary"),
        (b"plain bytes, no parts at all", "multipart/form-data; boundary=xYz", "malformed"),
        (b"--xYz\r\nno colon here\r\n\r\nd\r\n--xYz--\r\n", "multipart/form-data; boundary=xYz", "malformed"),
        (b"--xYz--\r\n", "multipart/form-data; boundary=xYz", "no file and no text"),
        (_form(("note", None, b"  ")), "multipart/form-data; boundary=xYz", "no file and no text"),
        (_form(("note", None, b"\xff\xfe")), "multipart/form-data; boundary=xYz", "not UTF-8"),
    ],
)
def test_multipart_bad_forms_name_the_problem(body, ctype, message):
    from cpuai.errors import InvalidInput
    from cpuai.serve.multipart_form import first_item

    with pytest.raises(InvalidInput) as err:
        first_item(body, ctype)
    assert message in str(err.value) and err.value.fix
