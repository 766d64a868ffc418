"""The end every conversion shares: open the result, check it against the source, write the package."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cpuai import package as pkgmod
from cpuai.convert.agreement import Agreement, compare
from cpuai.convert.inputs import InputPlan
from cpuai.convert.sources import Source
from cpuai.errors import ModelError

log = logging.getLogger("cpuai.convert")

Reference = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def open_engine(path: Path, backend: str, precision: str = "fp32") -> Any:
    """An ONNX Runtime or OpenVINO engine on ``path`` with cpuai's core budget and one stream."""
    from cpuai.hardware import core_budget

    threads = core_budget()
    if backend == "onnxruntime":
        from cpuai.runtime.onnxruntime import OnnxRuntimeEngine

        return OnnxRuntimeEngine(path, threads=threads, streams=1)
    from cpuai.runtime.openvino import OpenVinoEngine

    return OpenVinoEngine(path, threads=threads, streams=1, package_precision=precision)


def check_agreement(
    reference: Reference,
    engine: Any,
    plan: InputPlan,
    *,
    to: str,
    tolerance: float,
    batch: int,
    label: str,
    versus: str = "the source",
) -> Agreement:
    """Run source and result on one deterministic batch; ModelError when they diverge (engine closed)."""
    feeds = plan.sample(batch=batch, seed=1)
    try:
        agreement = compare(reference(feeds), engine.infer(feeds), tolerance=tolerance, batch=batch)
    finally:
        engine.close()
    if not agreement.ok:
        raise ModelError(
            f"the {to} model diverges from {versus}: max relative error {agreement.max_rel:.3g} "
            f"(max abs {agreement.max_abs:.3g}) is above the tolerance {tolerance:g}",
            fix="check the model for ops that do not convert, or pass a larger --tolerance knowingly",
        )
    log.debug(
        "converted %s -> %s: max abs error %.3g, max rel error %.3g",
        label,
        to,
        agreement.max_abs,
        agreement.max_rel,
    )
    return agreement


def merge_layouts(new: list[Any], old: Sequence[Any]) -> list[Any]:
    """Keep the source's declared layouts (NCHW, NC) on same-named converted tensors."""
    by_name = {s.name: s for s in old}
    for s in new:
        if s.name in by_name and by_name[s.name].layout:
            s.layout = by_name[s.name].layout
    return new


def default_name(source: Source) -> str:
    """The package name when none is given: the source's file or directory stem."""
    label = source.label.rstrip("/").replace(":", "-").split("/")[-1]
    return Path(label).stem or "model"


def write_converted(
    source: Source,
    *,
    out: str | Path,
    result_dir: Path,
    to: str,
    precision: str,
    inputs: list[Any],
    outputs: list[Any],
    agreement: Agreement,
    settings: dict[str, Any],
    name: str | None,
    manifest: dict[str, Any] | None,
    files: Sequence[Path],
    defaults: dict[str, Any] | None = None,
) -> pkgmod.ModelPackage:
    """The converted package: the source's manifest (if any) with the new format, specs and lineage."""
    base = source.manifest
    fields: dict[str, Any] = base.model_dump(mode="json", exclude_none=True) if base is not None else {}
    fields.pop("deploy", None)  # tuned for another format
    if fields.get("architecture") and not any(
        f.name == fields["architecture"].get("weights") for f in source.extra_files
    ):
        fields.pop("architecture")
    for key, value in (defaults or {}).items():
        fields.setdefault(key, value)
    fields.update(manifest or {})
    old_inputs = base.inputs if base is not None else []
    old_outputs = base.outputs if base is not None else []
    fields.update(
        name=name or fields.get("name") or default_name(source),
        format=to,
        precision=precision,
        inputs=[s.model_dump() for s in merge_layouts(inputs, old_inputs)],
        outputs=[s.model_dump() for s in merge_layouts(outputs, old_outputs)],
    )
    lineage = list(fields.get("lineage", []))
    lineage.append(
        pkgmod.LineageStep(
            command="convert", source=source.label, settings=settings, results=agreement.as_dict()
        ).model_dump()
    )
    fields["lineage"] = lineage
    new_manifest = pkgmod.validate_manifest(fields, "converted manifest")

    carried = [*source.extra_files, *map(Path, files)]

    def write_files(tmp: Path) -> None:
        for f in result_dir.iterdir():
            shutil.copy2(f, tmp / f.name)
        for f in carried:
            if f.is_dir():
                shutil.copytree(f, tmp / f.name)
            else:
                shutil.copy2(f, tmp / f.name)

    return pkgmod.write(out, new_manifest, write_files)
