"""One generic registry for every extension point.

Stores, indicators, alert actions and deploy targets are all registered the same
way: explicitly, by name, with clashes rejected, and optionally discovered from
an entry-point group (``sustain.stores``, ``sustain.indicators``, ...).

>>> shapes: Registry[type] = Registry("shapes")
>>> shapes.register("square", int)
>>> shapes.get("square")
<class 'int'>
>>> shapes.register("square", float)
Traceback (most recent call last):
...
sustain.errors.RegistryError: shapes: 'square' is already registered (by builtins.int)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Generic, TypeVar

from sustain.errors import RegistryError

T = TypeVar("T")


def _qualname(obj: object) -> str:
    module = getattr(obj, "__module__", type(obj).__module__)
    name = getattr(obj, "__qualname__", type(obj).__qualname__)
    return f"{module}.{name}"


class Registry(Generic[T]):
    """A name → plugin mapping for one extension point."""

    def __init__(self, kind: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._items: dict[str, T] = {}
        self._discovered = False

    def register(self, name: str, item: T) -> None:
        if not name or not name.replace("_", "").replace("-", "").replace(".", "").isalnum():
            raise RegistryError(f"{self.kind}: {name!r} is not a valid name (letters, digits, '_', '-', '.')")
        existing = self._items.get(name)
        if existing is not None and existing is not item:
            raise RegistryError(f"{self.kind}: {name!r} is already registered (by {_qualname(existing)})")
        self._items[name] = item

    def decorator(self, name: str) -> Callable[[T], T]:
        """Register the decorated object under ``name`` and return it unchanged."""

        def wrap(item: T) -> T:
            self.register(name, item)
            return item

        return wrap

    def unregister(self, name: str) -> None:
        self._items.pop(name, None)

    def discover(self) -> list[str]:
        """Load plugins from the entry-point group once; return the names added.

        A plugin that fails to import raises RegistryError naming it: a broken
        installation should be loud, not silently missing.
        """
        if self._discovered or self.entry_point_group is None:
            return []
        self._discovered = True
        added: list[str] = []
        for ep in metadata.entry_points(group=self.entry_point_group):
            if ep.name in self._items:
                continue
            try:
                item = ep.load()
            except Exception as exc:
                raise RegistryError(f"{self.kind}: entry point {ep.name!r} ({ep.value}) failed to load: {exc}") from exc
            self.register(ep.name, item)
            added.append(ep.name)
        return added

    def get(self, name: str) -> T:
        if name not in self._items:
            self.discover()
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise RegistryError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
