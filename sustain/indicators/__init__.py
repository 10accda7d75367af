"""Indicators: drift, stability, label metrics, data quality, health, and the plugin API.

Write your own::

    from sustain.indicators import Indicator, IndicatorValue

    class MeanAge(Indicator):
        name = "mean_age"

        def compute(self, ctx):
            age = ctx.window.numeric("f:age")
            yield IndicatorValue("age", age.mean if age else None)

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

# Names load on first use: the window context pulls in pyarrow and the transforms, which the one-shot
# ``sustain drift`` report (it imports ``sustain.indicators.decide``) does not need.
_HOME = {
    "Indicator": "base",
    "IndicatorValue": "base",
    "Status": "base",
    "WindowContext": "context",
    "indicators": "registry",
    "register": "registry",
}

__all__ = ["Indicator", "IndicatorValue", "Status", "WindowContext", "indicators", "register"]

__getattr__, __dir__ = _lazy_attributes(__name__, _HOME, __all__, globals())
