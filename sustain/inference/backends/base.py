"""What every backend is, and the pieces the HTTP ones share.

>>> columns_of([{"a": 1, "b": 2}, {"b": 3, "c": 4}])
['a', 'b', 'c']
>>> endpoint("http://127.0.0.1:5001", "/invocations"), endpoint("http://h/custom/path", "/invocations")
('http://127.0.0.1:5001/invocations', 'http://h/custom/path')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import orjson

from sustain.inference.config import BackendConfig
from sustain.inference.errors import BackendRejected, BackendTimeout, BackendUnavailable

Rows = Sequence[Mapping[str, Any]]
RETRY_STATUSES = frozenset({429, 502, 503, 504})


class Backend(Protocol):
    """Two verbs: predict a batch (one prediction per row, in order), and close."""

    def predict(self, rows: Rows) -> list[Any]: ...

    def close(self) -> None: ...


def columns_of(rows: Rows) -> list[str]:
    """Every field of the batch, in the order first seen (rows may lack some: they are sent as null)."""
    seen: dict[str, None] = {}
    for row in rows:
        for name in row:
            seen.setdefault(name, None)
    return list(seen)


def endpoint(target: str, default_path: str) -> str:
    """``target`` as given when it has a path, else ``default_path`` appended to it."""
    if urlsplit(target).path.strip("/"):
        return target
    return target.rstrip("/") + default_path


def check_count(predictions: Sequence[Any], rows: int, kind: str) -> list[Any]:
    if len(predictions) != rows:
        raise BackendRejected(f"the {kind} backend returned {len(predictions)} predictions for {rows} rows")
    return list(predictions)


class HttpBackend:
    """A JSON request to one URL per batch, with httpx; errors become BackendUnavailable or BackendRejected."""

    kind = "http"
    default_path = "/"

    def __init__(self, config: BackendConfig) -> None:
        self.config = config
        self.url = endpoint(config.target, self.path_for(config))
        headers = {"content-type": "application/json", **dict(config.headers)}
        self._client = httpx.Client(timeout=config.timeout, headers=headers)

    def path_for(self, config: BackendConfig) -> str:
        return self.default_path

    def encode(self, rows: Rows) -> Any:
        raise NotImplementedError

    def decode(self, reply: Any, rows: int) -> list[Any]:
        raise NotImplementedError

    def predict(self, rows: Rows) -> list[Any]:
        body = orjson.dumps(self.encode(rows), option=orjson.OPT_SERIALIZE_NUMPY)
        return self.decode(self.post(body), len(rows))

    def post(self, body: bytes) -> Any:
        try:
            response = self._client.post(self.url, content=body)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise BackendUnavailable(f"the {self.kind} backend at {self.url} cannot be reached: {exc}") from exc
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            # It took the batch and gave no answer: perhaps an item makes it hang or crash (see errors.py).
            raise BackendTimeout(f"the {self.kind} backend at {self.url} gave no answer: {exc!r}") from exc
        if response.status_code in RETRY_STATUSES:
            raise BackendUnavailable(f"the {self.kind} backend answered {response.status_code}: {_snippet(response)}")
        if response.status_code >= 300:
            raise BackendRejected(f"the {self.kind} backend answered {response.status_code}: {_snippet(response)}")
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise BackendRejected(f"the {self.kind} backend answered with no JSON: {_snippet(response)}") from exc

    def close(self) -> None:
        self._client.close()


def _snippet(response: httpx.Response) -> str:
    return response.text[:300].strip() or "(empty body)"


def mapping(reply: Any, kind: str) -> Mapping[str, Any]:
    if not isinstance(reply, Mapping):
        raise BackendRejected(f"the {kind} backend answered {type(reply).__name__}, not a JSON object")
    return reply
