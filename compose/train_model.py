"""Train the compose stack's churn classifier and register it in MLflow (the one-shot ``train`` job).

Runs in the MLflow image (scikit-learn, pandas and numpy come with MLflow), against the tracking server
named by ``MLFLOW_TRACKING_URI``::

    python train_model.py --model churn [--rows 5000] [--seed 0]

The customers are made up, with the features of ``compose/sustain.yaml``. When the registered model
already has a version nothing is trained: the job can run on every ``docker compose up``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

NUMERIC = ["tenure_months", "monthly_spend", "support_calls"]
CATEGORICAL = ["plan", "autopay"]


def customers(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray[Any, Any]]:
    """Features of ``n`` customers and whether each churned ("churn") or stayed ("stay")."""
    rng = np.random.default_rng(seed)
    tenure = np.clip(rng.gamma(2.0, 14.0, n), 0, 120).round(1)
    spend = np.clip(rng.normal(80, 30, n), 0, 500).round(2)
    calls = np.clip(rng.poisson(2.0, n), 0, 30).astype(float)
    plan = rng.choice(["basic", "standard", "premium"], size=n, p=[0.5, 0.35, 0.15])
    autopay = rng.random(n) < 0.55
    logit = -1.2 - 0.04 * tenure + 0.02 * (spend - 80) + 0.45 * calls - 0.8 * autopay - 0.5 * (plan == "premium")
    churned = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
    frame = pd.DataFrame(
        {"tenure_months": tenure, "monthly_spend": spend, "support_calls": calls, "plan": plan, "autopay": autopay}
    )
    return frame, np.where(churned, "churn", "stay")


def classifier() -> Pipeline:
    features = ColumnTransformer(
        [
            ("numeric", StandardScaler(), NUMERIC),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
        ]
    )
    return Pipeline([("features", features), ("model", LogisticRegression(max_iter=1000))])


def registered_versions(client: MlflowClient, name: str) -> list[str]:
    try:
        return [v.version for v in client.search_model_versions(f"name = '{name}'")]
    except MlflowException:
        return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", default="churn", help="registered model name")
    parser.add_argument("--rows", type=int, default=5000, help="training rows")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    client = MlflowClient()
    versions = registered_versions(client, args.model)
    if versions:
        print(f"model {args.model!r} already has version(s) {', '.join(sorted(versions))}; nothing to train")
        return 0
    frame, labels = customers(args.rows, args.seed)
    pipeline = classifier().fit(frame, labels)
    accuracy = float((pipeline.predict(frame) == labels).mean())
    mlflow.set_experiment(args.model)
    with mlflow.start_run(run_name=f"{args.model}-compose"):
        mlflow.log_params({"rows": args.rows, "seed": args.seed})
        mlflow.log_metric("train_accuracy", accuracy)
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=infer_signature(frame, pipeline.predict(frame)),
            input_example=frame.head(3),
            registered_model_name=args.model,
        )
    print(f"registered {args.model!r} from {info.model_uri} (train accuracy {accuracy:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
