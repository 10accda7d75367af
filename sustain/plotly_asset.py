"""Where the installed plotly package keeps plotly.js: served by the web UI, inlined by the HTML drift report."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path


@cache
def plotly_js() -> Path | None:
    """``plotly/package_data/plotly.min.js`` of the installed plotly package, found without importing it."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "package_data" / "plotly.min.js"
        if path.is_file():
            return path
    return None
