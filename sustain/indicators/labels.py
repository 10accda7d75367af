"""Label metrics per window, and performance estimated before the labels arrive.

``label_metrics`` joins the window's events with their labels (by request or
event id, whenever the labels came) and computes the metrics of
:mod:`sustain.indicators.metrics` — equal to scikit-learn's — plus label
coverage and label lag. When labels arrive late, the engine recomputes the
windows of their events.

``estimated_performance`` estimates the same classification metrics from the
model's calibrated scores alone (confidence-based estimation, as NannyML's
CBPE), with an interval, and puts the realised value beside the estimate once
labels are in. Scores are recalibrated on the labelled reference first when it
has labels (isotonic, per class), on the profile's labelled sample (up to
``reference.labelled_sample_size`` rows, 50,000 by default); the calibrators
are fitted on bootstrap resamples of it and the Monte Carlo draws are split
among them, so the interval covers the calibration's own uncertainty. Every
draw's metrics are computed on the model's own scores, as the realised ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from sustain.indicators.base import Indicator, IndicatorValue, Status
from sustain.indicators.context import WindowContext
from sustain.indicators.metrics._common import positive_index
from sustain.spec import ModelSpec, Output

CLASSIFICATION = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "f1_macro",
    "f1_weighted",
    "precision_macro",
    "recall_macro",
    "roc_auc",
    "log_loss",
    "brier",
)
REGRESSION = ("mae", "rmse", "mape", "r2", "bias")


def _outputs(spec: ModelSpec) -> tuple[Output | None, Output | None]:
    """(the output that is the prediction, the output that holds the scores)."""
    kinds = {o.kind: o for o in reversed(spec.outputs)}
    if spec.label is not None and spec.label.kind == "regression":
        return kinds.get("regression"), None
    return kinds.get("class_label"), kinds.get("class_scores") or kinds.get("probability")


def _classes(spec: ModelSpec, prediction: Output | None, scores: Output | None) -> list[str]:
    for candidate in (
        spec.label.classes if spec.label else None,
        scores.classes if scores else None,
        prediction.classes if prediction else None,
    ):
        if candidate:
            return list(candidate)
    return ["0", "1"]


def _positive(spec: ModelSpec, override: str | None) -> str | None:
    """The positive class of binary metrics and estimates: the indicator's own ``positive`` parameter, else the
    spec's ``label.positive_class``; None means the last class."""
    if override is not None:
        return override
    return spec.label.positive_class if spec.label is not None else None


def _score_columns(scores: Output | None, classes: list[str]) -> list[str]:
    """The stored score columns in ``classes`` order (scores are matched to classes by name, whatever order the
    output lists them in); none when the output does not score every class."""
    if scores is None:
        return []
    if scores.kind == "probability":
        return [f"o:{scores.name}"]
    listed = scores.classes or classes
    if any(c not in listed for c in classes):
        return []
    return [f"o:{scores.name}:{c}" for c in classes]


def _score_matrix(
    table: pa.Table, columns: Sequence[str], classes: list[str], positive: str | None
) -> np.ndarray | None:
    """Scores as an ``n × k`` matrix in ``classes`` order; a single probability is the positive class's score."""
    if not columns or any(c not in table.column_names for c in columns):
        return None
    matrix = np.column_stack([np.asarray(table.column(c).to_numpy(zero_copy_only=False), float) for c in columns])
    if len(columns) == 1 and len(classes) == 2:
        p = matrix[:, 0]
        pos = positive_index(classes, positive)
        matrix = np.empty((len(p), 2))
        matrix[:, pos], matrix[:, 1 - pos] = p, 1 - p
    return matrix


def _strings(table: pa.Table, column: str) -> list[str | None]:
    return [None if v is None else str(v) for v in table.column(column).to_pylist()]


