"""The built-in web UI: the overview, model and releases pages and their static files, plotly.js served from
the installed plotly package.

The pages are static shells; their data comes from ``/v1/dashboard/...`` with the
read token the page was opened with (``?token=``, kept in the tab's session
storage), so the pages themselves need no auth.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from sustain.errors import NotFound, StoreError
from sustain.plotly_asset import plotly_js

WEB = Path(__file__).resolve().parents[1] / "dashboards" / "web"  # the pages live with the dashboards
_NAME = re.compile(r"[A-Za-z0-9_-]+\.(js|css|svg)")
_TYPES = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8", "svg": "image/svg+xml"}
_NO_CACHE = {"Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)
_GET_HEAD = ["GET", "HEAD"]  # uptime checks often probe with HEAD


def _page(name: str) -> Response:
    return FileResponse(WEB / name, media_type="text/html; charset=utf-8", headers=_NO_CACHE)


@router.api_route("/", methods=_GET_HEAD)
async def overview_page() -> Response:
    return _page("index.html")


@router.api_route("/models/{model}", methods=_GET_HEAD)
async def model_page(model: str) -> Response:
    return _page("model.html")


@router.api_route("/releases", methods=_GET_HEAD)
async def releases_page() -> Response:
    return _page("releases.html")


@router.api_route("/static/plotly.min.js", methods=_GET_HEAD)
async def plotly() -> Response:
    path = plotly_js()
    if path is None:
        raise StoreError("the web UI's charts need the plotly package: pip install plotly")
    return FileResponse(path, media_type=_TYPES["js"], headers={"Cache-Control": "public, max-age=86400"})


@router.api_route("/static/{name}", methods=_GET_HEAD)
async def static(name: str) -> Response:
    path = WEB / name
    match = _NAME.fullmatch(name)
    if match is None or not path.is_file():
        raise NotFound(f"no static file {name!r}", field="name")
    return FileResponse(path, media_type=_TYPES[match.group(1)], headers=_NO_CACHE)
