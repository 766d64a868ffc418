"""A bare ``cpuai train`` checkpoint as a conversion source: rebuild the model, load its weights.

A checkpoint (``JOB/checkpoint.pt``) holds the eager state dict (``model``), the training spec
(``spec``) and what the recipe chose to keep (``extra``). From those this module writes a temporary
torchscript package, the same kind ``cpuai train`` writes at the end of a job, and converts that:

- image classification: ``extra`` has the architecture (factory, kwargs) and the preprocessing (size,
  colour, mean, std), so the input is ``[-1, C, size, size]``. The class names are not in it; they
  come from the caller's ``labels``, the job's ``package/labels.txt``, or the training data folder
  named in the spec (class folders sorted by name, as training ordered them).
- wide & deep: the checkpoint keeps no preprocessing, so the recipe refits it on the spec's CSV
  (deterministic: same rows, same seed) and the refit model must accept the saved weights.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from cpuai import package as pkgmod
from cpuai.convert.sources import Source, factory, package_source
from cpuai.errors import ModelError

#: Keys every checkpoint written by the training loop has.
CHECKPOINT_KEYS = ("model", "spec")


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint dict (tensors and plain values only: ``weights_only``); ModelError otherwise."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ModelError(
            f"{path} is neither a TorchScript model nor a readable checkpoint "
            f"({str(err).strip().splitlines()[0][:200]})",
            fix="pass a torch.jit.save'd .pt file, a checkpoint.pt written by cpuai train, or a package",
        ) from None
    if not isinstance(ckpt, dict) or not all(k in ckpt for k in CHECKPOINT_KEYS):
        what = "a bare state dict" if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ModelError(
            f"{path} is {what}, not a cpuai training checkpoint (no model weights plus spec)",
            fix="convert the package made from it, or pass module.path:factory with --input-shape",
        )
    return ckpt


def checkpoint_source(path: Path, hints: dict[str, Any]) -> Source:
    """Rebuild the model a checkpoint was training as a temporary package, and open that."""
    ckpt = read_checkpoint(path)
    spec = ckpt["spec"]
    recipe = spec.get("recipe")
    workdir = tempfile.TemporaryDirectory(prefix="cpuai-checkpoint-")
    dest = Path(workdir.name) / "package"
    if recipe == "image-classification":
        package = _image_package(path, ckpt, hints, dest)
    elif recipe == "wide-deep":
        package = _tabular_package(path, ckpt, dest)
    else:
        workdir.cleanup()
        raise ModelError(
            f"checkpoint {path} is from recipe {recipe!r}, which this converter cannot rebuild",
            fix="convert the job directory's package instead",
        )
    source = package_source(package)
    source.label = str(path)
    source.workdir = workdir
    return source


def _lineage(path: Path, spec: dict[str, Any], ckpt: dict[str, Any]) -> list[pkgmod.LineageStep]:
    loop = ckpt.get("loop", {})
    return [
        pkgmod.LineageStep(
            command=f"cpuai train {spec['recipe']}",
            source=str(Path(spec["data"]).resolve()),
            settings=spec,
            results={
                "checkpoint": str(path),
                "epochs_done": loop.get("epoch"),
                "step": loop.get("global_step"),
            },
        )
    ]


def _image_package(
    path: Path, ckpt: dict[str, Any], hints: dict[str, Any], dest: Path
) -> pkgmod.ModelPackage:
    import torch

    extra = ckpt.get("extra") or {}
    arch, pre = extra.get("architecture"), extra.get("preprocessing")
    if not arch or not pre:
        missing = "architecture" if not arch else "preprocessing"
        raise ModelError(
            f"checkpoint {path} has no {missing} (written by an older cpuai train)",
            fix="convert the job directory's package instead",
        )
    kwargs = dict(arch.get("kwargs", {}))
    module = factory(arch["factory"])(**kwargs)
    _load_weights(module, ckpt["model"], path)
    image = pkgmod.ImagePreprocessing(**pre)
    channels = 3 if image.color == "rgb" else 1
    height, width = image.size
    labels = _image_labels(path, ckpt["spec"], hints, n_classes=kwargs.get("num_classes"))
    spec = ckpt["spec"]
    manifest = pkgmod.Manifest(
        name=spec.get("name") or Path(spec["data"]).resolve().name or "model",
        task="image-classification",
        format="torchscript",
        precision="fp32",
        inputs=[pkgmod.TensorSpec(name="input", shape=[-1, channels, height, width], layout="NCHW")],
        outputs=[pkgmod.TensorSpec(name="logits", shape=[-1, len(labels)])],
        preprocessing=pkgmod.Preprocessing(image=image),
        labels=labels,
        architecture=pkgmod.Architecture(factory=arch["factory"], kwargs=kwargs, weights="weights.pt"),
        lineage=_lineage(path, spec, ckpt),
    )
    example = torch.zeros(1, channels, height, width)
    with torch.inference_mode():
        traced = torch.jit.trace(module.eval(), example)

    def files(tmp: Path) -> None:
        torch.jit.save(traced, str(tmp / "model.pt"))
        torch.save(module.state_dict(), tmp / "weights.pt")

    return pkgmod.write(dest, manifest, files)


def _image_labels(path: Path, spec: dict[str, Any], hints: dict[str, Any], n_classes: Any) -> list[str]:
    """Class names: given, from the job's package, or from the training data's class folders."""
    labels: list[str] | None = hints.get("labels")
    where = "--labels"
    job_labels = path.parent / "package" / pkgmod.LABELS
    if labels is None and job_labels.is_file():
        labels, where = job_labels.read_text().split("\n"), str(job_labels)
        labels = [line for line in labels if line.strip()]
    if labels is None:
        from cpuai.data.imagefolder import ImageFolder, has_splits

        root = Path(spec["data"])
        if not root.is_dir():
            raise ModelError(
                f"checkpoint {path} does not hold the class names and its training data {root} is gone",
                fix="pass --labels FILE (one class per line, in training order)",
            )
        labels = list(ImageFolder.open(root, "train" if has_splits(root) else None).classes)
        where = f"the class folders of {root}"
    if n_classes is not None and len(labels) != n_classes:
        raise ModelError(
            f"{where} names {len(labels)} classes but the checkpoint's model has {n_classes}",
            fix="pass --labels FILE with one class per line, in training order",
        )
    return labels


def _tabular_package(path: Path, ckpt: dict[str, Any], dest: Path) -> pkgmod.ModelPackage:
    from cpuai.train.spec import TrainSpec
    from cpuai.train.tabular import WideDeepRecipe

    spec = TrainSpec.model_validate(ckpt["spec"])
    if not Path(spec.data).is_file():
        raise ModelError(
            f"checkpoint {path} keeps no tabular preprocessing and its training data {spec.data} is gone",
            fix="convert the job directory's package instead (it holds the fitted preprocessing)",
        )
    recipe = WideDeepRecipe(spec)  # refits the preprocessing on the same rows, same seed
    _load_weights(recipe.model, ckpt["model"], path)
    return recipe.export(recipe.model.eval(), dest, metrics={})


def _load_weights(module: Any, state: dict[str, Any], path: Path) -> None:
    try:
        module.load_state_dict(state)
    except Exception as err:
        raise ModelError(
            f"the weights in {path} do not fit the rebuilt model ({str(err).splitlines()[0][:200]})",
            fix="convert the job directory's package instead",
        ) from None
    module.eval()
