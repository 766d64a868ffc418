"""``cpuai predict PKG INPUT...``: run a package on images, a folder, texts, a text file or .npy arrays.

A thin layer over ``cpuai.runtime.load`` and the package's task; inputs are batched and a folder
shows a progress bar.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from cpuai.errors import ConfigError, InvalidInput


def register(app: typer.Typer) -> None:
    """Add the ``predict`` verb."""
    app.command("predict")(predict)


def gather(task_kind: str, inputs: list[str]) -> list[tuple[str, Any]]:
    """(name, item) pairs from the command-line inputs for a task kind."""
    import numpy as np

    from cpuai.data.imagefolder import IMAGE_SUFFIXES

    items: list[tuple[str, Any]] = []
    for raw in inputs:
        path = Path(raw)
        if task_kind == "text-embedding":
            if path.is_file() and path.suffix in (".txt", ".md"):
                lines = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()]
                items.extend((f"{path.name}:{i + 1}", ln) for i, ln in enumerate(lines) if ln)
            else:
                items.append((raw[:40], raw))
            continue
        if path.suffix == ".npy":
            if not path.is_file():
                raise InvalidInput(f"input file '{raw}' does not exist", fix="check the path")
            try:
                arr = np.load(path, allow_pickle=False)
            except (ValueError, OSError) as err:
                raise InvalidInput(
                    f"cannot read '{raw}' as a .npy array ({err})", fix="save it with np.save"
                ) from None
            items.extend((f"{path.name}[{i}]", a) for i, a in enumerate(arr))
        elif path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise InvalidInput(f"folder '{raw}' holds no images", fix="point at a folder of image files")
            items.extend((str(p.relative_to(path)), p) for p in files)
        elif path.is_file():
            items.append((path.name, path))
        else:
            raise InvalidInput(f"input '{raw}' is not a file or folder", fix="check the path")
    if not items:
        raise InvalidInput("no inputs to predict on", fix="pass image files, a folder, texts or a .npy file")
    return items


def predict(
    package: Path = typer.Argument(..., help="Model package directory."),
    inputs: list[str] = typer.Argument(..., help="Image files, a folder, texts / a .txt file, or .npy."),
    backend: str = typer.Option("auto", "--backend", help="auto, onnxruntime, openvino or torch."),
    top_k: int = typer.Option(5, "--top-k", help="Labels to show per image."),
    batch: int = typer.Option(32, "--batch", help="Items per batch."),
    threads: int | None = typer.Option(None, "--threads", help="Threads (default: the core budget)."),
    json_out: bool = typer.Option(False, "--json", help="Full results as JSON."),
) -> None:
    """Predict with a model package: top-k labels per image, or each text's embedding size and norm."""
    import numpy as np

    from cpuai import package as pkgmod
    from cpuai.cli.output import console, print_json, table
    from cpuai.runtime import load
    from cpuai.tasks import for_package
    from cpuai.tasks.batching import chunks

    if top_k < 1:
        raise ConfigError(f"--top-k must be >= 1, got {top_k}", fix="pass --top-k 1 or more")
    if batch < 1:
        raise ConfigError(f"--batch must be >= 1, got {batch}", fix="pass --batch 1 or more")
    pkg = pkgmod.read(package)
    task = for_package(pkg)
    items = gather(pkg.manifest.task, inputs)
    results: list[dict[str, Any]] = []
    show_progress = not json_out and any(Path(i).is_dir() for i in inputs)
    with load(pkg, backend=backend, threads=threads) as engine:
        from rich.progress import Progress

        with Progress(console=console, transient=True, disable=not show_progress) as progress:
            bar = progress.add_task("predicting", total=len(items))
            for part in chunks(items, batch):
                names = [n for n, _ in part]
                if pkg.manifest.task == "text-embedding":
                    vecs = task.embed(engine, [t for _, t in part], batch_size=batch)  # type: ignore[attr-defined]
                    for n, v in zip(names, vecs, strict=True):
                        results.append(
                            {
                                "input": n,
                                "dim": int(v.shape[0]),
                                "norm": float(np.linalg.norm(v)),
                                "embedding": v.tolist(),
                            }
                        )
                else:
                    feeds = task.preprocess([x for _, x in part])
                    answers = task.postprocess(engine.infer(feeds), top_k=top_k)
                    for n, a in zip(names, answers, strict=True):
                        results.append(
                            {"input": n, "predictions": a}
                            if isinstance(a, list)
                            else {"input": n, "outputs": {k: np.asarray(v).tolist() for k, v in a.items()}}
                            if isinstance(a, dict) and pkg.manifest.task == "generic"
                            else {"input": n, "prediction": a}
                        )
                progress.advance(bar, len(part))
        meta = {"package": str(pkg.path), "backend": engine.backend, "precision": engine.precision}
    if json_out:
        print_json({**meta, "results": results})
        return
    rows: list[tuple[object, ...]]
    if pkg.manifest.task == "text-embedding":
        rows = [(r["input"], r["dim"], round(r["norm"], 4)) for r in results]
        console.print(table(f"{pkg.manifest.name} on {meta['backend']}", ["input", "dim", "norm"], rows))
    elif results and "predictions" in results[0]:
        rows = [
            (
                r["input"],
                r["predictions"][0]["label"],
                round(r["predictions"][0]["score"], 4),
                ", ".join(f"{p['label']} {p['score']:.3f}" for p in r["predictions"][1:]),
            )
            for r in results
        ]
        console.print(
            table(f"{pkg.manifest.name} on {meta['backend']}", ["input", "label", "score", "next"], rows)
        )
    else:
        rows = [(r["input"], str(r.get("outputs", r.get("prediction")))[:60]) for r in results]
        console.print(table(f"{pkg.manifest.name} on {meta['backend']}", ["input", "result"], rows))
