"""Where a version's training data and holdout come from, and fetching them.

The training data is what monitoring compares production with, so it is a standard: either the run logged it
(``mlflow.log_input(mlflow.data.from_pandas(df, source=...), context="training")``) with a source that can be
downloaded, or the spec declares it (``release.reference``). The holdout for the evaluation gate is
``release.evaluation.data`` or the dataset the run logged with an evaluation context.

>>> run = RunInfo("r1", {}, (DatasetRef("train", "training", "local", "/data/train.parquet"),))
>>> training_source(run, ReleaseSettings()).uri
'/data/train.parquet'
>>> evaluation_source(run, ReleaseSettings()) is None
True
>>> training_source(run, ReleaseSettings(reference={"artifact": "data/ref.csv"})).uri
'runs:/r1/data/ref.csv'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx
import pyarrow as pa

from sustain.collector.reference import read_table, sniff_format
from sustain.deploy_pipeline.release.mlflow_registry import DatasetRef, MlflowRegistry, RunInfo
from sustain.errors import NotFound, ValidationError
from sustain.spec.release import ReleaseSettings

TRAINING_CONTEXTS = ("training", "train")
EVALUATION_CONTEXTS = ("evaluation", "eval", "validation", "test", "holdout")


@dataclass(frozen=True)
class DataSource:
    """A data file to fetch: an ``artifact:``, ``runs:/``, storage or ``http(s)`` URI, or a local path."""

    uri: str
    what: str


def _resolve(spec: str, run_id: str | None, what: str) -> DataSource:
    if spec.startswith("artifact:"):
        if run_id is None:
            raise NotFound(f"{what} names a run artifact ({spec}) but the version has no run")
        return DataSource(f"runs:/{run_id}/{spec.removeprefix('artifact:').lstrip('/')}", what)
    return DataSource(spec, what)


def _logged(run: RunInfo | None, contexts: tuple[str, ...]) -> DatasetRef | None:
    if run is None:
        return None
    for context in contexts:
        for ref in run.datasets:
            if ref.context.lower() == context and ref.uri:
                return ref
    return None


def training_source(run: RunInfo | None, settings: ReleaseSettings) -> DataSource | None:
    """The declared reference, else the training dataset the run logged; None when neither can be fetched."""
    declared = settings.reference
    if declared is not None:
        if declared.artifact is not None:
            return _resolve(f"artifact:{declared.artifact}", run.run_id if run else None, "the declared reference")
        assert declared.path is not None
        return DataSource(declared.path, "the declared reference")
    ref = _logged(run, TRAINING_CONTEXTS)
    if ref is None and run is not None:
        # One logged dataset without a context is the training data by MLflow's convention.
        plain = [d for d in run.datasets if d.uri and not d.context]
        ref = plain[0] if len(plain) == 1 else None
    return None if ref is None or ref.uri is None else DataSource(ref.uri, f"the training dataset {ref.name!r}")


def evaluation_source(run: RunInfo | None, settings: ReleaseSettings) -> DataSource | None:
    if settings.evaluation.data is not None:
        return _resolve(settings.evaluation.data, run.run_id if run else None, "the declared holdout")
    ref = _logged(run, EVALUATION_CONTEXTS)
    return None if ref is None or ref.uri is None else DataSource(ref.uri, f"the {ref.context} dataset {ref.name!r}")


def fetch(registry: MlflowRegistry, source: DataSource, into: Path) -> Path:
    """Download ``source`` into the folder ``into``; returns the local file."""
    name = Path(source.uri.split("?", 1)[0].rstrip("/")).name or "data"
    target = into / name
    if source.uri.startswith(("http://", "https://")):
        into.mkdir(parents=True, exist_ok=True)
        try:
            with httpx.stream("GET", source.uri, timeout=60, follow_redirects=True) as response:
                if response.status_code != 200:
                    raise NotFound(f"{source.what} at {source.uri} answered {response.status_code}")
                with open(target, "wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
        except httpx.HTTPError as exc:
            raise NotFound(f"{source.what} cannot be fetched from {source.uri}: {exc}") from exc
        return target
    local = Path(source.uri.removeprefix("file://"))
    if "://" not in source.uri and not source.uri.startswith("runs:/") and not local.exists():
        raise NotFound(f"{source.what} is not at {source.uri}")
    return registry.download(source.uri, target, source.what)


def read_frame(path: Path) -> pa.Table:
    """A data file as a table (Parquet, CSV or JSON, by name or content)."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        if len(files) != 1:
            raise ValidationError(f"{path} holds {len(files)} files; point at one data file")
        path = files[0]
    body = path.read_bytes()
    return read_table(body, sniff_format(body, None, path.name))
