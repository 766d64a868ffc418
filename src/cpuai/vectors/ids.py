"""The user's own ids over faiss's positions, with tombstones for deletes.

faiss's HNSW cannot remove a vector and numbers vectors 0..n-1 in insertion order ("positions").
``IdMap`` keeps the user's id for every position (non-negative int64, or strings), the reverse map
for the live ones, and a deleted flag per position that searches filter on. ``compact`` renumbers
the live positions after the index is rebuilt without the deleted ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from cpuai.errors import InvalidInput


def _preview(values: Iterable[Any], n: int = 5) -> str:
    items = list(values)
    text = ", ".join(repr(v.item() if isinstance(v, np.generic) else v) for v in items[:n])
    return f"[{text}{', ...' if len(items) > n else ''}]"


class IdMap:
    """Positions <-> user ids, and which positions are deleted."""

    def __init__(self) -> None:
        self.mode: str | None = None  # "int" or "str", fixed by the first add
        self.labels: np.ndarray = np.empty(0, dtype=np.int64)
        self.deleted: np.ndarray = np.empty(0, dtype=bool)
        self._pos: dict[Any, int] = {}

    def __len__(self) -> int:
        """Number of live ids."""
        return len(self._pos)

    @property
    def size(self) -> int:
        """Positions used, live and deleted."""
        return len(self.labels)

    @property
    def n_deleted(self) -> int:
        return self.size - len(self._pos)

    def __contains__(self, user_id: Any) -> bool:
        return self._key(user_id) in self._pos

    def _key(self, user_id: Any) -> Any:
        if isinstance(user_id, np.generic):
            user_id = user_id.item()
        return user_id

    def normalise(self, ids: Any, n: int) -> np.ndarray:
        """Check ids for ``n`` new vectors (type, length, duplicates) and return them as an array.

        ``None`` numbers the vectors after the largest integer id so far.
        """
        if ids is None:
            if self.mode == "str":
                raise InvalidInput("this index uses string ids, and no ids were given",
                                   fix="pass ids=[...] with one string per vector")
            start = int(self.labels.max()) + 1 if self.size else 0
            return np.arange(start, start + n, dtype=np.int64)
        arr = np.asarray(ids)
        if arr.ndim != 1 or len(arr) != n:
            raise InvalidInput(f"got {arr.size} ids for {n} vectors",
                               fix="pass exactly one id per vector, as a flat list")
        if arr.dtype.kind in "iu":
            mode = "int"
            if n and (arr.min() < 0 or (arr.dtype.kind == "u" and arr.max() > np.iinfo(np.int64).max)):
                raise InvalidInput(f"ids must be non-negative int64, got {_preview(arr[arr < 0])}",
                                   fix="use ids >= 0, or string ids")
            arr = arr.astype(np.int64)
        elif arr.dtype.kind in "UO" and all(isinstance(v, str) for v in arr.tolist()):
            mode = "str"
            arr = np.array(arr.tolist(), dtype=object)
        else:
            raise InvalidInput(f"ids must be integers or strings, got dtype {arr.dtype}",
                               fix="pass int64 ids or string ids (one kind per index)")
        if n and self.mode is not None and mode != self.mode:
            names = {"int": "integer", "str": "string"}
            raise InvalidInput(f"this index uses {names[self.mode]} ids, got {names[mode]} ids",
                               fix=f"pass {names[self.mode]} ids, or build a new index")
        values = arr.tolist()
        if len(set(values)) != len(values):
            seen: set[Any] = set()
            dups = [v for v in values if v in seen or seen.add(v)]
            raise InvalidInput(f"duplicate ids in one add: {_preview(dict.fromkeys(dups))}",
                               fix="give every vector its own id")
        taken = [v for v in values if v in self._pos]
        if taken:
            raise InvalidInput(f"ids already in the index: {_preview(taken)}",
                               fix="delete them first to replace their vectors, or use new ids")
        return arr

    def append(self, ids: np.ndarray) -> None:
        """Record ``ids`` (from ``normalise``) at the next positions."""
        if not len(ids):
            return
        if self.mode is None:
            self.mode = "str" if ids.dtype == object else "int"
            if self.mode == "str":
                self.labels = np.empty(0, dtype=object)
        start = self.size
        self.labels = np.concatenate([self.labels, ids])
        self.deleted = np.concatenate([self.deleted, np.zeros(len(ids), dtype=bool)])
        self._pos.update(zip(ids.tolist(), range(start, start + len(ids)), strict=True))

    def positions(self, ids: Iterable[Any], *, strict: bool) -> np.ndarray:
        """Live positions of ``ids``; with ``strict`` an unknown id is an error, otherwise skipped."""
        found, missing = [], []
        for user_id in ids:
            pos = self._pos.get(self._key(user_id))
            (missing.append(user_id) if pos is None else found.append(pos))
        if strict and missing:
            raise InvalidInput(f"ids not in the index: {_preview(missing)}",
                               fix="check the ids; deleted ids are gone already")
        return np.asarray(found, dtype=np.int64)

    def delete(self, ids: Iterable[Any]) -> np.ndarray:
        """Tombstone the live ``ids`` (all must exist) and return their positions."""
        ids = list(ids)
        positions = self.positions(ids, strict=True)
        for user_id in ids:
            self._pos.pop(self._key(user_id), None)
        self.deleted[positions] = True
        return positions

    def labels_of(self, positions: np.ndarray) -> np.ndarray:
        """User ids at ``positions`` (a faiss result); -1 (int ids) or None (string ids) where empty."""
        valid = positions >= 0
        if self.mode == "str":
            out = np.full(positions.shape, None, dtype=object)
        else:
            out = np.full(positions.shape, -1, dtype=np.int64)
        if self.size:
            out[valid] = self.labels[positions[valid]]
        return out

    def live_positions(self) -> np.ndarray:
        """Positions not deleted, in order."""
        return np.flatnonzero(~self.deleted)

    def compact(self) -> np.ndarray:
        """Drop deleted positions, renumber the rest 0..n-1; return the old positions kept."""
        keep = self.live_positions()
        self.labels = self.labels[keep]
        self.deleted = np.zeros(len(keep), dtype=bool)
        self._pos = dict(zip(self.labels.tolist(), range(len(keep)), strict=True))
        return keep

    def state(self) -> dict[str, Any]:
        """Arrays to save: labels and deleted flags."""
        return {"mode": self.mode, "labels": self.labels, "deleted": self.deleted}

    @classmethod
    def from_state(cls, mode: str | None, labels: np.ndarray, deleted: np.ndarray) -> IdMap:
        """Rebuild a map from saved arrays."""
        m = cls()
        m.mode = mode
        m.labels = np.array(labels.tolist(), dtype=object) if mode == "str" else labels.astype(np.int64)
        m.deleted = deleted.astype(bool)
        live = np.flatnonzero(~m.deleted)
        m._pos = dict(zip(m.labels[live].tolist(), live.tolist(), strict=True))
        return m
