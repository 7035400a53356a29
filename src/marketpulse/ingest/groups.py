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
        # a stable sort of small integers is a radix sort in numpy: O(n)
        small = codes.astype(np.uint16) if n_groups <= np.iinfo(np.uint16).max else codes
        self.order = np.argsort(small, kind="stable")
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
        for lo, hi in zip(self.bounds[:-1], self.bounds[1:], strict=True):
            seg = np.maximum.accumulate(v[lo:hi])
            out[lo] = initial[self._sorted_codes[lo]]
            out[lo + 1 : hi] = np.maximum(seg[:-1], out[lo])
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

    def next_selected(self, values: np.ndarray, selected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per row, ``values`` at the next later *selected* row of its group, and whether there is one."""
        if self.n == 0:
            return values.copy(), np.zeros(0, dtype=bool)
        sel = self._to_sorted(selected)
        nxt_pos = np.where(sel, self._positions, self.n)
        after = np.empty(self.n, dtype=np.int64)
        after[-1] = self.n
        after[:-1] = np.minimum.accumulate(nxt_pos[::-1])[::-1][1:]
        group_end = self.bounds[1:][self._sorted_codes_rank()]
        has = after < group_end
        v = self._to_sorted(values)
        out = np.where(has, v[np.minimum(after, self.n - 1)], v)
        return self._to_original(out), self._to_original(has)

    def _sorted_codes_rank(self) -> np.ndarray:
        """Per sorted row, the index of its group among the groups present (for ``bounds``)."""
        return np.cumsum(self._first) - 1

    def count_before(self, selected: np.ndarray) -> np.ndarray:
        """Per row, how many earlier rows of its group are selected."""
        sel = self._to_sorted(selected).astype(np.int64)
        csum = np.cumsum(sel) - sel  # selected strictly before, over the whole sorted array
        base = csum[self._group_start]
        return self._to_original(csum - base)

    def last_selected(self, selected: np.ndarray) -> dict[int, int]:
        """Group code → original index of the group's last selected row (groups with none are absent)."""
        if self.n == 0:
            return {}
        sel = self._to_sorted(selected)
        pos = np.where(sel, self._positions, -1)
        last = np.maximum.reduceat(pos, self.bounds[:-1])
        return {
            int(self._sorted_codes[lo]): int(self.order[p])
            for lo, p in zip(self.bounds[:-1], last, strict=True)
            if p >= 0
        }
