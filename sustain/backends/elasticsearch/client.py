"""The Elasticsearch client behind the backend, and the boundary where its errors become sustain's.

The official ``elasticsearch`` 8.x client is imported only when a store is opened,
so sustain imports without it. Every call goes through :meth:`ESClient.call`, which
turns client and transport errors into :class:`~sustain.errors.StoreError` (a
mapping that cannot change type into :class:`~sustain.errors.Conflict`), and lets
callers name the outcomes they expect, such as a missing index on a read.

>>> error_summary({"error": {"type": "index_not_found_exception", "reason": "no such index [x]"}, "status": 404})
('index_not_found_exception', 'no such index [x]')
>>> error_summary("plain text")
(None, 'plain text')
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

from sustain.backends.elasticsearch.config import ESConfig
from sustain.errors import Conflict, StoreError

log = logging.getLogger("sustain.backends.elasticsearch.store")

ALREADY_EXISTS = "resource_already_exists_exception"
NOT_FOUND = 404
# Elasticsearch's answer when a mapping update would change a field's type.
_TYPE_CHANGE = ("cannot be changed from type", "can't merge")
PAGE_SIZE = 1000
MAX_RESULT_WINDOW = 10_000

# One bulk operation: its action line and, except for deletes, its source line (each ending in a newline).
Operation = tuple[bytes, ...]


def error_summary(body: Any) -> tuple[str | None, str]:
    """(error type, reason) of an Elasticsearch error body (root cause first when given)."""
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        error = body["error"]
        causes = error.get("root_cause") or []
        first = causes[0] if causes and isinstance(causes[0], Mapping) else error
        return str(first.get("type") or error.get("type")), str(first.get("reason") or error.get("reason") or "")
    return None, str(body)


def _status(exc: BaseException) -> int | None:
    meta = getattr(exc, "meta", None)
    status = getattr(meta, "status", None)
    return status if isinstance(status, int) else None


class ESClient:
    """One ``elasticsearch.Elasticsearch`` client with sustain's error boundary."""

    def __init__(self, config: ESConfig, transport_options: Mapping[str, Any] | None = None) -> None:
        """``transport_options`` go to ``elasticsearch.Elasticsearch`` as they are (``node_class``, ...): the
        tests pass the transport node class of their in-memory cluster."""
        try:
            import elasticsearch
        except ImportError as exc:
            raise StoreError(
                "the Elasticsearch store needs the elasticsearch package: pip install 'sustain[elasticsearch]'"
            ) from exc
        self.config = config
        self._api_error: type[BaseException] = elasticsearch.ApiError
        self._errors: tuple[type[BaseException], ...] = (elasticsearch.ApiError, elasticsearch.TransportError)
        try:
            self.raw: Any = elasticsearch.Elasticsearch(
                list(config.hosts), **config.client_options(), **dict(transport_options or {})
            )
        except (ValueError, TypeError) as exc:
            raise StoreError(f"cannot configure the Elasticsearch client for {config.redacted}: {exc}") from exc

    def close(self) -> None:
        self.raw.close()

    def call(self, what: str, request: Callable[[Any], Any], *, allow: Collection[int | str] = ()) -> Any:
        """``request(client)``'s body; None when it failed with a status or error type in ``allow``."""
        try:
            response = request(self.raw)
        except self._errors as exc:
            status = _status(exc) if isinstance(exc, self._api_error) else None
            kind, reason = error_summary(getattr(exc, "body", None)) if status is not None else (None, str(exc))
            if status in allow or kind in allow:
                return None
            if status is None:
                raise StoreError(f"{what}: cannot reach Elasticsearch at {self.config.redacted}: {exc}") from exc
            if status == 400 and any(marker in f"{kind} {reason}" for marker in _TYPE_CHANGE):
                raise Conflict(f"{what}: {reason}; a stored field cannot change type, give it a new name") from exc
            raise StoreError(f"{what}: Elasticsearch answered {status} {kind}: {reason}") from exc
        return getattr(response, "body", response)

    def request(self, what: str, api: str, *, allow: Collection[int | str] = (), **params: Any) -> Any:
        """Call the client method named ``api`` (``"search"``, ``"transform.stop_transform"``) with ``params``."""

        def send(es: Any) -> Any:
            method = es
            for part in api.split("."):
                method = getattr(method, part)
            return method(**params)

        return self.call(what, send, allow=allow)

    def bulk(self, what: str, operations: list[Operation], **params: Any) -> list[dict[str, Any]]:
        """Send bulk operations in requests of at most 8 MB; every item of every response, in order.

        Items refused with 429 (a full write queue) are sent again, up to three times, with backoff.
        """
        items: list[dict[str, Any]] = []
        for chunk in _chunks(operations):
            items.extend(self._bulk_chunk(what, chunk, params))
        return items

    def _bulk_chunk(self, what: str, chunk: list[Operation], params: dict[str, Any]) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = [{} for _ in chunk]
        todo = list(range(len(chunk)))
        for attempt in range(4):
            body = b"".join(line for i in todo for line in chunk[i])
            response = self.request(what, "bulk", operations=body, **params)
            retry = []
            for i, item in zip(todo, response["items"], strict=True):
                results[i] = item
                if item_status(item) == 429 and attempt < 3:
                    retry.append(i)
            if not retry:
                break
            log.warning("%s: %d bulk items refused with 429, retrying", what, len(retry))
            time.sleep(0.5 * 2**attempt)
            todo = retry
        return results

    def search_all(
        self, what: str, index: str, body_for: Callable[[list[Any] | None], dict[str, Any]], limit: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every hit of a sorted search, page by page with ``search_after`` (nothing when the index is missing).

        ``body_for(after)`` builds the page's body; its sort must end with a unique tie-breaker.
        """
        after: list[Any] | None = None
        seen = 0
        while limit is None or seen < limit:
            body = body_for(after)
            if limit is not None:
                body["size"] = min(body.get("size", PAGE_SIZE), limit - seen)
            response = self.request(what, "search", index=index, body=body, allow=[NOT_FOUND])
            hits = [] if response is None else response["hits"]["hits"]
            yield from hits
            seen += len(hits)
            if len(hits) < body.get("size", PAGE_SIZE) or not hits:
                return
            after = hits[-1]["sort"]

    def get_source(self, what: str, index: str, doc_id: str) -> dict[str, Any] | None:
        """The ``_source`` of one document, or None when it (or its index) does not exist."""
        response = self.call(what, lambda es: es.get(index=index, id=doc_id), allow=[NOT_FOUND])
        if response is None or not response.get("found"):
            return None
        source: dict[str, Any] = response["_source"]
        return source

    def ensure_index(self, what: str, index: str, body: dict[str, Any]) -> None:
        """Create ``index`` with ``body`` unless it exists."""
        self.call(what, lambda es: es.indices.create(index=index, body=body), allow=[ALREADY_EXISTS])


def operations(ndjson: bytes) -> list[Operation]:
    r"""The (action, source) line pairs of an NDJSON bulk body made only of index/create actions.

    >>> operations(b'{"create":{}}\n{"a":1}\n{"create":{}}\n{"a":2}\n')
    [(b'{"create":{}}\n', b'{"a":1}\n'), (b'{"create":{}}\n', b'{"a":2}\n')]
    """
    lines = ndjson.splitlines(keepends=True)
    return [(lines[i], lines[i + 1]) for i in range(0, len(lines), 2)]


def item_status(item: Mapping[str, Any]) -> int:
    """The HTTP status of one bulk response item (``{"<op>": {"status": ...}}``)."""
    [(_, result)] = item.items()
    return int(result.get("status", 0))


def _chunks(ops: list[Operation], max_bytes: int = 8 * 1024 * 1024) -> Iterator[list[Operation]]:
    chunk: list[Operation] = []
    size = 0
    for op in ops:
        op_size = sum(len(line) for line in op)
        if chunk and size + op_size > max_bytes:
            yield chunk
            chunk, size = [], 0
        chunk.append(op)
        size += op_size
    if chunk:
        yield chunk
