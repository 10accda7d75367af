"""Validation of generated Elasticsearch bodies against Elastic's TypeScript API types (see check.py)."""

from __future__ import annotations
