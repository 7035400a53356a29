"""Per-symbol operations on columns without a Python loop per row.

:class:`Groups` sorts rows by a group code once (stable, so each group keeps source order) and offers the
operations that stateful per-symbol stages need: the previous value of the group, the value of the previous
*selected* row of the group, running maxima, medians and the last row of each group. Every operation takes and
returns arrays in the **original row order**; values for rows that have no predecessor in the batch come from a
per-group ``initial`` array (the state carried over from earlier batches).
"""

from __future__ import annotations

import numpy as np


class Groups:
    """Rows grouped by integer ``codes`` in ``[0, n_groups)``."""

    def __init__(self, codes: np.ndarray, n_groups: int) -> None:
        self.n = len(codes)
        self.n_groups = n_groups
        self.codes = codes
        self.order = np.argsort(codes, kind="stable")
        sorted_codes = codes[self.order]
        self._first = np.ones(self.n, dtype=bool)
        self._first[1:] = sorted_codes[1:] != sorted_codes[:-1]
        self.bounds = np.append(np.flatnonzero(self._first), self.n)
        positions = np.arange(self.n)
        self._group_start = np.maximum.accumulate(np.where(self._first, positions, 0)) if self.n else positions
        self._positions = positions
        self._sorted_codes = sorted_codes

    def _to_sorted(self, values: np.ndarray) -> np.ndarray:
        return values[self.order]

    def _to_original(self, sorted_values: np.ndarray) -> np.ndarray:
        out = np.empty_like(sorted_values)
        out[self.order] = sorted_values
        return out

    def previous_selected(self, values: np.ndarray, selected: np.ndarray, initial: np.ndarray) -> np.ndarray:
        """Per row, ``values`` at the latest earlier *selected* row of its group, else ``initial[group]``."""
        if self.n == 0:
            return values.copy()
        sel = self._to_sorted(selected)
        last = np.where(sel, self._positions, -1)
        before = np.empty(self.n, dtype=np.int64)
        before[0] = -1
        before[1:] = np.maximum.accumulate(last)[:-1]
        inside = before >= self._group_start
        v = self._to_sorted(values)
        out = np.where(inside, v[np.maximum(before, 0)], initial[self._sorted_codes])
        return self._to_original(out.astype(np.result_type(values.dtype, initial.dtype)))

    def previous(self, values: np.ndarray, initial: np.ndarray) -> np.ndarray:
        """Per row, the previous row's value in its group, else ``initial[group]``."""
        return self.previous_selected(values, np.ones(self.n, dtype=bool), initial)

    def next_value(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per row, the next row's value in its group and whether there is one."""
        v = self._to_sorted(values)
        has = np.zeros(self.n, dtype=bool)
        nxt = v.copy()
        if self.n > 1:
            has[:-1] = ~self._first[1:]
            nxt[:-1] = np.where(has[:-1], v[1:], v[:-1])
        return self._to_original(nxt), self._to_original(has)

    def running_max_before(self, values: np.ndarray, initial: np.ndarray) -> np.ndarray:
        """Per row, the max of ``initial[group]`` and the values of the earlier rows of its group."""
        v = self._to_sorted(values)
        out = np.empty_like(v)
        for g, (lo, hi) in enumerate(zip(self.bounds[:-1], self.bounds[1:], strict=True)):
            seg = np.maximum.accumulate(v[lo:hi])
            out[lo] = initial[self._sorted_codes[lo]]
            out[lo + 1 : hi] = np.maximum(seg[:-1], out[lo])
            del g
        return self._to_original(out)

    def median(self, values: np.ndarray) -> np.ndarray:
        """Per group, the median of the non-NaN ``values`` (NaN when none); indexed by group code."""
        v = self._to_sorted(values)
        out = np.full(self.n_groups, np.nan)
        for lo, hi in zip(self.bounds[:-1], self.bounds[1:], strict=True):
            seg = v[lo:hi]
            seg = seg[~np.isnan(seg)]
            if seg.size:
                out[self._sorted_codes[lo]] = np.median(seg)
        return out

    def count(self) -> np.ndarray:
        """Rows per group, indexed by group code."""
        return np.bincount(self.codes, minlength=self.n_groups)

    def rank(self) -> np.ndarray:
        """Per row, its 0-based position within its group (source order)."""
        return self._to_original(self._positions - self._group_start)

    def last_rows(self) -> dict[int, int]:
        """Group code → original index of the group's last row."""
        ends = self.bounds[1:] - 1
        return {int(self._sorted_codes[e]): int(self.order[e]) for e in ends}

    def run_rank(self, values: np.ndarray) -> np.ndarray:
        """Per row, its position within the run of equal consecutive ``values`` of its group."""
        v = self._to_sorted(values)
        new = self._first.copy()
        if self.n > 1:
            new[1:] |= v[1:] != v[:-1]
        start = np.maximum.accumulate(np.where(new, self._positions, 0))
        return self._to_original(self._positions - start)
