"""The demo's model: customers the demo makes up, and a scikit-learn classifier trained on them.

``customers(n, drifted=...)`` draws customers; after the drift they call support more, move between plans,
and a high monthly spend now means loyalty rather than churn (the concept changes too, so the old model
gets worse, and retraining on recent labelled data helps).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

NUMERIC = ["tenure_months", "monthly_spend", "support_calls"]
CATEGORICAL = ["plan", "autopay"]
CLASSES = ["stay", "churn"]


def customers(n: int, *, drifted: bool = False, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Features and true labels ("stay"/"churn") of ``n`` customers."""
    rng = np.random.default_rng(seed)
    tenure = np.clip(rng.gamma(2.0, 14.0, n), 0, 120)
    spend = np.clip(rng.normal(80 if not drifted else 110, 30, n), 0, 500)
    calls = np.clip(rng.poisson(2.0 if not drifted else 5.5, n), 0, 30).astype(float)
    plan = rng.choice(["basic", "standard", "premium"], size=n, p=[0.5, 0.35, 0.15] if not drifted else [0.2, 0.3, 0.5])
    autopay = rng.random(n) < 0.55
    spend_effect = 0.02 if not drifted else -0.03  # the concept changes: spending more now means staying
    logit = (
        -1.2
        - 0.04 * tenure
        + spend_effect * (spend - 80)
        + 0.45 * calls
        - 0.8 * autopay
        + np.where(plan == "premium", -0.5, 0.0)
    )
    churn = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
    frame = pd.DataFrame(
        {
            "tenure_months": tenure.round(1),
            "monthly_spend": spend.round(2),
            "support_calls": calls,
            "plan": plan,
            "autopay": autopay,
        }
    )
    return frame, np.where(churn, "churn", "stay")


def train(frame: pd.DataFrame, labels: Any) -> Pipeline:
    model = Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [
                        ("numbers", StandardScaler(), NUMERIC),
                        ("categories", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
                    ]
                ),
            ),
            ("classifier", LogisticRegression(max_iter=500)),
        ]
    )
    model.fit(frame, labels)
    return model


def predict(model: Pipeline, frame: pd.DataFrame) -> tuple[list[str], list[list[float]]]:
    """Predicted classes and [stay, churn] probabilities, in the spec's class order."""
    proba = model.predict_proba(frame)
    order = [list(model.classes_).index(c) for c in CLASSES]
    scores = proba[:, order]
    return [CLASSES[int(i)] for i in scores.argmax(axis=1)], scores.round(6).tolist()
