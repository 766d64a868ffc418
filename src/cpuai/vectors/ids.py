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
    """Positions <-> user ids, and which positions are deleted.

    Integer ids are looked up through a sorted copy of the live ids (16 bytes per vector, rebuilt
    lazily after a change) rather than a Python dict (~100 bytes per vector); string ids use a dict.
    """

    def __init__(self) -> None:
        self.mode: str | None = None  # "int" or "str", fixed by the first add
        self.labels: np.ndarray = np.empty(0, dtype=np.int64)
        self.deleted: np.ndarray = np.empty(0, dtype=bool)
        self._live = 0
        self._names: dict[str, int] = {}  # string ids only
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None  # int ids: (live ids sorted, positions)

    def __len__(self) -> int:
        """Number of live ids."""
        return self._live

    @property
    def size(self) -> int:
        """Positions used, live and deleted."""
        return len(self.labels)

    @property
    def n_deleted(self) -> int:
        return self.size - self._live

    def __contains__(self, user_id: Any) -> bool:
        return bool(self._lookup([user_id])[0] >= 0)

    def _lookup(self, values: list[Any]) -> np.ndarray:
        """Live position of each id, -1 where it is not in the index."""
        values = [v.item() if isinstance(v, np.generic) else v for v in values]
        if self.mode == "str":
            return np.array(
                [self._names.get(v, -1) if isinstance(v, str) else -1 for v in values], dtype=np.int64
            )
        if self.mode is None or not values:
            return np.full(len(values), -1, dtype=np.int64)
        if self._sorted is None:
            live = np.flatnonzero(~self.deleted)
            order = np.argsort(self.labels[live], kind="stable")
            self._sorted = (self.labels[live][order], live[order])
        keys, positions = self._sorted
        ints = np.array(
            [v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63 else -1 for v in values],
            dtype=np.int64,
        )
        at = np.clip(np.searchsorted(keys, ints), 0, max(len(keys) - 1, 0))
        found = (len(keys) > 0) & (ints >= 0)
        if len(keys):
            found &= keys[at] == ints
        return np.where(found, positions[at] if len(keys) else -1, -1)

    def normalise(self, ids: Any, n: int) -> np.ndarray:
        """Check ids for ``n`` new vectors (type, length, duplicates) and return them as an array.

        ``None`` numbers the vectors after the largest integer id so far.
        """
        if ids is None:
            if self.mode == "str":
                raise InvalidInput(
                    "this index uses string ids, and no ids were given",
                    fix="pass ids=[...] with one string per vector",
                )
            start = int(self.labels.max()) + 1 if self.size else 0
            return np.arange(start, start + n, dtype=np.int64)
        arr = np.asarray(ids)
        if arr.ndim != 1 or len(arr) != n:
            raise InvalidInput(
                f"got {arr.size} ids for {n} vectors", fix="pass exactly one id per vector, as a flat list"
            )
        if arr.dtype.kind in "iu":
            mode = "int"
            if n and (arr.min() < 0 or (arr.dtype.kind == "u" and arr.max() > np.iinfo(np.int64).max)):
                raise InvalidInput(
                    f"ids must be non-negative int64, got {_preview(arr[arr < 0])}",
                    fix="use ids >= 0, or string ids",
                )
            arr = arr.astype(np.int64)
        elif arr.dtype.kind in "UO" and all(isinstance(v, str) for v in arr.tolist()):
            mode = "str"
            arr = np.array(arr.tolist(), dtype=object)
        else:
            raise InvalidInput(
                f"ids must be integers or strings, got dtype {arr.dtype}",
                fix="pass int64 ids or string ids (one kind per index)",
            )
        if n and self.mode is not None and mode != self.mode:
            names = {"int": "integer", "str": "string"}
            raise InvalidInput(
                f"this index uses {names[self.mode]} ids, got {names[mode]} ids",
                fix=f"pass {names[self.mode]} ids, or build a new index",
            )
        if mode == "int":
            uniq, counts = np.unique(arr, return_counts=True)
            dups = uniq[counts > 1].tolist()
        else:
            from collections import Counter

            dups = [v for v, c in Counter(arr.tolist()).items() if c > 1]
        if dups:
            raise InvalidInput(
                f"duplicate ids in one add: {_preview(dups)}", fix="give every vector its own id"
            )
        taken = arr[self._lookup(arr.tolist()) >= 0] if self.mode is not None else arr[:0]
        if len(taken):
            raise InvalidInput(
                f"ids already in the index: {_preview(taken.tolist())}",
                fix="delete them first to replace their vectors, or use new ids",
            )
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
        self._live += len(ids)
        if self.mode == "str":
            self._names.update(zip(ids.tolist(), range(start, start + len(ids)), strict=True))
        self._sorted = None

    def positions(self, ids: Iterable[Any], *, strict: bool) -> np.ndarray:
        """Live positions of ``ids``; with ``strict`` an unknown id is an error, otherwise skipped."""
        values = list(ids)
        pos = self._lookup(values)
        if strict and (pos < 0).any():
            missing = [v for v, p in zip(values, pos.tolist(), strict=True) if p < 0]
            raise InvalidInput(
                f"ids not in the index: {_preview(missing)}",
                fix="check the ids; deleted ids are gone already",
            )
        return pos[pos >= 0]

    def delete(self, ids: Iterable[Any]) -> np.ndarray:
        """Tombstone the live ``ids`` (all must exist) and return their positions."""
        positions = np.unique(self.positions(ids, strict=True))
        self.deleted[positions] = True
        self._live -= len(positions)
        if self.mode == "str":
            for name in self.labels[positions].tolist():
                self._names.pop(name, None)
        self._sorted = None
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
        self._reindex()
        return keep

    def _reindex(self) -> None:
        live = np.flatnonzero(~self.deleted)
        self._live = len(live)
        self._sorted = None
        if self.mode == "str":
            self._names = dict(zip(self.labels[live].tolist(), live.tolist(), strict=True))

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
        m._reindex()
        return m
