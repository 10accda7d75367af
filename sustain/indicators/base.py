"""The indicator contract: a small class with one verb, ``compute(ctx)``.

An indicator receives typed window data through :class:`WindowContext` and
returns :class:`IndicatorValue` objects; it never knows which engine computed
the window. Built-ins and plugins follow the same rules, river-style:

* constructor arguments are stored under their own names (so ``params()``,
  ``clone()`` and ``repr`` work without extra code);
* state that must survive between windows (change detectors) goes through
  ``state()`` / ``load_state()`` and is persisted by the engine;
* a seeded example in the docstring doubles as a test.

>>> class RowCount(Indicator):
...     name = "row_count"
...     def __init__(self, floor: int = 10):
...         self.floor = floor
...     def compute(self, ctx):
...         yield IndicatorValue(None, ctx.window.rows, status="ok" if ctx.window.rows >= self.floor else "warn")
>>> RowCount(floor=5)
RowCount(floor=5)
>>> RowCount(floor=5).clone().params()
{'floor': 5}
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from sustain.indicators.context import WindowContext

Status = Literal["ok", "warn", "alert", "insufficient", "error"]
STATUSES: tuple[Status, ...] = ("ok", "warn", "alert", "insufficient", "error")
SEVERITY: dict[str, int] = {"insufficient": 0, "ok": 0, "warn": 1, "alert": 2, "error": 1}


@dataclass(frozen=True)
class IndicatorValue:
    """One number an indicator computed for a window, with what is needed to trust it."""

    feature: str | None
    value: float | None
    status: Status = "ok"
    p_value: float | None = None
    threshold: float | None = None
    n: int | None = None
    method: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    metric: str | None = None  # which statistic, when one indicator reports several (accuracy, p95, ...)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {self.status!r}")


class Indicator(abc.ABC):
    """Base class of every indicator. Subclasses set ``name`` and implement ``compute``."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    needs_reference: ClassVar[bool] = False
    needs_labels: ClassVar[bool] = False

    @abc.abstractmethod
    def compute(self, ctx: WindowContext) -> Iterable[IndicatorValue]:
        """The values of this indicator for the window in ``ctx``."""

    def state(self) -> dict[str, Any] | None:
        """JSON-able state to keep across windows and engine restarts (None: stateless)."""
        return None

    def load_state(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional hook, stateless by default
        """Restore what :meth:`state` returned."""

    def params(self) -> dict[str, Any]:
        """Constructor arguments, read back from the attributes of the same names."""
        signature = inspect.signature(type(self).__init__)
        return {
            name: getattr(self, name)
            for name, p in signature.parameters.items()
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and hasattr(self, name)
        }

    def clone(self) -> Indicator:
        return type(self)(**self.params())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


IndicatorFactory = Callable[..., Indicator]


def worst(statuses: Iterable[str]) -> Status:
    """The most severe of several statuses ("alert" beats "warn" beats "ok")."""
    best: Status = "ok"
    for s in statuses:
        if SEVERITY.get(s, 0) > SEVERITY[best] or (s == "error" and best == "ok"):
            best = s  # type: ignore[assignment]
    return best
