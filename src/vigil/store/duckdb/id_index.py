"""An in-memory index of the event ids a table holds, for de-duplicating on ingest.

DuckDB's ART index made every insert about three times slower; instead each
event table's ids are kept here as sorted 64-bit hashes, loaded on first use
and grown as batches commit. A hit is only a *candidate*: the caller confirms
it against the table, so a hash collision never drops an event. No other
process can write while the file is open here (DuckDB locks it), and every
connection to it in this process shares one index (``Database.shared``), so
the index stays complete.

>>> index = EventIdIndex()
>>> index.add(np.array([5, 1, 9], dtype=np.uint64))
>>> index.contains(np.array([9, 2], dtype=np.uint64)).tolist()
[True, False]
"""

from __future__ import annotations

import numpy as np


class EventIdIndex:
    """Sorted hashes in a main array plus small sorted runs, merged when the runs grow."""

    def __init__(self, hashes: np.ndarray | None = None) -> None:
        self.main = np.sort(hashes.astype(np.uint64)) if hashes is not None else np.empty(0, np.uint64)
        self.runs: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self.main) + sum(len(r) for r in self.runs)

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        """Whether each hash may already be stored."""
        found = np.zeros(len(hashes), dtype=bool)
        for arr in (self.main, *self.runs):
            if len(arr):
                pos = np.searchsorted(arr, hashes)
                pos[pos == len(arr)] = 0
                found |= arr[pos] == hashes
        return found

    def add(self, hashes: np.ndarray, *, presorted: bool = False) -> None:
        """Record newly stored hashes (``presorted`` saves a sort when they already are)."""
        if not len(hashes):
            return
        hashes = hashes.astype(np.uint64, copy=False)
        self.runs.append(hashes if presorted else np.sort(hashes))
        if len(self.runs) > 16 or sum(len(r) for r in self.runs) > max(len(self.main) // 4, 65_536):
            self.main = np.sort(np.concatenate([self.main, *self.runs]))
            self.runs = []
