"""The demo's summary, read back from the artifacts its steps left: manifests and JSON reports.

Nothing here is measured or remembered from the run itself, so the table always matches what is
on disk (a test checks the figures against the files).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cpuai import package as pkg

LABELS = {
    "trained": "PyTorch FP32",
    "digits-fp32-onnx": "ORT FP32",
    "digits-fp32-ir": "OpenVINO FP32",
    "digits-int8-onnx": "ORT INT8",
    "digits-int8-ir": "OpenVINO INT8",
}


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


def _rows_by_batch(comparison: list[dict[str, Any]], entry: int) -> dict[int, dict[str, Any]]:
    return {r["batch"]: r for r in comparison if r["entry"] == entry}


def model_rows(paths: Any) -> list[dict[str, Any]]:
    """One row per benchmarked package: accuracy (test split), latency, throughput, size, speed-ups."""
    from cpuai.demo import COMPARED

    bench = _load(paths.reports / "bench.json")
    comparison = bench["comparison"]
    rows = []
    for entry, name in enumerate(COMPARED):
        evaluation = _load(paths.reports / f"evaluate-{name}.json")
        b1 = _rows_by_batch(comparison, entry).get(1, {})
        b32 = _rows_by_batch(comparison, entry).get(32, {})
        result = bench["results"][entry]
        package = pkg.read(result["package_path"])
        rows.append(
            {
                "name": name,
                "label": LABELS[name],
                "backend": result["engine"]["backend"],
                "precision": result["engine"]["precision"],
                "path": str(package.path),
                "test_top1": evaluation["metrics"]["top1"],
                "p50_ms_b1": b1.get("median_ms"),
                "p99_ms_b1": b1.get("p99_ms"),
                "throughput_b32": b32.get("samples_per_s"),
                "size_mb": package.size_bytes() / 1e6,
                "latency_speedup_b1": b1.get("latency_speedup"),
                "throughput_speedup_b32": b32.get("throughput_ratio"),
            }
        )
    return rows


def summarize(paths: Any, settings: Any) -> dict[str, Any]:
    """Everything the final table and the next commands need, from the files in the work directory."""
    tune = _load(paths.reports / "tune.json")["tune"]
    minilm = pkg.read(paths.model("minilm-int8")).manifest
    minilm_fp32 = pkg.read(paths.model("minilm-fp32"))
    search = _load(paths.reports / "search.json")
    int8 = pkg.read(paths.model("digits-int8-ir"))
    sample = next(iter(sorted((paths.digits / "test").glob("*/*.png"))), None)
    return {
        "workdir": str(paths.root),
        "quick": settings.quick,
        "models": model_rows(paths),
        "tuned": {
            "path": str(int8.path),
            "deploy": int8.manifest.deploy.model_dump() if int8.manifest.deploy else None,
            "why": tune.get("why"),
        },
        "minilm": {
            "path": str(paths.model("minilm-int8")),
            "precision": minilm.precision,
            "metrics": minilm.metrics,
            "size_mb": pkg.read(paths.model("minilm-int8")).size_bytes() / 1e6,
            "fp32_size_mb": minilm_fp32.size_bytes() / 1e6,
        },
        "search": {"index": str(paths.index), "query": settings.query, "result": search},
        "next": next_commands(paths, sample),
    }


def next_commands(paths: Any, sample: Path | None) -> list[str]:
    """The exact commands to serve the tuned model and the index, and to call them with curl."""
    image = str(sample) if sample else "digit.png"
    return [
        f"cpuai serve {paths.model('digits-int8-ir')} --port 8080",
        f"curl -X POST http://127.0.0.1:8080/service -T {image}",
        f"cpuai serve {paths.index.parent} --port 8081",
        "curl -X POST http://127.0.0.1:8081/v1/indexes/docstrings/search -H 'content-type: application/json' "
        '-d \'{"text": "read a file line by line", "k": 3}\'',
    ]


def render(summary: dict[str, Any]) -> None:
    """Print the summary table and the next commands."""
    from cpuai.cli.output import console, fmt, table

    rows = [
        (
            r["label"],
            f"{r['test_top1']:.2%}",
            fmt(r["p50_ms_b1"]),
            fmt(r["p99_ms_b1"]),
            fmt(r["throughput_b32"]),
            f"{r['size_mb']:.2f}",
            f"{r['latency_speedup_b1']:.2f}x" if r["latency_speedup_b1"] else "-",
            f"{r['throughput_speedup_b32']:.2f}x" if r["throughput_speedup_b32"] else "-",
        )
        for r in summary["models"]
    ]
    console.print(
        table(
            "digits CNN (PyTorch = the trained TorchScript model; batch 1 latency, batch 32 throughput)",
            ["model", "top-1", "p50 ms", "p99 ms", "img/s", "MB", "lat. x", "thr. x"],
            rows,
        )
    )
    tuned = summary["tuned"]["deploy"] or {}
    console.print(
        f"tuned deployment of {summary['tuned']['path']}: {tuned.get('backend')} {tuned.get('precision')}, "
        f"{tuned.get('threads')} thread(s) x {tuned.get('streams')} stream(s), batch {tuned.get('batch')}",
        markup=False,
    )
    mini = summary["minilm"]
    shown = ", ".join(f"{k} {v:.4f}" for k, v in mini["metrics"].items() if isinstance(v, float))
    console.print(
        f"MiniLM text embeddings: {mini['precision']} package {mini['size_mb']:.1f} MB "
        f"(FP32 {mini['fp32_size_mb']:.1f} MB); {shown}",
        markup=False,
    )
    hits = summary["search"]["result"]
    console.print(f"semantic search for {summary['search']['query']!r}:", markup=False)
    for hit in hits.get("hits", hits if isinstance(hits, list) else [])[:3]:
        console.print(f"  {hit}", markup=False)
    console.print("next:", markup=False)
    for cmd in summary["next"]:
        console.print(f"  {cmd}", markup=False, soft_wrap=True)
