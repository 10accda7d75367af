"""Validation of exported ElastAlert2 rules with the real ElastAlert2, in a venv of its own."""

from __future__ import annotations
