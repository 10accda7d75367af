"""Where indicators are found: built-ins, the ``sustain.indicators`` entry points, and spec-named modules.

>>> from sustain.spec import IndicatorSpec
>>> build(IndicatorSpec(type="drift", params={"alpha": 0.05})).alpha
0.05
>>> build(IndicatorSpec(type="drift", params={"alfa": 0.05}))
Traceback (most recent call last):
...
sustain.errors.SpecError: indicator 'drift' has no parameter 'alfa'; it takes: ...
"""

from __future__ import annotations

import importlib
import inspect
from types import ModuleType
from typing import Any

from sustain.errors import PluginError, RegistryError, SpecError
from sustain.indicators.base import Indicator
from sustain.registry import Registry
from sustain.spec import IndicatorSpec


def _builtins() -> dict[str, type[Indicator]]:
    from sustain.indicators.builtin import BUILTIN

    return {cls.name: cls for cls in BUILTIN}


def _is_indicator(item: object) -> bool:
    return isinstance(item, type) and issubclass(item, Indicator) and bool(getattr(item, "name", None))


indicators: Registry[type[Indicator]] = Registry(
    "indicator", entry_point_group="sustain.indicators", builtins=_builtins, check=_is_indicator
)


def register(cls: type[Indicator], registry: Registry[type[Indicator]] | None = None) -> type[Indicator]:
    """Class decorator: register an indicator under its ``name``."""
    if not getattr(cls, "name", None):
        raise RegistryError(f"{cls.__qualname__} needs a class attribute 'name' to be registered")
    (indicators if registry is None else registry).register(cls.name, cls)
    return cls


def load_module(name: str, registry: Registry[type[Indicator]] | None = None) -> ModuleType:
    """Import a plugin module named in a spec and register every Indicator subclass it defines."""
    try:
        module = importlib.import_module(name)
    except Exception as exc:
        raise PluginError(f"cannot import indicator plugin module {name!r}: {exc}") from exc
    target = indicators if registry is None else registry
    for _, obj in inspect.getmembers(module, inspect.isclass):
        if (
            issubclass(obj, Indicator)
            and obj is not Indicator
            and obj.__module__ == module.__name__
            and not inspect.isabstract(obj)
            and getattr(obj, "name", None)
            and obj.name not in target
        ):
            target.register(obj.name, obj)
    return module


def build(spec: IndicatorSpec, registry: Registry[type[Indicator]] | None = None) -> Indicator:
    """An indicator instance for one spec entry; unknown types and parameters are spec errors."""
    try:
        cls = (indicators if registry is None else registry).get(spec.type)
    except RegistryError as exc:
        raise SpecError(str(exc), field="indicators.type") from None
    return construct(cls, spec.params, type_name=spec.type, spec_id=spec.id)


def construct(cls: type[Indicator], params: dict[str, Any], *, type_name: str, spec_id: str) -> Indicator:
    """``cls(**params)``, with a spec error naming an unknown parameter or a value the constructor refused."""
    accepted = [
        n
        for n, p in inspect.signature(cls.__init__).parameters.items()
        if (n != "self" and p.kind is p.KEYWORD_ONLY) or (n != "self" and p.kind is p.POSITIONAL_OR_KEYWORD)
    ]
    for key in params:
        if key not in accepted:
            raise SpecError(
                f"indicator {type_name!r} has no parameter {key!r}; it takes: {', '.join(accepted) or 'nothing'}",
                field=f"indicators.{spec_id}.params.{key}",
            )
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"indicator {spec_id!r}: {exc}", field=f"indicators.{spec_id}.params") from None
