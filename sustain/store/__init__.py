"""Storage backends, chosen by URI scheme.

A scheme ``<backend>+<transport>`` (``elasticsearch+https``) is looked up as itself, then as
``<backend>``, since registry names cannot hold a ``+``.

>>> open_store("postgres://db/sustain")
Traceback (most recent call last):
...
sustain.errors.StoreError: unsupported store URI 'postgres://db/sustain'; supported schemes: duckdb, elasticsearch
"""

from __future__ import annotations

from collections.abc import Callable

from sustain.errors import StoreError
from sustain.registry import Registry
from sustain.store.base import (
    AppendResult,
    EventBatch,
    EventQuery,
    LabelBatch,
    PendingHalf,
    ReferenceInfo,
    Store,
)

DEFAULT_STORE_URI = "duckdb:///./data/sustain.duckdb"

StoreFactory = Callable[[str], Store]

stores: Registry[StoreFactory] = Registry("store backend", entry_point_group="sustain.stores")


def _duckdb(uri: str) -> Store:
    from sustain.store.duckdb import DuckDBStore

    return DuckDBStore(uri)


stores.register("duckdb", _duckdb)


def _elasticsearch(uri: str) -> Store:
    """``elasticsearch+http://`` and ``elasticsearch+https://`` URIs (the backend checks the transport)."""
    from sustain.store.elasticsearch import ElasticsearchStore

    return ElasticsearchStore(uri)


stores.register("elasticsearch", _elasticsearch)


def open_store(uri: str = DEFAULT_STORE_URI) -> Store:
    """Open the store named by ``uri`` (``duckdb:///path``, or a scheme a plugin registers)."""
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    if scheme not in stores:
        stores.discover()
    if scheme not in stores:
        scheme = scheme.split("+", 1)[0]
    if scheme not in stores:
        supported = ", ".join(stores.names())
        raise StoreError(f"unsupported store URI {uri!r}; supported schemes: {supported}")
    return stores.get(scheme)(uri)


__all__ = [
    "DEFAULT_STORE_URI",
    "AppendResult",
    "EventBatch",
    "EventQuery",
    "LabelBatch",
    "PendingHalf",
    "ReferenceInfo",
    "Store",
    "open_store",
    "stores",
]
