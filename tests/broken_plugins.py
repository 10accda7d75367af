"""Deliberately broken indicator plugins: the engine must contain every one of them."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from sustain.indicators import Indicator, IndicatorValue, WindowContext


class Raises(Indicator):
    name = "broken_raises"

    def compute(self, ctx: WindowContext) -> Iterable[IndicatorValue]:
        raise RuntimeError("this plugin always fails")


class Garbage(Indicator):
    name = "broken_garbage"

    def compute(self, ctx: WindowContext) -> Iterable[Any]:
        return ["not an indicator value", 42]


class NotANumber(Indicator):
    name = "broken_nan"

    def compute(self, ctx: WindowContext) -> Iterable[IndicatorValue]:
        yield IndicatorValue(None, float("nan"))


class Slow(Indicator):
    name = "broken_slow"

    def __init__(self, seconds: float = 5.0) -> None:
        self.seconds = seconds

    def compute(self, ctx: WindowContext) -> Iterable[IndicatorValue]:
        time.sleep(self.seconds)
        yield IndicatorValue(None, 1.0)