class LabelMetrics(Indicator):
    """The window's events joined with their labels: coverage, label lag, and the model's metrics.

    >>> from sustain.indicators.checks import sample_context
    >>> values = {v.metric: v.value for v in LabelMetrics().compute(sample_context(rows=600))}
    >>> values["coverage"], round(values["lag_p50_seconds"] / 3600, 1)  # every label came about a day later
    (1.0, 23.5)
    >>> round(values["accuracy"], 3), round(values["f1"], 3), round(values["roc_auc"], 3)
    (0.853, 0.839, 0.929)
    """

    name = "label_metrics"
    description = "metrics of the joined labels, label coverage and label lag"
    needs_labels = True

    def __init__(self, min_labels: int = 30, positive: str | None = None) -> None:
        self.min_labels = min_labels
        self.positive = positive

    def compute(self, ctx: WindowContext) -> Iterable[IndicatorValue]:
        spec = ctx.spec
        if spec.label is None:
            yield IndicatorValue(None, None, status="insufficient", details={"reason": "the spec declares no label"})
            return
        prediction, scores = _outputs(spec)
        classes = _classes(spec, prediction, scores)
        positive = _positive(spec, self.positive)
        score_columns = _score_columns(scores, classes)
        columns = ([f"o:{prediction.name}"] if prediction else []) + score_columns
        table = ctx.labelled(columns)
        labelled, rows = table.num_rows, ctx.window.rows
        coverage = labelled / rows if rows else None
        yield IndicatorValue(
            None, coverage, n=rows, method="labelled / events", metric="coverage", details={"labelled": labelled}
        )
        if labelled:
            lags = (
                np.asarray(table.column("label_ts").cast(pa.int64()).to_numpy(zero_copy_only=False), float)
                - np.asarray(table.column("ts").cast(pa.int64()).to_numpy(zero_copy_only=False), float)
            ) / 1e6
            for q, metric in ((0.5, "lag_p50_seconds"), (0.95, "lag_p95_seconds")):
                yield IndicatorValue(
                    None, float(np.quantile(lags, q)), n=labelled, method="label time - event time", metric=metric
                )
        enough = labelled >= self.min_labels
        status: Status = "ok" if enough else "insufficient"
        if spec.label.kind == "regression":
            yield from self._regression(table, prediction, enough, labelled)
            return
        if not enough:
            for metric in CLASSIFICATION:
                yield IndicatorValue(
                    None,
                    None,
                    status="insufficient",
                    n=labelled,
                    metric=metric,
                    details={"reason": f"{labelled} labelled events, fewer than {self.min_labels}"},
                )
            return
        from sustain.indicators.metrics import classification_metrics

        y_true = _strings(table, "label")
        y_pred = _strings(table, f"o:{prediction.name}") if prediction else None
        matrix = _score_matrix(table, score_columns, classes, positive)
        keep = [
            i
            for i, (t, p) in enumerate(zip(y_true, y_pred or y_true, strict=True))
            if t is not None and p is not None and (matrix is None or not np.isnan(matrix[i]).any())
        ]
        values = classification_metrics(
            [y_true[i] for i in keep],  # type: ignore[misc]
            [y_pred[i] for i in keep] if y_pred else None,  # type: ignore[misc]
            matrix[keep] if matrix is not None else None,
            classes,
            positive,
        )
        for metric in CLASSIFICATION:
            details: dict[str, Any] = {}
            if metric == "accuracy":
                details = {
                    "confusion_matrix": values["confusion_matrix"],
                    "classes": classes,
                    "support": values["support"],
                }
            yield IndicatorValue(
                None,
                values.get(metric),
                status=status if values.get(metric) is not None else "insufficient",
                n=values["n"],
                method="labels",
                metric=metric,
                details=details,
            )

    def _regression(
        self, table: pa.Table, prediction: Output | None, enough: bool, labelled: int
    ) -> Iterable[IndicatorValue]:
        if prediction is None or not enough:
            for metric in REGRESSION:
                yield IndicatorValue(None, None, status="insufficient", n=labelled, metric=metric)
            return
        from sustain.indicators.metrics import regression_metrics

        y_true = np.asarray(table.column("label").to_numpy(zero_copy_only=False), float)
        y_pred = np.asarray(table.column(f"o:{prediction.name}").to_numpy(zero_copy_only=False), float)
        keep = ~(np.isnan(y_true) | np.isnan(y_pred))
        values = regression_metrics(y_true[keep], y_pred[keep])
        for metric in REGRESSION:
            value = values.get(metric)
            yield IndicatorValue(
                None,
                value,
                status="ok" if value is not None else "insufficient",
                n=values["n"],
                method="labels",
                metric=metric,
            )


