"""HTTP routes beyond capture: indicators, alerts and dashboards (FastAPI lives here, not in the core)."""

from __future__ import annotations
