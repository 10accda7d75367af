"""Indicators: drift, stability, label metrics, data quality, health, and the plugin API.

Write your own::

    from sustain.indicators import Indicator, IndicatorValue

    class MeanAge(Indicator):
        name = "mean_age"

        def compute(self, ctx):
            ages = ctx.rows(2000).frame()["age"]  # a seeded sample of the window, under the spec's names
            yield IndicatorValue("age", ages.mean() if ages.notna().any() else None, n=int(ages.notna().sum()))

(``ctx.window`` holds the window's aggregates over every event; ``ctx.reference_rows()`` the reference's sample)
and register it through the ``sustain.indicators`` entry-point group, or name
its module under ``plugins:`` in the monitor spec.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sustain._lazy import lazy_attributes as _lazy_attributes

if TYPE_CHECKING:
    from sustain.indicators.base import Indicator, IndicatorValue, Status
    from sustain.indicators.context import WindowContext
    from sustain.indicators.registry import indicators, register
    from sustain.indicators.rows import Rows

# Names load on first use: the window context pulls in pyarrow and the transforms, which the one-shot
# ``sustain drift`` report (it imports ``sustain.indicators.decide``) does not need.
_HOME = {
    "Indicator": "base",
    "IndicatorValue": "base",
    "Status": "base",
    "WindowContext": "context",
    "Rows": "rows",
    "indicators": "registry",
    "register": "registry",
}

__all__ = ["Indicator", "IndicatorValue", "Rows", "Status", "WindowContext", "indicators", "register"]

__getattr__, __dir__ = _lazy_attributes(__name__, _HOME, __all__, globals())
