"""Wide & Deep for click-through prediction: a linear (wide) part plus an embedding MLP (deep) part.

Inputs are two tensors, ``numeric`` (float32, standardised) and ``categorical`` (int64 vocabulary
indices, one column per feature); the output is one logit per row. ``deep=False`` leaves only the
wide part, i.e. logistic regression on one-hot categoricals and numerics: the baseline Wide & Deep
must beat. The final layer of the deep tower is named ``head``.
"""

from __future__ import annotations

import torch
from torch import nn


class WideDeep(nn.Module):
    """logit = wide(one-hot categoricals, numerics) + deep(MLP over embeddings and numerics)."""

    def __init__(
        self,
        num_numeric: int,
        cardinalities: list[int],
        *,
        embed_dim: int = 8,
        hidden: tuple[int, ...] = (64, 32),
        deep: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_numeric = num_numeric
        self.cardinalities = list(cardinalities)
        offsets = [0]
        for c in self.cardinalities[:-1]:
            offsets.append(offsets[-1] + c)
        self.register_buffer("offsets", torch.tensor(offsets, dtype=torch.long), persistent=False)
        total = max(1, sum(self.cardinalities))
        # Wide: one weight per category value (a one-hot linear layer) and per numeric column.
        self.wide_cat = nn.Embedding(total, 1)
        nn.init.zeros_(self.wide_cat.weight)
        self.wide_num = nn.Linear(max(1, num_numeric), 1)
        self.deep = deep
        if deep:
            self.embed = nn.Embedding(total, embed_dim)
            layers: list[nn.Module] = []
            width = embed_dim * len(self.cardinalities) + num_numeric
            for h in hidden:
                layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
                if dropout:
                    layers.append(nn.Dropout(dropout))
                width = h
            self.tower = nn.Sequential(*layers)
            self.head = nn.Linear(width, 1)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        offsets: torch.Tensor = self.offsets  # type: ignore[assignment]
        idx = categorical + offsets
        logit = self.wide_cat(idx).sum(dim=1)
        if self.num_numeric:
            logit = logit + self.wide_num(numeric)
        if self.deep:
            emb = self.embed(idx).flatten(1)
            x = torch.cat([emb, numeric], dim=1) if self.num_numeric else emb
            logit = logit + self.head(self.tower(x))
        return logit


def widedeep(
    num_numeric: int,
    cardinalities: list[int],
    embed_dim: int = 8,
    hidden: list[int] | tuple[int, ...] = (64, 32),
    deep: bool = True,
    dropout: float = 0.0,
) -> WideDeep:
    """Factory used by packages' ``architecture.factory = "cpuai.models.widedeep:widedeep"``."""
    return WideDeep(
        num_numeric,
        list(cardinalities),
        embed_dim=embed_dim,
        hidden=tuple(hidden),
        deep=deep,
        dropout=dropout,
    )
