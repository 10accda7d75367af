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

from sustain.indicators.base import Indicator, IndicatorValue, Status
from sustain.indicators.context import WindowContext
from sustain.indicators.registry import indicators, register

__all__ = ["Indicator", "IndicatorValue", "Status", "WindowContext", "indicators", "register"]
