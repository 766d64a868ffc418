"""Serving benchmark: cpuai serve (batching, spin on / off, per-core engines) vs FastAPI vs LitServe.

Models: all-MiniLM-L6-v2 (short real sentences from Python's docstrings, padded only to the longest
in a batch, never to max_length) and the digits SmallCNN (a real digit PNG, multipart upload; its
weights are untrained, which does not change its speed). Every server runs in its own process on
the same cpuai engine (ONNX Runtime, all cores), does the same work (decode, preprocess, infer,
postprocess) and is driven by the same closed-loop client (cpuai.serve.loadtest: keep-alive
connections, pre-encoded requests, httptools parsing, ~0.1-0.3 ms of CPU per request) at concurrency
1, 8, 32 and 128. Every server is measured twice, all of them forward and then in reverse order, each
time in a fresh process, and the better req/s of the two is kept per point (with its latencies).
The ceiling is the raw engine's batch-32 throughput on preprocessed inputs, with all cores on
one engine and with one 1-thread engine per core (what cpuai-percore serves); the sorted one is
measured again after the servers and the higher reading counts. cpuai-1core (MiniLM,
``--separate``) gives the engine one CPU to itself, the server's Python and the client the others,
at concurrency 32 and 128, and compares it with the same 1-thread engine's ceiling on that CPU
(measured before and after, the higher counting). The engine's batch-1 latency is measured at the
start and again just before every server's c=1 point (``LatencyProbe``: as many calls as that
point sends, 1 ms apart), so the c=1 p99 target is also read against the engine in the same minute.

    .venv/bin/python benchmarks/serve.py --quick     # ~100 requests per point
    .venv/bin/python benchmarks/serve.py             # 1000 requests per point

LitServe is benchmark-only: pip install litserve (never a cpuai dependency). Writes
benchmarks/results/serve.json and prints a table (req/s, p50, p99, ratio to the ceiling).
"""

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

HERE = Path(__file__).resolve().parent
CACHE = (
    Path(os.environ.get("CPUAI_BENCH_CACHE", Path.home() / ".cache" / "cpuai")) / "bench-serve"
)  # packages built once
RESULTS = HERE / "results" / "serve.json"
BOUNDARY = "cpuaibenchboundary"
SERVERS = ("cpuai-batch", "cpuai-nosplit", "cpuai-percore", "cpuai-nobatch", "fastapi", "litserve")
# also: cpuai-nospin (`--no-spin`), measured in earlier runs (docs/benchmarks.md)


# -- inputs --------------------------------------------------------------------------------------


def sentences(n: int = 200) -> list[str]:
    """Short real sentences: first sentences of Python docstrings, 20-160 characters."""
    from cpuai.data.docstrings import docstrings

    texts = [t.split(". ")[0].strip() for t in docstrings(limit=2000, seed=0)]
    return [t for t in texts if 20 <= len(t) <= 160][:n]


