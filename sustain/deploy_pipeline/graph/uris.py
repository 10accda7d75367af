"""Model URIs a graph may name, checked by their shape before any registry is asked.

>>> check_model_uri("models:/churn@champion") is None, check_model_uri("s3://mlflow/1/models/m-1/artifacts") is None
(True, True)
>>> check_model_uri("churn:v1")  # doctest: +ELLIPSIS
"model URI 'churn:v1' is not one MLflow or Seldon can load: use models:/NAME/VERSION, ..."
"""

from __future__ import annotations

import re
from dataclasses import dataclass

REGISTERED = re.compile(r"^models:/(?P<name>[^/@]+)(/(?P<version>[^/@]+)|@(?P<alias>[^/@]+))$")
LOGGED = re.compile(r"^models:/(?P<id>m-[0-9a-f]+)$")
RUNS = re.compile(r"^runs:/[0-9a-f]{8,}/.+$")
STORAGE_SCHEMES = ("s3://", "gs://", "wasbs://", "abfss://", "file://", "https://", "http://", "mlflow-artifacts:/")


@dataclass(frozen=True)
class ModelRef:
    """A parsed ``models:/`` URI: registered name and version or alias, or a logged-model id."""

    name: str | None = None
    version: str | None = None
    alias: str | None = None
    logged_id: str | None = None


def parse_models_uri(uri: str) -> ModelRef | None:
    """The parts of a ``models:/`` URI, or None for any other URI."""
    logged = LOGGED.match(uri)
    if logged:
        return ModelRef(logged_id=logged["id"])
    match = REGISTERED.match(uri)
    if match is None:
        return None
    return ModelRef(name=match["name"], version=match["version"], alias=match["alias"])


def check_model_uri(uri: str) -> str | None:
    """Why ``uri`` cannot name a model, or None when its shape is fine."""
    if uri.startswith("models:/"):
        if parse_models_uri(uri) is None:
            return f"model URI {uri!r} must read models:/NAME/VERSION, models:/NAME@ALIAS or models:/m-<id>"
        return None
    if uri.startswith("runs:/"):
        return None if RUNS.match(uri) else f"model URI {uri!r} must read runs:/RUN_ID/PATH"
    if uri.startswith(STORAGE_SCHEMES) or uri.startswith("/"):
        return None
    return (
        f"model URI {uri!r} is not one MLflow or Seldon can load: use models:/NAME/VERSION, models:/NAME@ALIAS, "
        "runs:/RUN_ID/PATH or a storage URI (s3://, gs://, file://)"
    )
