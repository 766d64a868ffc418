"""The image-classification recipe: an image folder in, a TorchScript package with labels out.

Images are decoded once into memory (``cpuai.data.images``) and batches are augmented in torch
(random shifts, optional horizontal flips), so the loop is never starved by decoding. ``--from``
starts from a trained model (package, job directory or checkpoint) and replaces its ``head`` with
one sized to this data set's labels.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from cpuai import package as pkg
from cpuai.data.imagefolder import ImageFolder, has_splits
from cpuai.data.images import DecodedImages, decode_folder, detect_color, detect_size
from cpuai.errors import DataError, ModelError
from cpuai.train.spec import TrainSpec

log = logging.getLogger("cpuai.train")

FACTORIES = {
    "smallcnn": "cpuai.models.smallcnn:smallcnn",
    "resnet8": "cpuai.models.resnet:resnet8",
    "resnet18": "cpuai.models.resnet:resnet18",
}


def build_model(factory: str, kwargs: dict[str, Any]) -> Any:
    """Call ``module:function`` with ``kwargs`` (how packages rebuild their eager model)."""
    import importlib

    module, _, fn = factory.partition(":")
    try:
        return getattr(importlib.import_module(module), fn)(**kwargs)
    except (ImportError, AttributeError) as err:
        raise ModelError(
            f"architecture factory {factory!r} cannot be imported: {err}", fix="check architecture.factory"
        ) from None


def default_kwargs(
    model: str, *, num_classes: int, in_channels: int, size: int, width: int | None
) -> dict[str, Any]:
    """Factory keyword arguments for a model name at an image size."""
    kwargs: dict[str, Any] = {"num_classes": num_classes, "in_channels": in_channels}
    if model == "smallcnn" or model == "resnet8":
        kwargs["width"] = width or 16
    else:
        kwargs["width"] = width or 64
        kwargs["stem"] = "small" if size <= 64 else "imagenet"
    return kwargs


def find_source(path: str) -> tuple[dict[str, Any], dict[str, Any], pkg.ImagePreprocessing | None]:
    """The (architecture, state_dict, preprocessing) of a package, job directory or checkpoint file."""
    import torch

    from cpuai.train.jobdir import JobDir

    p = Path(path)
    if p.is_dir() and JobDir(p).is_job():
        job = JobDir(p)
        p = job.package_dir if job.package_dir.is_dir() else job.checkpoint_file
    if p.is_dir():
        source = pkg.read(p)
        arch = source.manifest.architecture
        if arch is None:
            raise ModelError(
                f"--from {path}: package has no 'architecture' (eager weights) whose head could be replaced",
                fix="use a package made by 'cpuai train', or its job directory",
            )
        state = torch.load(source.file(arch.weights), map_location="cpu", weights_only=True)
        return arch.model_dump(), state, source.manifest.preprocessing.image
    if p.is_file():
        try:
            ckpt = torch.load(p, map_location="cpu", weights_only=False)
        except Exception as err:
            raise ModelError(
                f"--from {path} is not a readable checkpoint: {err}",
                fix="pass a package, job dir or checkpoint.pt",
            ) from None
        if not isinstance(ckpt, dict) or "architecture" not in ckpt.get("extra", {}):
            raise ModelError(
                f"--from {path} is not a cpuai checkpoint",
                fix="pass a package or job directory made by cpuai train",
            )
        pre = ckpt["extra"].get("preprocessing")
        return ckpt["extra"]["architecture"], ckpt["model"], pkg.ImagePreprocessing(**pre) if pre else None
    raise ModelError(
        f"--from {path} does not exist", fix="pass a model package, a job directory or a checkpoint file"
    )


class ImageClassification:
    """Recipe state: decoded splits, the model and the preprocessing written into the package."""

    primary = "top1"
    image_input = True

    def __init__(self, spec: TrainSpec) -> None:
        import torch

        self.spec = spec
        source_arch, source_state, source_pre = (None, None, None)
        if spec.from_:
            source_arch, source_state, source_pre = find_source(spec.from_)
        root = Path(spec.data)
        train_folder = ImageFolder.open(root, "train" if has_splits(root) else None)
        if len(train_folder.classes) < 2:
            raise DataError(
                f"data folder {train_folder.root} has only one class ({train_folder.classes[0]!r})",
                fix="a classifier needs at least two class folders DIR/<label>/",
            )
        self.classes = train_folder.classes
        if source_pre is not None:
            color: str = source_pre.color
            size = source_pre.size[0]
            if spec.size:
                size = spec.size
        else:
            color = spec.color if spec.color != "auto" else detect_color(train_folder)
            size = spec.size or detect_size(train_folder)[0]
        self.size, self.color = size, color
        splits: dict[str, DecodedImages] = {
            "train": decode_folder(train_folder, size=(size, size), color=color)
        }
        for name in ("val", "test"):
            if (root / name).is_dir():
                splits[name] = decode_folder(
                    ImageFolder.open(root, name, classes=self.classes), size=(size, size), color=color
                )
        if "val" not in splits:
            splits["train"], splits["val"] = _carve(splits["train"], 0.1, spec.seed)
        if spec.limit:
            splits["train"] = _subset(splits["train"], spec.limit, spec.seed)
        self.splits = splits
        self.skipped = sum(len(s.skipped) for s in splits.values())
        train = splits["train"]
        scaled = train.pixels.astype(np.float32) / 255.0
        if source_pre is not None:
            self.mean, self.std = list(source_pre.mean), list(source_pre.std)
        else:
            self.mean = [round(float(m), 4) for m in scaled.mean(axis=(0, 2, 3))]
            self.std = [round(max(float(s), 1e-3), 4) for s in scaled.std(axis=(0, 2, 3))]
        self._pixels = torch.from_numpy(train.pixels)
        self._labels = torch.from_numpy(train.labels)
        self.train_size = len(train)
        in_channels = 3 if color == "rgb" else 1
        if source_arch is not None:
            self.factory = source_arch["factory"]
            kwargs = dict(source_arch.get("kwargs", {}))
            model = build_model(self.factory, kwargs)
            model.load_state_dict(source_state)
            head = getattr(model, "head", None)
            if head is None or not hasattr(head, "in_features"):
                raise ModelError(
                    f"--from {spec.from_}: the model has no linear 'head' to replace",
                    fix="use a cpuai classifier",
                )
            model.head = torch.nn.Linear(head.in_features, len(self.classes))
            kwargs["num_classes"] = len(self.classes)
            self.kwargs = kwargs
            log.info(
                "transfer learning from %s: new head %d -> %d classes",
                spec.from_,
                head.in_features,
                len(self.classes),
            )
        else:
            self.factory = FACTORIES[spec.model or "smallcnn"]
            self.kwargs = default_kwargs(
                spec.model or "smallcnn",
                num_classes=len(self.classes),
                in_channels=in_channels,
                size=size,
                width=spec.width,
            )
            model = build_model(self.factory, self.kwargs)
        self.model = model
        self._mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        self._std = torch.tensor(self.std).view(1, -1, 1, 1)
        log.info(
            "data %s: %s; %d classes; %s %dx%d",
            root,
            ", ".join(f"{k} {len(v)}" for k, v in splits.items()),
            len(self.classes),
            color,
            size,
            size,
        )

    def _normalise(self, pixels: Any) -> Any:
        return (pixels.float() / 255.0 - self._mean) / self._std

    def train_batch(self, idx: Any, generator: Any) -> tuple[tuple[Any, ...], Any]:
        import torch

        x = self._pixels[idx]
        if self.spec.augment:
            x = _shift(x, max(1, self.size // 16), generator)
            if self.spec.hflip:
                flip = torch.rand(len(x), generator=generator) < 0.5
                x[flip] = x[flip].flip(-1)
        return (self._normalise(x),), self._labels[idx]

    def loss(self, output: Any, target: Any) -> Any:
        import torch.nn.functional as F

        return F.cross_entropy(output, target, label_smoothing=0.05)

    def logits(self, model: Any, split: str, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Eval-mode logits and labels of a split, in FP32."""
        import torch

        data = self.splits[split]
        was_training = model.training
        model.eval()
        out = []
        with torch.inference_mode():
            for i in range(0, len(data), batch):
                x = self._normalise(torch.from_numpy(data.pixels[i : i + batch]))
                out.append(model(x).float().numpy())
        model.train(was_training)
        return np.concatenate(out), data.labels

    def evaluate(self, model: Any, split: str) -> dict[str, float] | None:
        if split not in self.splits:
            return None
        logits, labels = self.logits(model, split)
        top = np.argsort(-logits, axis=1)
        result = {"top1": float((top[:, 0] == labels).mean())}
        if logits.shape[1] > 5:
            result["top5"] = float((top[:, :5] == labels[:, None]).any(axis=1).mean())
        shifted = logits - logits.max(axis=1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        result["loss"] = float(-logp[np.arange(len(labels)), labels].mean())
        return result

    def preprocessing(self) -> pkg.ImagePreprocessing:
        return pkg.ImagePreprocessing(
            size=(self.size, self.size),
            color="rgb" if self.color == "rgb" else "gray",
            scale=1.0 / 255.0,
            mean=self.mean,
            std=self.std,
        )

    def export(self, model: Any, dest: Path, metrics: dict[str, float]) -> pkg.ModelPackage:
        import torch

        channels = 3 if self.color == "rgb" else 1
        example = torch.zeros(2, channels, self.size, self.size)
        with torch.inference_mode():
            traced = torch.jit.trace(
                model, example, check_inputs=[(torch.zeros(1, channels, self.size, self.size),)]
            )
        spec = self.spec
        manifest = pkg.Manifest(
            name=spec.name or _name(spec.data),
            task="image-classification",
            format="torchscript",
            precision="fp32",
            inputs=[
                pkg.TensorSpec(
                    name="input", dtype="float32", shape=[-1, channels, self.size, self.size], layout="NCHW"
                )
            ],
            outputs=[pkg.TensorSpec(name="logits", dtype="float32", shape=[-1, len(self.classes)])],
            preprocessing=pkg.Preprocessing(image=self.preprocessing()),
            labels=list(self.classes),
            metrics=metrics,
            architecture=pkg.Architecture(factory=self.factory, kwargs=self.kwargs, weights="weights.pt"),
            lineage=[
                pkg.LineageStep(
                    command="cpuai train image-classification",
                    source=str(Path(spec.data).resolve()),
                    settings=spec.model_dump(mode="json", by_alias=True),
                    results=metrics,
                )
            ],
            extra={"skipped_images": self.skipped} if self.skipped else {},
        )
        state = model.state_dict()

        def files(tmp: Path) -> None:
            torch.jit.save(traced, str(tmp / "model.pt"))
            torch.save(state, tmp / "weights.pt")

        return pkg.write(dest, manifest, files)

    def checkpoint_extra(self) -> dict[str, Any]:
        return {
            "architecture": {"factory": self.factory, "kwargs": self.kwargs},
            "preprocessing": self.preprocessing().model_dump(),
        }


def _name(data: str) -> str:
    name = Path(data).resolve().name or "model"
    return name if not name.startswith(".") else "model"


def _shift(x: Any, pad: int, generator: Any) -> Any:
    """Random translations by up to ``pad`` pixels (zero fill), one offset per image."""
    import torch
    import torch.nn.functional as F

    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)
    out = torch.empty_like(x)
    for i in range(n):
        dy, dx = int(offsets[i, 0]), int(offsets[i, 1])
        out[i] = padded[i, :, dy : dy + h, dx : dx + w]
    return out


def _subset(data: DecodedImages, limit: int, seed: int) -> DecodedImages:
    if limit >= len(data):
        return data
    keep = np.sort(np.random.default_rng(seed).permutation(len(data))[:limit])
    return DecodedImages(
        data.pixels[keep], data.labels[keep], [data.files[i] for i in keep], data.classes, data.skipped
    )


def _carve(data: DecodedImages, fraction: float, seed: int) -> tuple[DecodedImages, DecodedImages]:
    """Split a validation part off a training set (seeded)."""
    perm = np.random.default_rng(seed).permutation(len(data))
    n_val = max(1, int(len(data) * fraction))
    val, train = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    val_part = DecodedImages(data.pixels[val], data.labels[val], [data.files[i] for i in val], data.classes)
    train_part = DecodedImages(
        data.pixels[train], data.labels[train], [data.files[i] for i in train], data.classes, data.skipped
    )
    return train_part, val_part
