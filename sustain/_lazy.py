"""Module attributes that import on first use (PEP 562), shared by the packages that keep imports cheap.

>>> import types
>>> module = types.ModuleType("demo")
>>> getattr_, dir_ = lazy_attributes("demo", {"dumps": "json"}, ["dumps"], vars(module))
>>> getattr_("dumps").__name__
'dumps'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any


def lazy_attributes(
    package: str, homes: Mapping[str, str], public: Sequence[str], namespace: MutableMapping[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``homes`` maps a name to the module that defines it
    (relative names are resolved inside ``package``); the value is cached in ``namespace`` once loaded."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(home if "." in home or home == "json" else f"{package}.{home}")
        value = getattr(module, name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(public))

    return __getattr__, __dir__
