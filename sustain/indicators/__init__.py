"""Drift, stability and data-quality indicators."""

from __future__ import annotations