class EstimatedPerformance(Indicator):
    """Classification metrics estimated from the model's scores while the labels are missing, with an interval.

    >>> from sustain.indicators.checks import sample_context
    >>> (accuracy,) = EstimatedPerformance(metrics=["accuracy"]).compute(sample_context(rows=600, labels=False))
    >>> round(accuracy.value, 2), accuracy.details["low"] < accuracy.value < accuracy.details["high"]
    (0.86, True)
    """

    name = "estimated_performance"
    description = "classification metrics estimated from calibrated scores, before labels arrive"

    def __init__(
        self,
        metrics: Sequence[str] = ("accuracy", "f1", "roc_auc"),
        draws: int = 400,
        sample_size: int = 5000,
        calibrate: bool = True,
        min_samples: int = 50,
        positive: str | None = None,
        bootstraps: int = 20,
    ) -> None:
        self.metrics = tuple(metrics)
        self.draws = draws
        self.sample_size = sample_size
        self.calibrate = calibrate
        self.min_samples = min_samples
        self.positive = positive
        self.bootstraps = bootstraps
        self._calibrators: dict[str, tuple[list[Callable[[np.ndarray], np.ndarray]], int]] = {}

    def _calibrators_for(
        self, ctx: WindowContext, columns: list[str], classes: list[str], positive: str | None
    ) -> tuple[list[Callable[[np.ndarray], np.ndarray]], int]:
        """Calibrators fitted on bootstrap resamples of the reference's labelled rows (the profile's labelled
        sample, else its general sample), and how many rows they learnt from; none without labels."""
        reference = ctx.reference
        if not self.calibrate or reference is None:
            return [], 0
        rows = reference.labelled if "label" in reference.labelled else reference.sample
        if "label" not in rows:
            return [], 0
        key = f"{reference.version}:{reference.created_at.isoformat()}:{positive}"
        if key not in self._calibrators:
            table = pa.table({c: rows.get(c, []) for c in [*columns, "label"]})
            matrix = _score_matrix(table, columns, classes, positive)
            labels = _strings(table, "label")
            keep = [
                i
                for i, y in enumerate(labels)
                if y is not None and matrix is not None and not np.isnan(matrix[i]).any()
            ]
            found: tuple[list[Callable[[np.ndarray], np.ndarray]], int] = ([], 0)
            if matrix is not None and len(keep) >= 200 and len({labels[i] for i in keep}) > 1:
                from sustain.indicators.metrics import fit_calibrators

                fitted = fit_calibrators(
                    matrix[keep],
                    [labels[i] for i in keep],  # type: ignore[misc]
                    classes,
                    bootstraps=self.bootstraps,
                    seed=0,  # the same calibrators whichever window comes first after a start
                )
                found = (fitted, len(keep))
            self._calibrators[key] = found
        return self._calibrators[key]

    def compute(self, ctx: WindowContext) -> Iterable[IndicatorValue]:
        spec = ctx.spec
        prediction, scores = _outputs(spec)
        if spec.label is None or spec.label.kind == "regression" or scores is None:
            yield IndicatorValue(
                None,
                None,
                status="insufficient",
                details={"reason": "needs a classifier whose outputs include class scores"},
            )
            return
        classes = _classes(spec, prediction, scores)
        positive = _positive(spec, self.positive)
        columns = _score_columns(scores, classes)
        wanted = columns + ([f"o:{prediction.name}"] if prediction else [])
        table = ctx.sample(wanted, self.sample_size)
        matrix = _score_matrix(table, columns, classes, positive) if table.num_rows else None
        if matrix is None or len(matrix) == 0:
            for metric in self.metrics:
                yield IndicatorValue(None, None, status="insufficient", metric=metric, details={"reason": "no scores"})
            return
        y_pred = _strings(table, f"o:{prediction.name}") if prediction else None
        keep = [i for i in range(len(matrix)) if not np.isnan(matrix[i]).any() and (y_pred is None or y_pred[i])]
        if len(keep) < self.min_samples:
            for metric in self.metrics:
                yield IndicatorValue(None, None, status="insufficient", n=len(keep), metric=metric)
            return
        matrix = matrix[keep]
        calibrators, calibration_rows = self._calibrators_for(ctx, columns, classes, positive)
        from sustain.indicators.metrics import calibration_variants, estimate_classification

        estimates = estimate_classification(
            matrix,
            classes,
            [y_pred[i] for i in keep] if y_pred else None,  # type: ignore[misc]
            positive=positive,
            metrics=self.metrics,
            draws=self.draws,
            seed=ctx.seed,
            probabilities=calibration_variants(calibrators, matrix) if calibrators else None,
        )
        realised = self._realised(ctx, wanted, columns, prediction, classes, positive)
        for metric in self.metrics:
            est = estimates.get(metric)
            details: dict[str, Any] = {"calibrated": bool(calibrators), "calibration_rows": calibration_rows}
            if est is not None:
                details.update(low=est.low, high=est.high, std=est.std)
            if realised is not None:
                details.update(realised=realised[0].get(metric), realised_n=realised[1])
            yield IndicatorValue(
                None,
                est.value if est else None,
                status="ok" if est else "insufficient",
                n=len(keep),
                method="cbpe (monte carlo)",
                metric=metric,
                details=details,
            )

    def _realised(
        self,
        ctx: WindowContext,
        wanted: list[str],
        columns: list[str],
        prediction: Output | None,
        classes: list[str],
        positive: str | None,
    ) -> tuple[dict[str, Any], int] | None:
        table = ctx.labelled(wanted)
        if table.num_rows < self.min_samples:
            return None
        from sustain.indicators.metrics import classification_metrics

        matrix = _score_matrix(table, columns, classes, positive)
        labels = _strings(table, "label")
        preds = _strings(table, f"o:{prediction.name}") if prediction else None
        keep = [
            i
            for i, y in enumerate(labels)
            if y is not None and (matrix is None or not np.isnan(matrix[i]).any()) and (preds is None or preds[i])
        ]
        values = classification_metrics(
            [labels[i] for i in keep],  # type: ignore[misc]
            [preds[i] for i in keep] if preds else None,  # type: ignore[misc]
            matrix[keep] if matrix is not None else None,
            classes,
            positive,
        )
        return values, len(keep)
