"""Null distributions drawn once and reused: calibration keyed by reference, window-size bucket and distance.

Calibrating a binned distance (:func:`sustain.indicators.stats.calibration.null_distribution`) draws a few
hundred "no drift" pairs of histograms at the sizes being compared: about 1.5 ms per column, 40 ms for a
window of 26 columns, every window. Yet the null depends only on the reference's counts, the window's size and
the distance, and a model's windows are much alike in size. :class:`NullCache` draws each null once per

* reference: the reference counts of the column (a new reference profile is a new key),
* window-size bucket: sizes within about 2% of each other share a bucket (geometric buckets of 2^(1/32); the
  null is drawn at the bucket's own size, exact below :data:`EXACT_UP_TO`), so a p-value moves by less than the
  Monte-Carlo error of its draws,
* statistic: the distance (and its bin edges) and the number of draws,

with a seed derived from that key, so a null is the same whenever and wherever it is drawn. It keeps what the
decision reads of the draws: their mean and variance (the moment-matched gamma tail gives p-values and
thresholds), and the sorted draws (float32) for the empirical p-value. Entries live in memory (least recently
used out first) and, through a :class:`NullStore`, in the engine's store, so a restart reuses them.

>>> import numpy as np
>>> from sustain.indicators.stats import psi
>>> cache = NullCache()
>>> ref = np.array([100.0, 300.0, 400.0, 200.0])
>>> first = cache.summary(ref, 5000, "psi", psi, draws=200)
>>> cache.summary(ref, 5020, "psi", psi, draws=200) is first  # the same size bucket
True
>>> cache.hits, cache.misses, len(cache.take_new())
(1, 1, 1)
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from sustain.indicators.gamma import FLOOR_MARGIN, gamma_quantile, gamma_tail, null_moments

Counts = npt.NDArray[np.float64]
EXACT_UP_TO = 256  # window sizes up to this are their own bucket
BUCKETS_PER_DOUBLING = 32
DEFAULT_ENTRIES = 32_768  # about 60 MB with 400 draws each
# What one model comes to hold: its calibrated columns times the size buckets its windows span (26 columns and
# 5 to 6 buckets for windows of a Poisson 1,000 events in benchmarks/scale.py). A cache holding fewer per model
# than its models need evicts each null before its model's next window asks for it again (least recently used
# order is that cycle's worst case), so every lookup draws.
ENTRIES_PER_MODEL = 192


def size_bucket(n: int) -> int:
    """The window size a null is drawn at for a window of ``n`` values.

    >>> [size_bucket(n) for n in (100, 1000, 1010, 1030, 5000)]
    [100, 1002, 1002, 1024, 4978]
    """
    if n <= EXACT_UP_TO:
        return n
    return round(2 ** (round(BUCKETS_PER_DOUBLING * math.log2(n)) / BUCKETS_PER_DOUBLING))


def null_key(ref_counts: Counts, n: int, statistic: str, draws: int) -> str:
    """``<reference digest>|<statistic>|<size bucket>|<draws>``; ``statistic`` names the distance and whatever
    else defines it (bin edges)."""
    digest = hashlib.blake2b(np.ascontiguousarray(ref_counts, dtype=np.float64).tobytes(), digest_size=8).hexdigest()
    return f"{digest}|{statistic}|{size_bucket(n)}|{draws}"


@dataclass
class NullSummary:
    """What the drift decision reads of a null distribution."""

    mean: float
    var: float
    draws: npt.NDArray[np.float32]  # sorted
    _quantiles: dict[float, float] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, null: npt.NDArray[np.float64]) -> NullSummary:
        mean, var = null_moments(null)
        return cls(mean, var, np.sort(null).astype(np.float32))

    def tail(self, observed: float) -> float:
        """The moment-matched gamma's tail probability of ``observed`` (the p-value)."""
        return gamma_tail(self.mean, self.var, observed)

    def quantile(self, p: float) -> float:
        """The value exceeded with probability ``p`` under the fitted gamma (remembered per ``p``)."""
        found = self._quantiles.get(p)
        if found is None:
            found = self._quantiles[p] = gamma_quantile(self.mean, self.var, p)
        return found

    def threshold(self, floor: float, p: float) -> float:
        """``max(floor, self.quantile(p))``, the same number, skipping the quantile where the floor wins (as
        :func:`sustain.indicators.gamma.threshold_above`); a quantile already worked out is read instead."""
        if p not in self._quantiles and self.tail(floor * (1.0 - FLOOR_MARGIN)) <= p:
            return floor  # the reasoning of threshold_above
        return max(floor, self.quantile(p))

    def empirical_p(self, observed: float) -> float:
        """``(1 + #(draws >= observed)) / (1 + draws)``."""
        above = len(self.draws) - int(np.searchsorted(self.draws, np.float32(observed), side="left"))
        return (1 + above) / (1 + len(self.draws))

    @property
    def nbytes(self) -> int:
        return int(self.draws.nbytes) + 64


