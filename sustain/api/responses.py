"""A JSON response rendered with orjson (datetimes, numpy scalars and non-string keys included)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> JSON:
    return JSON(body, status_code=status, headers=headers)