def digit_png() -> bytes:
    from PIL import Image
    from sklearn.datasets import load_digits

    img = load_digits().images[0] / 16.0
    img = np.kron(img, np.ones((4, 4)))
    buf = io.BytesIO()
    Image.fromarray(np.round(img * 255).astype(np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def multipart(data: bytes) -> bytes:
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="d.png"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


def packages() -> dict[str, Path]:
    """The two packages, built once into ~/.cache/cpuai/bench-serve (or $CPUAI_BENCH_CACHE)."""
    import torch

    from cpuai.convert import convert
    from cpuai.models import minilm
    from cpuai.models.smallcnn import smallcnn

    CACHE.mkdir(parents=True, exist_ok=True)
    text = CACHE / "minilm"
    if not (text / "model.yaml").exists():
        minilm.export(text, max_length=128)
    digits = CACHE / "digits"
    if not (digits / "model.yaml").exists():
        torch.manual_seed(0)
        convert(
            smallcnn(num_classes=10, in_channels=1, width=8).eval(),
            to="onnx",
            out=digits,
            name="digits",
            input_shapes={"input": (1, 1, 32, 32)},
            output_names=["logits"],
            manifest={
                "task": "image-classification",
                "preprocessing": {"image": {"size": [32, 32], "color": "gray"}},
                "labels": [str(i) for i in range(10)],
            },
        )
    return {"minilm": text, "digits": digits}


# -- the servers (each runs in its own process: `serve.py --worker KIND --model DIR --port P`) ----


def _work(task: Any, kind: str, item: Any) -> dict[str, np.ndarray]:
    return task.preprocess([item])


def _answer(task: Any, kind: str, outputs: dict[str, np.ndarray], feeds: dict[str, np.ndarray]) -> Any:
    if kind == "text-embedding":
        return task.postprocess(outputs, feeds=feeds)
    return task.postprocess(outputs, top_k=5)


def _pad_concat(feeds: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    out = {}
    for name in feeds[0]:
        parts = [f[name] for f in feeds]
        if parts[0].ndim == 2:
            longest = max(p.shape[1] for p in parts)
            parts = [np.pad(p, ((0, 0), (0, longest - p.shape[1]))) for p in parts]
        out[name] = np.concatenate(parts)
    return out


def engine_cpu() -> int:
    """The CPU that cpuai-1core gives its engine (the last one this process may use)."""
    return max(os.sched_getaffinity(0))


def _place_threads(cpu: int) -> None:
    """In a cpuai-1core server: batch threads (the engine) on ``cpu``, every other thread off it.

    Batch threads start with the first batch, so the placement is refreshed every half second.
    """
    others = os.sched_getaffinity(0) - {cpu}
    while True:
        batch = {t.native_id for t in threading.enumerate() if t.name.startswith("cpuai-batch")}
        for tid in map(int, os.listdir("/proc/self/task")):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, {cpu} if tid in batch else others)
        time.sleep(0.5)


def _ceiling_on(cpu: int, model_dir: Path, env: dict[str, str]) -> dict[str, Any]:
    """The 1-thread engine's ceiling on ``cpu``, in a fresh process pinned there."""
    return json.loads(
        subprocess.run(
            [sys.executable, __file__, "--ceiling-on", str(cpu), "--model", str(model_dir), "--rounds", "40"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()[-1]
    )


def separate_cores(model_dir: Path, payload: Any, n: int, rounds: int, levels: list[int]) -> dict[str, Any]:
    """cpuai serve with one core for its engine and the rest for its Python and the load generator.

    On a machine this small the load generator and the server's Python otherwise run on the
    engine's cores; here the engine runs alone on one CPU, as it would on a machine with cores to
    spare, and is compared with the same 1-thread engine's ceiling on that CPU, measured before
    and after the server (the higher of the two counts: the VM drifts over minutes).
    """
    from cpuai.serve.loadtest import run

    cpu = engine_cpu()
    one_core = dict(os.environ, CPUAI_CORES="1")  # the ceiling's engine and the server see one core
    before = _ceiling_on(cpu, model_dir, one_core)
    proc, url = start_server("cpuai-1core", model_dir, one_core)
    client_before = os.sched_getaffinity(0)
    passes: dict[str, list[dict[str, Any]]] = {str(c): [] for c in levels}
    try:
        run(url, payload, concurrency=32, requests=400, duration=60, warmup=20)  # batch threads start
        os.sched_setaffinity(0, client_before - {cpu})
        for _ in range(rounds):  # levels interleaved, so drift does not favour one
            for c in levels:
                r = run(url, payload, concurrency=c, requests=max(n, 8 * c), duration=120, warmup=c)
                passes[str(c)].append(r.as_dict())
    finally:
        os.sched_setaffinity(0, client_before)
        stop_server(proc)
    after = _ceiling_on(cpu, model_dir, one_core)
    ceil = max(before["rows_per_s"], after["rows_per_s"])
    live = max(before.get("live_mix_rows_per_s") or 0.0, after.get("live_mix_rows_per_s") or 0.0)
    best = {c: max(ps, key=lambda r: r["rps"]) for c, ps in passes.items()}
    top = str(max(levels))
    return {
        "engine_cpu": cpu,
        "ceiling": before,
        "ceiling_after": after,
        "ceiling_rows_per_s": ceil,
        "rps_per_pass": {c: [r["rps"] for r in ps] for c, ps in passes.items()},
        "best": best,
        "vs_ceiling": {c: b["rps"] / ceil for c, b in best.items()},
        "vs_live_mix": {c: b["rps"] / live for c, b in best.items()} if live else None,
        "saturation_vs_ceiling": best[top]["rps"] / ceil,
    }


def worker(kind: str, model_dir: Path, port: int) -> None:
    from cpuai import package as pkgmod

    pkg = pkgmod.read(model_dir)
    task_kind = pkg.manifest.task
    if kind.startswith("cpuai"):
        from cpuai.hardware import core_budget
        from cpuai.serve import ServeConfig, create_app, run

        if kind == "cpuai-1core":  # the engine alone on the last CPU, Python and client on the others
            threading.Thread(target=_place_threads, args=(engine_cpu(),), daemon=True).start()
        cfg = ServeConfig(
            max_batch=1 if kind == "cpuai-nobatch" else 32,
            max_delay_ms=5,
            access_log=False,
            max_queue=4096,
            spin=False if kind == "cpuai-nospin" else None,  # cpuai-nospin: `cpuai serve --no-spin`
            split=False if kind == "cpuai-nosplit" else None,  # `--no-split`: one all-core engine
            # cpuai-percore: `cpuai serve --instances N --threads 1`, one engine per core
            instances=core_budget() if kind == "cpuai-percore" else None,
            threads=1 if kind == "cpuai-percore" else None,
        )
        run(create_app(model_dir, cfg), host="127.0.0.1", port=port)
        return

    from cpuai.runtime import load
    from cpuai.tasks import for_package

    if kind == "fastapi":
        import uvicorn
        from fastapi import FastAPI, Request
        from starlette.concurrency import run_in_threadpool

        engine, task = load(pkg), for_package(pkg)
        app = FastAPI()

        def handle(item: Any) -> Any:
            feeds = task.preprocess([item])
            return _answer(task, task_kind, engine.infer(feeds), feeds)[0]

        @app.post("/predict")
        async def predict(request: Request) -> Any:
            if task_kind == "text-embedding":
                item = (await request.json())["text"]
            else:
                item = await (await request.form())["file"].read()
            return await run_in_threadpool(handle, item)

        @app.get("/health")
        async def health() -> str:
            return "ok"

        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
        return

    import litserve as ls

    server = ls.LitServer(
        LitEngineApi(str(model_dir), max_batch_size=32, batch_timeout=0.005),
        accelerator="cpu",
        workers_per_device=1,
        track_requests=False,
    )
    server.run(
        host="127.0.0.1", port=port, num_api_servers=1, log_level="warning", generate_client_file=False
    )


try:  # LitServe is installed only in the benchmark's environment; its API class must be importable (spawn)
    import litserve as _ls

    class LitEngineApi(_ls.LitAPI):
        """LitServe's batching over the same cpuai engine and task as every other server here."""

        def __init__(self, model_dir: str, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.model_dir = model_dir

        def setup(self, device: str) -> None:
            from cpuai import package as pkgmod
            from cpuai.runtime import load
            from cpuai.tasks import for_package

            pkg = pkgmod.read(self.model_dir)
            self.kind = pkg.manifest.task
            self.engine, self.task = load(pkg), for_package(pkg)

        def decode_request(self, request):  # unannotated: LitServe then passes the parsed JSON or form
            """One request to its preprocessed tensors."""
            if self.kind == "text-embedding":
                return self.task.preprocess([request["text"]])
            return self.task.preprocess([request["file"].file.read()])

        def batch(self, inputs: list[Any]) -> Any:
            return _pad_concat(inputs)

        def predict(self, x: Any) -> Any:
            return self.engine.infer(x), x

        def unbatch(self, output: Any) -> list[Any]:
            outputs, feeds = output
            return _answer(self.task, self.kind, outputs, feeds)

        def encode_response(self, output: Any) -> Any:
            return output if isinstance(output, dict) else {"predictions": output}

except ImportError:  # pragma: no cover - the benchmark reports litserve as skipped
    LitEngineApi = None  # type: ignore[assignment,misc]


# -- measuring ----------------------------------------------------------------------------------


def sorted_batches(task: Any, items: list[Any], text: bool) -> list[dict[str, np.ndarray]]:
    """The ceiling's batches of 32 (texts length-sorted first, as the server's grouping aims for)."""
    if text:
        items = sorted(items, key=lambda t: len(task.tokenizer.encode(t).ids))
    return [task.preprocess(items[i : i + 32]) for i in range(0, len(items) - 31, 32)] or [
        task.preprocess(items)
    ]


def batch_rows_per_s(engine: Any, batches: list[dict[str, np.ndarray]], rounds: int) -> tuple[float, float]:
    """Rows/s and CPU ms per row of ``engine`` going through ``batches`` (after two warm-up calls)."""
    for f in batches[:2]:
        engine.infer(f)
    start, cpu, rows = time.perf_counter(), time.process_time(), 0
    for r in range(max(rounds, len(batches))):
        f = batches[r % len(batches)]
        engine.infer(f)
        rows += len(next(iter(f.values())))
    return rows / (time.perf_counter() - start), (time.process_time() - cpu) * 1e3 / rows


def ceiling_again(model_dir: Path, items: list[Any], rounds: int) -> float:
    """The sorted batch-32 ceiling once more, after the servers: rows/s."""
    from cpuai import package as pkgmod
    from cpuai.runtime import load
    from cpuai.tasks import for_package

    pkg = pkgmod.read(model_dir)
    engine, task = load(pkg), for_package(pkg)
    try:
        return batch_rows_per_s(
            engine, sorted_batches(task, items, pkg.manifest.task == "text-embedding"), rounds
        )[0]
    finally:
        engine.close()


def ceiling(model_dir: Path, items: list[Any], rounds: int) -> dict[str, float]:
    """The raw engine: batch-32 rows/s on preprocessed inputs, and batch-1 latency (p50/p99, ms)."""
    from cpuai import package as pkgmod
    from cpuai.runtime import load
    from cpuai.tasks import for_package

    pkg = pkgmod.read(model_dir)
    engine, task = load(pkg), for_package(pkg)
    text = pkg.manifest.task == "text-embedding"
    batches = sorted_batches(task, items, text)
    # batch-1 latency over exactly the items the clients send, each once per round (same length mix)
    singles = [task.preprocess([it]) for it in items]
    for f in singles[:5]:
        engine.infer(f)
    rps, cpu_ms_per_row = batch_rows_per_s(engine, batches, rounds)
    live = live_mix_rows_per_s(engine, task, items, rounds) if text else None
    grouping = grouping_rows_per_s(engine, task, items, rounds) if text else None
    latency = batch1_latency(engine, singles, rounds * 4)
    engine.close()
    per_core = per_core_rows_per_s(pkg, batches, rounds)
    # the server's batch mix on one 1-thread engine per core: what its split engines run under load
    live_per_core = per_core_rows_per_s(pkg, live_batches(task, items, rounds), 0) if text else None
    return {
        "rows_per_s": rps,
        "cpu_ms_per_row": cpu_ms_per_row,
        "per_core_rows_per_s": per_core,
        **(
            {
                "live_mix_rows_per_s": live,
                "live_mix_per_core_rows_per_s": live_per_core,
                "grouping_rows_per_s": grouping,
            }
            if live
            else {}
        ),
        **latency,
    }


def batch1_latency(
    engine: Any, singles: list[dict[str, np.ndarray]], calls: int, gap_s: float = 0.0
) -> dict[str, float]:
    """p50/p99 (ms) of at least ``calls`` batch-1 runs, the items in turn (each once per round),
    ``gap_s`` apart (0: back to back)."""
    lat = []
    for r in range(max(len(singles), calls)):
        if gap_s:
            time.sleep(gap_s)
        t = time.perf_counter()
        engine.infer(singles[r % len(singles)])
        lat.append((time.perf_counter() - t) * 1e3)
    return {"p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99))}


def per_core_rows_per_s(pkg: Any, batches: list[dict[str, np.ndarray]], rounds: int) -> float:
    """One 1-thread engine per core, each running the same batch-32 batches in its own thread: the
    engine's ceiling when the cores work on separate batches, as ``--instances N --threads 1`` serves."""
    from concurrent.futures import ThreadPoolExecutor

    from cpuai.hardware import core_budget
    from cpuai.runtime import load

    cores = core_budget()
    engines = [load(pkg, threads=1) for _ in range(cores)]
    for e in engines:
        e.infer(batches[0])
    each = max(1, max(rounds, len(batches)) // cores)

    def drive(i: int) -> int:
        rows = 0
        for r in range(each):
            f = batches[(r * cores + i) % len(batches)]
            engines[i].infer(f)
            rows += len(next(iter(f.values())))
        return rows

    start = time.perf_counter()
    with ThreadPoolExecutor(cores) as pool:
        rows = sum(pool.map(drive, range(cores)))
    rps = rows / (time.perf_counter() - start)
    for e in engines:
        e.close()
    return rps


def _buckets(width: int) -> Any:
    """Group by token length in buckets of ``width`` tokens (the server's rule with LENGTH_BUCKET)."""

    def group(window: list[str], lengths: dict[str, int]) -> list[list[str]]:
        out: dict[int, list[str]] = {}
        for t in window:
            out.setdefault(-(-lengths[t] // width), []).append(t)
        return list(out.values())

    return group


def _ratio(limit: float) -> Any:
    """Sort by length; start a new group when a text is over ``limit`` x its group's shortest."""

    def group(window: list[str], lengths: dict[str, int]) -> list[list[str]]:
        out: list[list[str]] = []
        for t in sorted(window, key=lengths.__getitem__):
            if out and lengths[t] <= limit * lengths[out[-1][0]]:
                out[-1].append(t)
            else:
                out.append([t])
        return out

    return group


def _chunks(size: int) -> Any:
    """Sort by length and cut into batches of ``size`` (padding to each batch's longest)."""

    def group(window: list[str], lengths: dict[str, int]) -> list[list[str]]:
        ordered = sorted(window, key=lengths.__getitem__)
        return [ordered[i : i + size] for i in range(0, len(ordered), size)]

    return group


def live_batches(
    task: Any, items: list[str], rounds: int, window: int = 32, group: Any = None
) -> list[dict[str, np.ndarray]]:
    """The batches a server can form: ``window`` random live requests at a time, grouped by
    ``group`` (default: the server's own length buckets), padded to each group's longest."""
    import random

    from cpuai.serve.model import LENGTH_BUCKET

    group = group or _buckets(LENGTH_BUCKET)
    rng = random.Random(0)
    lengths = {t: len(task.tokenizer.encode(t).ids) for t in items}
    groups: list[list[str]] = []
    for _ in range(max(4, rounds // 2)):
        groups.extend(group(rng.sample(items, min(window, len(items))), lengths))
    return [task.preprocess(g) for g in groups]


def live_mix_rows_per_s(engine: Any, task: Any, items: list[str], rounds: int, group: Any = None) -> float:
    """The engine on the server's batch mix (``live_batches``).

    The batch-32 ceiling sorts every sentence by length first, which no server sees; this is the
    same engine on the server's batch mix, so the gap between the two is the grouping's, not HTTP's.
    """
    batches = live_batches(task, items, rounds, group=group)
    engine.infer(batches[0])
    start = time.perf_counter()
    for f in batches:
        engine.infer(f)
    return sum(len(next(iter(f.values()))) for f in batches) / (time.perf_counter() - start)


#: Ways to batch 32 requests in flight: does any beat the server's buckets? (the ceiling's sorted
#: batches of 32 need every sentence at once, which a server with 32 requests in flight never has)
GROUPINGS = {
    "buckets of 4 tokens (the server)": _buckets(4),
    "buckets of 8 tokens": _buckets(8),
    "length ratio <= 1.25": _ratio(1.25),
    "length ratio <= 1.5": _ratio(1.5),
    "length ratio <= 2": _ratio(2.0),
    "sorted, batches of 16": _chunks(16),
    "all 32 as one batch": _chunks(32),
}


def grouping_rows_per_s(engine: Any, task: Any, items: list[str], rounds: int) -> dict[str, float]:
    """Each grouping in GROUPINGS on the same random windows of 32, best of two rounds (forward,
    then reverse order, so no grouping always runs first: with a fixed order the first one read
    5-9 % below its figure in an interleaved test)."""
    out: dict[str, float] = {}
    for order in (list(GROUPINGS.items()), list(reversed(GROUPINGS.items()))):
        for name, group in order:
            rps = live_mix_rows_per_s(engine, task, items, rounds, group=group)
            out[name] = max(out.get(name, 0.0), rps)
    return out


def start_server(
    kind: str, model_dir: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, str]:
    import httpx

    from cpuai.serve import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--worker", kind, "--model", str(model_dir), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its own process group, so LitServe's worker processes stop with it
    )
    health = "/health" if kind in ("fastapi", "litserve") else "/v2/health/ready"
    for _ in range(1200):
        if proc.poll() is not None:
            raise RuntimeError(f"{kind} server exited: {proc.stderr.read()[-2000:] if proc.stderr else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{health}", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    path = "/service" if kind.startswith("cpuai") else "/predict"
    return proc, f"http://127.0.0.1:{port}{path}"


class ServerSkipped(RuntimeError):
    """A server could not start (e.g. LitServe is not installed in this environment)."""


class LatencyProbe:
    """The engine's own batch-1 latency, measured again just before each server's c=1 point.

    The VM's latency drifts over minutes (its p99 doubles in a busy phase), and it stalls in bursts
    (runs of 3-9 ms hiccups within 100-200 ms, seen alike in every server), so a p99 depends on how
    long it was sampled. The probe therefore runs the engine as often as the server is asked at c=1
    (``calls``), paced by ``gap_s`` between calls like requests arriving one after another, in the
    same minute as the server; the reading taken once before every server is kept too.
    """

    def __init__(self, model_dir: Path, items: list[Any]) -> None:
        from cpuai import package as pkgmod
        from cpuai.runtime import load
        from cpuai.tasks import for_package

        pkg = pkgmod.read(model_dir)
        self.engine, task = load(pkg), for_package(pkg)
        self.singles = [task.preprocess([it]) for it in items]

    def measure(self, calls: int, gap_s: float = 0.001) -> dict[str, float]:
        """p50/p99 (ms) of ``calls`` batch-1 runs over the clients' items, ``gap_s`` apart."""
        for f in self.singles[:5]:
            self.engine.infer(f)
        return batch1_latency(self.engine, self.singles, calls, gap_s)

    def close(self) -> None:
        self.engine.close()


def measure_server(
    kind: str,
    model_dir: Path,
    payload: Any,
    levels: list[int],
    n: int,
    probe: LatencyProbe | None = None,
) -> dict[str, Any]:
    """Start one server, drive it at each concurrency, stop it; req/s, latency and CPU per point.

    With ``probe``, the engine's batch-1 latency is measured again just before the c=1 point (the
    server idle) and kept in that point as ``engine_p50_ms`` / ``engine_p99_ms``.
    """
    from cpuai.serve.loadtest import run

    try:
        proc, url = start_server(kind, model_dir)
    except Exception as err:
        raise ServerSkipped(str(err)) from None
    points: dict[str, Any] = {}
    try:
        for c in levels:
            paired = probe.measure(max(n, 4 * c)) if probe is not None and c == 1 else {}
            # CPU per request of the server and of the client (this process), warm-up included
            server_cpu, client_cpu = cpu_seconds(proc.pid), time.process_time()
            warmup = min(20, n // 5)
            r = run(url, payload, concurrency=c, requests=max(n, 4 * c), duration=120, warmup=warmup)
            sent = max(1, r.requests + warmup)
            point = points[str(c)] = {
                **r.as_dict(),
                **{f"engine_{k}": v for k, v in paired.items()},
                "server_cpu_ms_per_req": (cpu_seconds(proc.pid) - server_cpu) * 1e3 / sent,
                "client_cpu_ms_per_req": (time.process_time() - client_cpu) * 1e3 / sent,
            }
            print(
                f"  {kind:14s} c={c:<3d} {r.rps:8.1f} req/s  p50 {r.p50_ms:7.2f} ms  p99 {r.p99_ms:7.2f} ms"
                f"  errors {sum(r.errors.values())}  cpu/req server {point['server_cpu_ms_per_req']:.2f} ms"
                f" client {point['client_cpu_ms_per_req']:.2f} ms"
                + (
                    f"  (engine alone just before: p50 {paired['p50_ms']:.2f} p99 {paired['p99_ms']:.2f} ms)"
                    if paired
                    else ""
                ),
                flush=True,
            )
    finally:
        stop_server(proc)
    return points


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a server process and its children (LitServe forks workers)."""
    import psutil

    try:
        procs = [psutil.Process(pid)]
        procs += procs[0].children(recursive=True)
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM the server's whole process group (LitServe forks workers), then SIGKILL if it lingers."""
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def summarise(results: dict[str, Any], levels: list[int]) -> dict[str, dict[str, float]]:
    """The issue's targets as ratios: saturation vs the ceiling and vs LitServe, c=1 p99 overhead."""
    out: dict[str, dict[str, float]] = {}
    top, low = str(max(levels)), str(min(levels))
    for model, entry in results["models"].items():
        servers = entry["servers"]

        def best(kind: str, servers: dict[str, Any] = servers) -> float | None:
            points = servers.get(kind, {})
            return max(
                (p["rps"] for p in points.values() if isinstance(p, dict) and "rps" in p), default=None
            )

        fig: dict[str, float] = {}
        ours = best("cpuai-batch")
        if ours:
            # the higher of the ceiling's readings before and after the servers
            top_ceiling = max(entry["ceiling"]["rows_per_s"], entry["ceiling"].get("rows_per_s_after", 0.0))
            fig["cpuai_batch_saturation_vs_ceiling"] = ours / top_ceiling
            if entry["ceiling"].get("live_mix_rows_per_s"):
                fig["cpuai_batch_saturation_vs_live_mix"] = ours / entry["ceiling"]["live_mix_rows_per_s"]
                # the same mix on per-core engines, which the default server runs under load
                fig["cpuai_batch_saturation_vs_live_mix_per_core"] = (
                    ours / entry["ceiling"]["live_mix_per_core_rows_per_s"]
                )
            if entry["ceiling"].get("grouping_rows_per_s"):
                # the most any server could reach with 32 requests in flight: the best grouping
                best_group = max(entry["ceiling"]["grouping_rows_per_s"].values())
                fig["best_grouping_of_32_vs_ceiling"] = best_group / entry["ceiling"]["rows_per_s"]
            mine = best("cpuai-percore")
            if mine and entry["ceiling"].get("per_core_rows_per_s"):
                # one engine per core, server and ceiling alike; and the best deployment of each
                per_core = entry["ceiling"]["per_core_rows_per_s"]
                fig["cpuai_percore_saturation_vs_per_core_ceiling"] = mine / per_core
                fig["best_cpuai_vs_best_ceiling"] = max(ours, mine) / max(per_core, top_ceiling)
            for other in (
                "litserve",
                "fastapi",
                "cpuai-nobatch",
                "cpuai-nospin",
                "cpuai-nosplit",
                "cpuai-percore",
            ):
                if best(other):
                    fig[f"cpuai_batch_vs_{other.replace('-', '_')}"] = ours / best(other)
            c1 = servers["cpuai-batch"].get(low)
            if c1:
                fig["c1_p99_minus_engine_p50_ms"] = c1["p99_ms"] - entry["ceiling"]["p50_ms"]
                fig["c1_p99_minus_engine_p99_ms"] = c1["p99_ms"] - entry["ceiling"]["p99_ms"]
                fig["c1_p50_minus_engine_p50_ms"] = c1["p50_ms"] - entry["ceiling"]["p50_ms"]
                if "engine_p99_ms" in c1:  # against the engine measured just before that point
                    fig["c1_p99_minus_paired_engine_p99_ms"] = c1["p99_ms"] - c1["engine_p99_ms"]
                    fig["c1_p50_minus_paired_engine_p50_ms"] = c1["p50_ms"] - c1["engine_p50_ms"]
            sat = servers["cpuai-batch"].get(top)
            if sat and "server_cpu_ms_per_req" in sat:
                # CPU per request at saturation: the server's (engine threads included, spinning
                # counted) against the raw engine's per row, and how much of it the client takes
                spent = sat["server_cpu_ms_per_req"] + sat["client_cpu_ms_per_req"]
                fig["server_cpu_ms_per_req_at_saturation"] = sat["server_cpu_ms_per_req"]
                fig["engine_cpu_ms_per_row_in_ceiling"] = entry["ceiling"]["cpu_ms_per_row"]
                fig["client_cpu_share_at_saturation"] = sat["client_cpu_ms_per_req"] / spent
            if sat and "cpuai-nobatch" in servers and top in servers["cpuai-nobatch"]:
                fig[f"batch_vs_nobatch_at_c{top}"] = sat["rps"] / servers["cpuai-nobatch"][top]["rps"]
        sep = entry.get("separate_cores")
        if sep and "saturation_vs_ceiling" in sep:
            fig["cpuai_1core_saturation_vs_ceiling"] = sep["saturation_vs_ceiling"]
        fig["requests_all_passes"] = sum(
            p["requests"] for runs in entry.get("passes", {}).values() for one in runs for p in one.values()
        )
        fig["errors_all_passes"] = sum(
            sum(p["errors"].values())
            for runs in entry.get("passes", {}).values()
            for one in runs
            for p in one.values()
        )
        out[model] = fig
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--quick", action="store_true", help="~100 requests per point (minutes, not tens of them)"
    )
    ap.add_argument("--models", default="minilm,digits")
    ap.add_argument("--servers", default=",".join(SERVERS))
    ap.add_argument("--concurrency", default="1,8,32,128")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument(
        "--separate",
        default="minilm",
        help="models also measured with the engine alone on one CPU (cpuai-1core; '' for none)",
    )
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--ceiling-on", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--rounds", type=int, default=40, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, Path(args.model), args.port)
        return
    if args.ceiling_on is not None:  # the 1-thread engine's ceiling, pinned to that CPU
        os.sched_setaffinity(0, {args.ceiling_on})
        from cpuai import package as pkgmod

        text = pkgmod.read(args.model).manifest.task == "text-embedding"
        work = sentences() if text else [digit_png()] * 128
        print(json.dumps(ceiling(Path(args.model), work, rounds=args.rounds)))
        return

    from cpuai.hardware import core_budget
    from cpuai.serve.loadtest import Payload

    n = 100 if args.quick else 1000
    levels = [int(c) for c in args.concurrency.split(",")]
    paths = packages()
    texts = sentences()
    png = digit_png()
    results: dict[str, Any] = {
        "quick": args.quick,
        "cores": core_budget(),
        "requests_per_point": n,
        "models": {},
    }
    rows = []
    for model in args.models.split(","):
        if model == "minilm":
            payload = Payload(
                bodies=[json.dumps({"text": t}).encode() for t in texts], content_type="application/json"
            )
            items: list[Any] = texts
        else:
            payload = Payload(body=multipart(png), content_type=f"multipart/form-data; boundary={BOUNDARY}")
            items = [png] * 128
        ceil = ceiling(paths[model], items, rounds=20 if args.quick else 100)
        entry: dict[str, Any] = {"ceiling": ceil, "servers": {}}
        print(
            f"{model}: engine ceiling {ceil['rows_per_s']:.0f} rows/s (batch 32), batch-1 latency "
            f"p50 {ceil['p50_ms']:.2f} ms p99 {ceil['p99_ms']:.2f} ms; one 1-thread engine per core "
            f"{ceil['per_core_rows_per_s']:.0f} rows/s"
            + (
                f"; on the server's live batch mix {ceil['live_mix_rows_per_s']:.0f} rows/s "
                f"({ceil['live_mix_per_core_rows_per_s']:.0f} on per-core engines)"
                if "live_mix_rows_per_s" in ceil
                else ""
            ),
            flush=True,
        )
        for name, rps in (ceil.get("grouping_rows_per_s") or {}).items():
            print(f"  32 in flight, {name}: {rps:.0f} rows/s ({rps / ceil['rows_per_s']:.2f}x ceiling)")
        kinds = args.servers.split(",")
        passes: dict[str, list[dict[str, Any]]] = {}
        probe = LatencyProbe(paths[model], items) if 1 in levels else None
        # every server twice, forward then reverse order, each time in a fresh process: the VM
        # drifts over minutes, and a single sequential pass credits whoever ran in a quiet spell
        for order in (kinds, kinds[::-1]):
            for kind in order:
                if "skipped" in entry["servers"].get(kind, {}):
                    continue
                try:
                    point = measure_server(kind, paths[model], payload, levels, n, probe)
                    passes.setdefault(kind, []).append(point)
                except ServerSkipped as err:  # e.g. litserve not installed
                    print(f"  {kind}: skipped ({err})", flush=True)
                    entry["servers"][kind] = {"skipped": str(err)[:300]}
                    passes.pop(kind, None)
        if probe is not None:
            probe.close()
        # the ceiling again after the servers, minutes later: the higher reading is the one used
        entry["ceiling"]["rows_per_s_after"] = ceiling_again(
            paths[model], items, rounds=20 if args.quick else 100
        )
        print(
            f"{model}: engine ceiling after the servers {entry['ceiling']['rows_per_s_after']:.0f} rows/s",
            flush=True,
        )
        top_ceiling = max(ceil["rows_per_s"], ceil["rows_per_s_after"])
        for kind in kinds:
            if kind not in passes:
                continue
            best = {str(c): max((p[str(c)] for p in passes[kind]), key=lambda x: x["rps"]) for c in levels}
            entry["servers"][kind] = best
            for c in levels:
                b = best[str(c)]
                rows.append(
                    (
                        model,
                        kind,
                        c,
                        b["rps"],
                        b["p50_ms"],
                        b["p99_ms"],
                        b["rps"] / top_ceiling,
                        sum(b["errors"].values()),
                    )
                )
        entry["passes"] = passes
        if model in args.separate.split(",") and len(os.sched_getaffinity(0)) >= 2:
            loaded = [c for c in levels if c >= 32] or [max(levels)]
            sep = separate_cores(paths[model], payload, n * 2, 2 if args.quick else 3, loaded)
            entry["separate_cores"] = sep
            print(
                f"  cpuai-1core (engine alone on CPU {sep['engine_cpu']}, Python and client on the others), "
                f"its 1-thread ceiling {sep['ceiling_rows_per_s']:.0f} rows/s (best of before/after):",
                flush=True,
            )
            for c, b in sep["best"].items():
                print(
                    f"    c={c}: {b['rps']:.1f} req/s = {sep['vs_ceiling'][c]:.2f}x the ceiling"
                    + (f", {sep['vs_live_mix'][c]:.2f}x its live mix" if sep["vs_live_mix"] else ""),
                    flush=True,
                )
        results["models"][model] = entry
    print()
    head = ["model", "server", "conc", "req/s", "p50 ms", "p99 ms", "x ceiling", "errors"]
    print(" ".join(f"{h:>10s}" for h in head))
    for m, k, c, rps, p50, p99, ratio, err in rows:
        print(f"{m:>10s} {k:>14s} {c:6d} {rps:10.1f} {p50:10.2f} {p99:10.2f} {ratio:10.2f} {err:10d}")
    results["summary"] = summarise(results, levels)
    print("\nsummary (ratios):")
    for model, figures in results["summary"].items():
        print(f"  {model}: " + ", ".join(f"{k} {v:.2f}" for k, v in figures.items()))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
