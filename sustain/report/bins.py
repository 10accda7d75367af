"""Numeric bins for the one-shot drift report, and a fast exact way to count values in them.

The bins are the reference's quantiles, right-closed: value ``x`` falls in bin ``k``, the first with
``x <= edges[k]`` (the last bin takes everything above the last edge), as in DuckDB's ``histogram`` with
boundaries. Rather than placing every value with a binary search (``np.searchsorted``, about 24 ms a million
values), the counter keeps ``#{x <= edge}`` per edge: one vectorised comparison and ``count_nonzero`` per
edge, about 2 ms a million values for 19 edges, because each pass streams a cache-resident batch. Past
:data:`COMPARE_MAX` edges the binary search wins again and is used instead. Both are exact.

>>> rng = np.random.default_rng(0)
>>> bins = NumericBins.from_sample(rng.normal(size=20_000), bins=10)
>>> len(bins.edges)
9
>>> counts = bins.new_counts()
>>> values = rng.normal(size=100_000)
>>> bins.add(values, counts, Scratch())
>>> expected = np.bincount(np.searchsorted(bins.edges, values, side="left"), minlength=10)
>>> bool(np.array_equal(bins.bin_counts(counts), expected))
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sustain.transforms.edges import quantile_edges

COMPARE_MAX = 40
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class Scratch:
    """A work buffer reused across batches: a fresh array per comparison costs an allocation each time."""

    def __init__(self) -> None:
        self._flags: npt.NDArray[np.bool_] = np.empty(0, dtype=bool)

    def flags(self, n: int) -> npt.NDArray[np.bool_]:
        if self._flags.size < n:
            self._flags = np.empty(n, dtype=bool)
        return self._flags[:n]


@dataclass(frozen=True)
class NumericBins:
    """The interior ``edges`` of right-closed bins; ``len(edges) + 1`` bins in all."""

    edges: FloatArray

    @classmethod
    def from_sample(cls, sample: FloatArray, bins: int) -> NumericBins:
        """Quantile bins from a sample of the reference (NaN already removed), or one bin per value when the
        sample holds at most ``bins`` distinct values (:func:`sustain.transforms.edges.quantile_edges`, the
        profile's edges too).

        >>> NumericBins.from_sample(np.array([3.0, 1.0, 2.0, 2.0]), bins=5).edges.tolist()
        [1.0, 2.0]
        """
        return cls(quantile_edges(sample, bins))

    def new_counts(self) -> IntArray:
        """An empty running count: ``#{x <= edges[k]}`` for each edge, then the number of values."""
        return np.zeros(self.edges.size + 1, dtype=np.int64)

    def add(self, values: FloatArray, counts: IntArray, scratch: Scratch) -> None:
        """Count ``values`` (no NaN; infinities are fine) into a running count from :meth:`new_counts`."""
        if values.size == 0:
            return
        if self.edges.size > COMPARE_MAX:
            placed = np.bincount(np.searchsorted(self.edges, values, side="left"), minlength=self.edges.size + 1)
            counts[:-1] += np.cumsum(placed)[:-1]
        else:
            flags = scratch.flags(values.size)
            for k, edge in enumerate(self.edges):
                np.less_equal(values, edge, out=flags)
                counts[k] += np.count_nonzero(flags)
        counts[-1] += values.size

    def bin_counts(self, counts: IntArray) -> FloatArray:
        """Per-bin counts from a running count made by :meth:`add`."""
        return np.diff(counts, prepend=0).astype(float)