class NullStore(Protocol):
    """Where null summaries outlive the process (the engine's store)."""

    def load_nulls(self, prefix: str) -> dict[str, NullSummary]:
        """Every summary whose key starts with ``prefix``."""

    def save_nulls(self, items: Sequence[tuple[str, NullSummary]]) -> None: ...


Statistic = Callable[[Counts, Counts], float]


class NullCache:
    """Null summaries by key, drawn on first use, kept up to ``max_entries`` (least recently used out first),
    loaded from and queued for ``store``. Safe to share between threads."""

    def __init__(self, store: NullStore | None = None, max_entries: int = DEFAULT_ENTRIES) -> None:
        self.store = store
        self.max_entries = max_entries
        self.floor = max_entries  # what max_entries was set to; fit() grows from it
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[str, NullSummary] = OrderedDict()
        self._loaded: set[str] = set()  # prefixes already read from the store
        self._new: list[tuple[str, NullSummary]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def summary(self, ref_counts: Counts, n: int, statistic: str, measure: Statistic, draws: int = 400) -> NullSummary:
        """The null of ``measure`` (named ``statistic``) for a window of ``n`` values against ``ref_counts``."""
        from sustain.indicators.stats.calibration import null_distribution

        key = null_key(ref_counts, n, statistic, draws)
        found = self._get(key)
        if found is not None:
            return found
        seed = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")
        null = null_distribution(ref_counts, size_bucket(n), measure, draws=draws, seed=seed)
        made = NullSummary.of(null)
        with self._lock:
            self.misses += 1
            self._put(key, made)
            self._new.append((key, made))
        return made

    def _get(self, key: str) -> NullSummary | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return found
        prefix = key.split("|", 1)[0] + "|"
        if self.store is None or prefix in self._loaded:
            return None
        loaded = self.store.load_nulls(prefix)
        with self._lock:
            self._loaded.add(prefix)
            for k, v in loaded.items():
                self._entries.setdefault(k, v)
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
            self._trim()
        return found

    def _put(self, key: str, summary: NullSummary) -> None:
        self._entries[key] = summary
        self._trim()

    def _trim(self) -> None:
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def fit(self, models: int) -> None:
        """Room for the nulls of ``models`` models (:data:`ENTRIES_PER_MODEL` each), never below the
        ``max_entries`` set at construction; it only grows (the models computed here so far).

        >>> cache = NullCache(max_entries=1000)
        >>> cache.fit(2); cache.max_entries
        1000
        >>> cache.fit(1000); cache.max_entries
        192000
        """
        with self._lock:
            self.max_entries = max(self.max_entries, self.floor, ENTRIES_PER_MODEL * models)

    def take_new(self) -> list[tuple[str, NullSummary]]:
        """The summaries drawn since the last call (for the store's writer)."""
        with self._lock:
            new, self._new = self._new, []
        return new
