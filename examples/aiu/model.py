"""The model behind the units in this example: a Python function taking a batch of rows.

Serve it with ``--backend-kind python --backend model:predict`` (this folder on ``PYTHONPATH``). Any serving
backend works the same way: an MLflow scoring server (``--backend-kind mlflow --backend http://host:port``),
Seldon Core v1 (``seldon``) or an Open Inference Protocol server such as MLServer or Triton (``v2``).
"""

from __future__ import annotations

import math
from typing import Any

PLAN_RISK = {"basic": 0.8, "standard": 0.0, "premium": -0.6}


def predict(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One prediction per row, in order: a churn score and the label it implies."""
    out = []
    for row in rows:
        z = 1.5 - 0.05 * float(row["tenure"]) + 0.02 * (float(row["monthly"]) - 60) + PLAN_RISK[row["plan"]]
        score = 1 / (1 + math.exp(-z))
        out.append({"label": "churn" if score >= 0.5 else "stay", "score": round(score, 4)})
    return out
