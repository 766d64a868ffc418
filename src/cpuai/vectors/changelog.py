"""A write-ahead log of adds and deletes beside a saved index, so a served index loses nothing.

``cpuai serve`` changes indexes in memory on ``/add`` and ``/delete``. Rewriting the whole index
after each change would cost a full save (the graph and the FP32 vectors: ~0.6 GB for 1M x 384) per
request, so each change is appended instead to ``DIR/changes.log`` and fsync'd before the request is
answered: one JSON line per change, the vectors as base64 float32. ``VectorIndex.load`` replays the
log over the saved files; ``fold`` saves the index (atomically, a new directory without the log)
once the log passes ``fold_bytes``, and the server folds every log on shutdown.

A crash in the middle of an append leaves a torn last line; replay skips it (that request was
never answered). One process writes an index directory at a time.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cpuai.errors import DataError

if TYPE_CHECKING:
    from cpuai.vectors.index import VectorIndex

log = logging.getLogger(__name__)

FILE = "changes.log"
FOLD_BYTES = 64 << 20  # ~30k 384-d vectors; a fold is one full save


def _plain(values: Any) -> list[Any]:
    return [v.item() if isinstance(v, np.generic) else v for v in list(values)]


class ChangeLog:
    """One index directory's log: ``record_add``/``record_delete`` under ``lock``, then ``maybe_fold``."""

    def __init__(self, root: str | Path, *, fold_bytes: int = FOLD_BYTES) -> None:
        self.root = Path(root)
        self.path = self.root / FILE
        self.fold_bytes = fold_bytes
        self.lock = threading.Lock()  # held by the writer across "change the index, then log it"

    def _append(self, entry: dict[str, Any]) -> None:
        # Opened per append: a fold replaces the directory, so a kept handle would write to the old one.
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def record_add(self, ids: Any, vectors: np.ndarray, texts: list[str] | None) -> None:
        """Log an add that the index accepted (``ids`` as returned by ``VectorIndex.add``)."""
        x = np.ascontiguousarray(vectors, dtype="<f4")
        self._append(
            {
                "op": "add",
                "ids": _plain(ids),
                "dim": int(x.shape[1]),
                "vectors": base64.b64encode(x.tobytes()).decode("ascii"),
                "texts": texts,
            }
        )

    def record_delete(self, ids: Any) -> None:
        """Log a delete that the index accepted."""
        self._append({"op": "delete", "ids": _plain(ids)})

    @property
    def pending_bytes(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def fold(self, index: VectorIndex) -> None:
        """Save ``index`` over its directory (atomically); the new directory has no log."""
        with self.lock:
            if self.pending_bytes:
                index.save(self.root)
                log.info("folded the change log into %s", self.root)

    def maybe_fold(self, index: VectorIndex) -> bool:
        """Fold when the log has grown past ``fold_bytes``; True if it did."""
        if self.pending_bytes < self.fold_bytes:
            return False
        self.fold(index)
        return True


def replay(index: VectorIndex, root: Path) -> int:
    """Apply ``root/changes.log`` to a just-loaded ``index``; return the number of changes applied."""
    path = root / FILE
    if not path.is_file():
        return 0
    lines = path.read_text(encoding="utf-8").splitlines()
    applied = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            if number == len(lines):  # torn by a crash mid-append: that change was never acknowledged
                log.warning("%s: ignoring a torn last line (a change interrupted by a crash)", path)
                break
            raise DataError(
                f"{path} line {number} is not valid JSON", fix="remove the damaged line, or rebuild the index"
            ) from None
        if entry.get("op") == "add":
            raw = base64.b64decode(entry["vectors"])
            vectors = np.frombuffer(raw, dtype="<f4").reshape(-1, int(entry["dim"]))
            index.add(vectors, ids=entry["ids"], texts=entry.get("texts"))
        elif entry.get("op") == "delete":
            index.delete(entry["ids"])
        else:
            raise DataError(
                f"{path} line {number} has unknown op {entry.get('op')!r}", fix="rebuild the index"
            )
        applied += 1
    if applied:
        log.info("replayed %d changes from %s", applied, path)
    return applied
