"""Alerting: rules on indicator documents, alert lifecycles, signed actions, and the ElastAlert2 export."""

from __future__ import annotations
