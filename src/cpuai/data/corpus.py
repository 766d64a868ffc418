"""Text corpora on disk: one text per line, as ``cpuai vectors build`` and ``cpuai quantize`` read them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from cpuai.errors import ConfigError


def write_lines(texts: Sequence[str], out: str | Path) -> Path:
    """Write texts one per line (newlines inside a text become spaces), atomically."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.write_text("".join(" ".join(t.split()) + "\n" for t in texts))
    os.replace(tmp, out)
    return out


def split_docstrings(limit: int | None, heldout: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Python's docstrings as (corpus, held-out) with no text in both; held-out is drawn first."""
    from cpuai.data.docstrings import docstrings

    if heldout < 0:
        raise ConfigError(
            f"--heldout-count must be 0 or more, got {heldout}", fix="pass e.g. --heldout-count 200"
        )
    every = docstrings(seed=seed)
    if limit is not None and limit <= 0:
        raise ConfigError(
            f"--limit must be positive, got {limit}", fix="pass e.g. --limit 5000 or leave it out"
        )
    held = every[:: max(1, len(every) // max(1, heldout))][:heldout] if heldout else []
    held_set = set(held)
    rest = [t for t in every if t not in held_set]
    if limit is not None:
        step = max(1, len(rest) // limit)
        rest = rest[::step][:limit]
    return rest, held
