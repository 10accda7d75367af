"""Storage backends, chosen by URI scheme: the embedded DuckDB engine and Elasticsearch, or a plugin's.

A scheme ``<backend>+<transport>`` (``elasticsearch+https``) is looked up as itself, then as
``<backend>``, since registry names cannot hold a ``+``. Plugins register a factory ``uri -> Backend``
through the ``sustain.stores`` entry-point group.

>>> open_store("postgres://db/sustain")
Traceback (most recent call last):
...
sustain.errors.StoreError: unsupported store URI 'postgres://db/sustain'; supported schemes: duckdb, elasticsearch
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sustain.backends.base import Backend
from sustain.errors import StoreError
from sustain.registry import Registry
from sustain.store import DEFAULT_STORE_URI
from sustain.store.base import Store

BackendFactory = Callable[[str], Backend]


def _duckdb(uri: str) -> Backend:
    from sustain.backends.duckdb import DuckDBBackend

    return DuckDBBackend(uri)


def _elasticsearch(uri: str) -> Backend:
    """``elasticsearch+http://`` and ``elasticsearch+https://`` URIs (the backend checks the transport)."""
    from sustain.backends.elasticsearch import ElasticsearchBackend

    return ElasticsearchBackend(uri)


def _builtins() -> Mapping[str, BackendFactory]:
    return {"duckdb": _duckdb, "elasticsearch": _elasticsearch}


backends: Registry[BackendFactory] = Registry(
    "store backend", entry_point_group="sustain.stores", builtins=_builtins, check=callable
)


def open_backend(uri: str = DEFAULT_STORE_URI) -> Backend:
    """The backend named by ``uri`` (``duckdb:///path``, ``elasticsearch+https://...``, or a plugin's scheme)."""
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    if scheme not in backends:
        scheme = scheme.split("+", 1)[0]
    if scheme not in backends:
        supported = ", ".join(backends.names())
        raise StoreError(f"unsupported store URI {uri!r}; supported schemes: {supported}")
    backend = backends.get(scheme)(uri)
    if not isinstance(backend, Backend):
        raise StoreError(f"the {scheme!r} store plugin returned {type(backend).__name__}, not a sustain Backend")
    return backend


def open_store(uri: str = DEFAULT_STORE_URI) -> Store:
    """Open just the store named by ``uri`` (its engine is not built)."""
    return open_backend(uri).store


__all__ = ["Backend", "BackendFactory", "backends", "open_backend", "open_store"]
