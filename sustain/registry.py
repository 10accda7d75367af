"""One generic registry for every extension point.

Stores, indicators, alert actions, deploy targets and inference backends are all registered the same way:
explicitly, by name, with clashes rejected and types checked, plus the built-ins a loader hook supplies and
the plugins an entry-point group (``sustain.stores``, ``sustain.indicators``, ...) declares. Every read
(``get``, ``names``, ``in``, ``len``, iteration) sees all three.

>>> shapes: Registry[type] = Registry("shapes", check=lambda item: isinstance(item, type))
>>> shapes.register("square", int)
>>> shapes.get("square")
<class 'int'>
>>> shapes.register("square", float)
Traceback (most recent call last):
...
sustain.errors.RegistryError: shapes: 'square' is already registered (by builtins.int)
>>> shapes.register("circle", 3.14)
Traceback (most recent call last):
...
sustain.errors.RegistryError: shapes: 'circle' cannot be registered: 3.14 is not the right kind of object

A registry is a plain object: code that reads one takes it as a parameter defaulting to the global one, so a
test can hand in a fresh ``Registry`` and leave the global one untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from importlib import metadata
from typing import Generic, TypeVar

from sustain.errors import RegistryError

T = TypeVar("T")


def _qualname(obj: object) -> str:
    module = getattr(obj, "__module__", type(obj).__module__)
    name = getattr(obj, "__qualname__", type(obj).__qualname__)
    return f"{module}.{name}"


class Registry(Generic[T]):
    """A name → plugin mapping for one extension point.

    ``builtins`` returns the built-in entries; it runs on the first read, so importing the registry never
    imports the plugins themselves. ``check`` is called on every item registered and must return true.
    """

    def __init__(
        self,
        kind: str,
        entry_point_group: str | None = None,
        *,
        builtins: Callable[[], Mapping[str, T]] | None = None,
        check: Callable[[object], bool] | None = None,
    ) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._builtins = builtins
        self._check = check
        self._items: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str, item: T) -> None:
        if not name or not name.replace("_", "").replace("-", "").replace(".", "").isalnum():
            raise RegistryError(f"{self.kind}: {name!r} is not a valid name (letters, digits, '_', '-', '.')")
        if self._check is not None and not self._check(item):
            raise RegistryError(f"{self.kind}: {name!r} cannot be registered: {item!r} is not the right kind of object")
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
        """Load the built-ins and the entry-point group's plugins (once); return the names added.

        A plugin that fails to import raises RegistryError naming it: a broken installation should be loud,
        not silently missing. Explicit registrations made earlier win over entry points of the same name.
        """
        if self._loaded:
            return []
        self._loaded = True
        added: list[str] = []
        if self._builtins is not None:
            for name, item in self._builtins().items():
                if name not in self._items:
                    self.register(name, item)
                    added.append(name)
        if self.entry_point_group is None:
            return added
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
        self.discover()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self.discover()
        return len(self._items)
