"""The ``release:`` section of a model's monitor spec: the standards a registered version must meet, its tests,
where it is served and who promotes it.

Every field has a default, so a model without a ``release:`` section is released with the standard checks, a
manual promotion and the local target::

    models:
      - name: churn
        features: {...}
        release:
          policy: automatic            # promote by itself when every gate passes (default: manual)
          standards: {required_metrics: [accuracy], max_size_mb: 200}
          tests: [tests/model]         # the model's own pytest tests, with the loaded model as a fixture
          evaluation:                  # a gate against the version that is @champion
            thresholds: {accuracy_score: {min_absolute_change: 0.01}}
          latency_budget_ms: 200
          canary_percent: 10

>>> settings = ReleaseSettings.model_validate({"evaluation": {"thresholds": {"accuracy_score": {"threshold": 0.8}}}})
>>> settings.policy, settings.target, settings.evaluation.thresholds["accuracy_score"].greater()
('manual', 'local', True)
>>> MetricGate(threshold=3.0).greater("root_mean_squared_error")
False
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Metrics computed on a holdout, under MLflow's names, so thresholds read as they do in MLflow's documentation.
GREATER_IS_BETTER: dict[str, bool] = {
    "accuracy_score": True,
    "precision_score": True,
    "recall_score": True,
    "f1_score": True,
    "f1_score_macro": True,
    "roc_auc": True,
    "log_loss": False,
    "mean_absolute_error": False,
    "root_mean_squared_error": False,
    "mean_absolute_percentage_error": False,
    "r2_score": True,
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Standards(_Strict):
    """What a registered version must carry before anything runs it; each can be turned off."""

    signature: bool = Field(default=True, description="the model was logged with a signature")
    input_example: bool = Field(default=True, description="the model was logged with an input example")
    pinned_requirements: bool = Field(default=True, description="every requirement is pinned with ==")
    training_data: bool = Field(
        default=True, description="the run logged its training dataset (mlflow.log_input) or release.reference is set"
    )
    required_metrics: list[str] = Field(default_factory=list, description="metrics the version's run must have logged")
    max_size_mb: float = Field(default=500.0, gt=0, description="size budget of the model's artifacts")


class MetricGate(_Strict):
    """One threshold of :func:`mlflow.validate_evaluation_results` (``mlflow.models.MetricThreshold``)."""

    threshold: float | None = None
    min_absolute_change: float | None = Field(default=None, gt=0)
    min_relative_change: float | None = Field(default=None, gt=0, le=1)
    greater_is_better: bool | None = Field(default=None, description="default: known for MLflow's metric names")

    def greater(self, metric: str = "") -> bool:
        if self.greater_is_better is not None:
            return self.greater_is_better
        return GREATER_IS_BETTER.get(metric, True)


class Evaluation(_Strict):
    """The gate against ``@champion``: both versions predict a labelled holdout, then the thresholds are checked."""

    data: str | None = Field(
        default=None,
        description="holdout file or URI, or artifact:PATH in the version's run; default: the dataset the run "
        "logged with context evaluation, validation, test or holdout",
    )
    label: str | None = Field(default=None, description="the label column; default: the dataset's targets, or label")
    thresholds: dict[str, MetricGate] = Field(default_factory=dict)
    tolerance: float = Field(
        default=0.0,
        ge=0,
        description="without thresholds: the primary metric may be this much worse than the champion's",
    )

    @model_validator(mode="after")
    def _known_direction(self) -> Evaluation:
        for name, gate in self.thresholds.items():
            if gate.greater_is_better is None and name not in GREATER_IS_BETTER:
                known = ", ".join(sorted(GREATER_IS_BETTER))
                raise ValueError(f"threshold {name!r}: say greater_is_better (sustain computes {known})")
        return self


class ReferenceSource(_Strict):
    """A declared reference: the training data, when the run did not log it with ``mlflow.log_input``."""

    artifact: str | None = Field(default=None, description="a path among the version's run artifacts")
    path: str | None = Field(default=None, description="a file or URI (local path, s3://, http(s)://)")

    @model_validator(mode="after")
    def _one(self) -> ReferenceSource:
        if (self.artifact is None) == (self.path is None):
            raise ValueError("give exactly one of artifact or path")
        return self


class ReleaseSettings(_Strict):
    """How registered versions of this model become release candidates and reach production."""

    enabled: bool = Field(default=True, description="release registered versions of this model")
    policy: Literal["manual", "automatic"] = Field(
        default="manual", description="automatic: promote a candidate as soon as every gate passes"
    )
    target: str = Field(default="local", description="deploy target (sustain.targets entry point)")
    registered_model: str | None = Field(
        default=None, description="the MLflow registered model name, when it differs from this model's name"
    )
    standards: Standards = Field(default_factory=Standards)
    reference: ReferenceSource | None = None
    tests: list[str] = Field(
        default_factory=list, description="pytest files or folders (artifact:PATH for ones logged with the run)"
    )
    evaluation: Evaluation = Field(default_factory=Evaluation)
    latency_budget_ms: float = Field(default=1000.0, gt=0, description="p95 to predict the input example batch")
    canary_percent: float = Field(default=10.0, ge=0, le=100, description="share of traffic a candidate gets")
    shadow: bool = Field(default=False, description="the candidate sees a copy of every request; callers never do")
