"""The PyTorch backend: a TorchScript ``model.pt`` run under ``inference_mode`` with ``threads`` threads.

PyTorch's intra-op thread count is per process; this engine sets it (``torch.set_num_threads``) in
every thread that runs a batch. ``precision="bf16"`` runs under CPU autocast and says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cpuai.errors import ConfigError, ModelError
from cpuai.runtime.engine import TensorInfo
from cpuai.runtime.pool import PooledEngine


def _infos(specs: Sequence[Any]) -> list[TensorInfo]:
    return [TensorInfo(s.name, s.dtype, tuple(s.shape)) for s in specs]


class TorchEngine(PooledEngine):
    """A TorchScript module (or any eager ``nn.Module``) behind the Engine protocol."""

    backend = "torch"

    def __init__(
        self,
        model: Path | Any,
        *,
        inputs: Sequence[Any],
        outputs: Sequence[Any],
        threads: int,
        streams: int,
        hint: str = "latency",
        package_precision: str = "fp32",
        precision: str | None = None,
    ) -> None:
        import torch

        wanted = precision or package_precision
        if wanted not in ("fp32", "bf16") or (package_precision not in ("fp32", "bf16")):
            raise ConfigError(
                f"the torch backend runs fp32 or bf16 models, not {wanted}/{package_precision}",
                fix="use --backend onnxruntime or openvino for int8/fp16 packages",
            )
        self.threads, self.streams, self.hint, self.precision = threads, streams, hint, wanted
        if isinstance(model, torch.nn.Module):
            module = model
        else:
            try:
                module = torch.jit.load(str(model), map_location="cpu")
            except Exception as err:
                raise ModelError(
                    f"torch cannot load {model} as TorchScript: {str(err).strip().splitlines()[0][:300]}",
                    fix="save the model with torch.jit.trace(...).save('model.pt')",
                ) from None
        module.eval()
        self.module = module
        self.inputs = _infos(inputs)
        self.outputs = _infos(outputs)
        torch.set_num_threads(threads)
        self._start([module] * streams)

    def _run(self, worker: Any, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        args = [torch.from_numpy(feeds[i.name]) for i in self.inputs]
        with (
            torch.inference_mode(),
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bf16"),
        ):
            out = worker(*args)
        if isinstance(out, dict):
            values = [
                out[o.name] if o.name in out else list(out.values())[i] for i, o in enumerate(self.outputs)
            ]
        elif isinstance(out, list | tuple):
            values = list(out)
        else:
            values = [out]
        if len(values) < len(self.outputs):
            raise ModelError(
                f"the TorchScript module returned {len(values)} output(s); the manifest declares "
                f"{len(self.outputs)}",
                fix="fix outputs in model.yaml",
            )
        return {
            o.name: v.detach().float().numpy() if v.dtype == torch.bfloat16 else v.detach().numpy()
            for o, v in zip(self.outputs, values, strict=False)
        }
