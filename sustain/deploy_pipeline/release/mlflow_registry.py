"""The few MLflow registry calls the pipeline makes, with MLflow's errors translated into sustain's.

Every call names its tracking and registry URI explicitly: nothing here reads or sets MLflow's global tracking
URI, so a demo or a notebook in the same process keeps its own. A registry that does not answer is
:class:`RegistryUnavailable` (503, "try again"); a version or run that does not exist is :class:`NotFound`.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson

from sustain.deploy_pipeline.release.errors import RegistryUnavailable
from sustain.errors import NotFound

log = logging.getLogger("sustain.release")
T = TypeVar("T")

# MLflow error codes that mean "this thing does not exist", as opposed to "the registry is broken".
_MISSING = {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"}


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: str
    source: str
    run_id: str | None
    created_at: datetime
    status: str
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatasetRef:
    """A dataset the run logged with ``mlflow.log_input``; ``uri`` is set when its source can be downloaded."""

    name: str
    context: str
    source_type: str
    uri: str | None
    digest: str = ""


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    metrics: dict[str, float]
    datasets: tuple[DatasetRef, ...] = ()


def _dataset_uri(source_type: str, source: str) -> str | None:
    try:
        body = orjson.loads(source)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict):
        return None
    for key in ("uri", "url", "path"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return value
    return None


class MlflowRegistry:
    """An MLflow tracking server or database (``http(s)://``, ``sqlite:///``, ``databricks``...)."""

    def __init__(self, uri: str, *, ping_timeout: float = 3.0) -> None:
        self.uri = uri
        self.ping_timeout = ping_timeout
        self._client: Any = None

    @property
    def is_server(self) -> bool:
        return self.uri.startswith(("http://", "https://"))

    @property
    def client(self) -> Any:
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        return self._client

    # -- plumbing -------------------------------------------------------------------------------
    def ping(self) -> None:
        """Fail fast when a tracking server is down (MLflow's own client retries for minutes)."""
        if not self.is_server:
            return
        try:
            response = httpx.get(f"{self.uri.rstrip('/')}/health", timeout=self.ping_timeout)
        except httpx.HTTPError as exc:
            raise RegistryUnavailable(f"the MLflow registry at {self.uri} does not answer: {exc}") from exc
        if response.status_code != 200:
            raise RegistryUnavailable(f"the MLflow registry at {self.uri} answered /health with {response.status_code}")

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one MLflow call; translate its errors."""
        from mlflow.exceptions import MlflowException

        try:
            return fn()
        except MlflowException as exc:
            # Artifact downloads wrap a 404 in an error of their own code: read the message too.
            if exc.error_code in _MISSING or "RESOURCE_DOES_NOT_EXIST" in exc.message or "404 Client" in exc.message:
                raise NotFound(f"{what}: {exc.message}") from exc
            raise RegistryUnavailable(f"{what} failed in the MLflow registry at {self.uri}: {exc.message}") from exc
        except (OSError, ConnectionError) as exc:
            raise RegistryUnavailable(f"{what}: the MLflow registry at {self.uri} is unreachable: {exc}") from exc
        except Exception as exc:  # requests' and SQLAlchemy's errors alike: the registry, not the model
            if type(exc).__module__.startswith(("requests", "urllib3", "sqlalchemy")):
                raise RegistryUnavailable(f"{what}: the MLflow registry at {self.uri} failed: {exc}") from exc
            raise

    # -- versions ---------------------------------------------------------------------------------
    def version(self, name: str, version: str) -> VersionInfo:
        mv = self.call(f"reading {name} version {version}", lambda: self.client.get_model_version(name, version))
        return _version_info(mv)

    def versions(self, name: str | None = None, since: datetime | None = None) -> list[VersionInfo]:
        """Versions of one model (every model when ``name`` is None), optionally created at or after ``since``."""
        query = "" if name is None else f"name = '{name}'"
        found = self.call(
            "listing model versions", lambda: self.client.search_model_versions(query, max_results=10_000)
        )
        infos = [_version_info(mv) for mv in found]
        if since is not None:
            infos = [i for i in infos if i.created_at >= since]
        return sorted(infos, key=lambda i: (i.name, int(i.version) if i.version.isdigit() else 0))

    def alias(self, name: str, alias: str) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            mv = self.client.get_model_version_by_alias(name, alias)
        except MlflowException as exc:
            if exc.error_code in _MISSING:
                return None
            raise RegistryUnavailable(f"reading alias @{alias} of {name}: {exc.message}") from exc
        except Exception as exc:
            raise RegistryUnavailable(f"reading alias @{alias} of {name}: {exc}") from exc
        return str(mv.version)

    def set_alias(self, name: str, alias: str, version: str | None) -> None:
        """Point ``alias`` at ``version``; None removes it (removing a missing alias is no error)."""
        if version is not None:
            self.call(
                f"setting @{alias} of {name}", lambda: self.client.set_registered_model_alias(name, alias, version)
            )
            return
        with contextlib.suppress(NotFound):
            self.call(f"removing @{alias} of {name}", lambda: self.client.delete_registered_model_alias(name, alias))

    def set_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.call(
                f"tagging {name} version {version}",
                lambda k=key, v=value: self.client.set_model_version_tag(name, version, k, v),  # type: ignore[misc]
            )

    def run(self, run_id: str) -> RunInfo:
        run = self.call(f"reading run {run_id}", lambda: self.client.get_run(run_id))
        datasets = []
        for item in run.inputs.dataset_inputs if run.inputs else []:
            tags = {t.key: t.value for t in item.tags or []}
            ds = item.dataset
            datasets.append(
                DatasetRef(
                    ds.name,
                    tags.get("mlflow.data.context", ""),
                    ds.source_type,
                    _dataset_uri(ds.source_type, ds.source),
                    ds.digest,
                )
            )
        return RunInfo(run_id, dict(run.data.metrics), tuple(datasets))

    # -- artifacts --------------------------------------------------------------------------------
    def download_model(self, name: str, version: str, into: Path) -> Path:
        """The version's model folder (the one holding ``MLmodel``), downloaded as ``into``."""
        uri = self.call(
            f"locating {name} version {version}", lambda: self.client.get_model_version_download_uri(name, version)
        )
        return self.download(uri, into, f"the artifacts of {name} version {version}")

    def download(self, uri: str, into: Path, what: str) -> Path:
        """Download a file or folder (``runs:/``, ``mlflow-artifacts:/``, ``s3://``, a path...) as ``into``; a
        missing artifact is :class:`NotFound`, and a failed download leaves nothing at ``into``."""
        from mlflow.artifacts import download_artifacts

        into.parent.mkdir(parents=True, exist_ok=True)
        with _staging(into.parent) as staging:
            try:
                local = self.call(
                    f"downloading {what}",
                    lambda: download_artifacts(
                        artifact_uri=uri, dst_path=str(staging), tracking_uri=self.uri, registry_uri=self.uri
                    ),
                )
            except NotFound as exc:
                raise NotFound(f"{what} are missing: the registry has nothing at {uri}") from exc
            except OSError as exc:
                raise NotFound(f"{what} cannot be downloaded from {uri}: {exc}") from exc
            path = Path(local)
            if not path.exists() or (path.is_dir() and not any(path.iterdir())):
                raise NotFound(f"{what} are missing at {uri}")
            if into.is_dir():
                shutil.rmtree(into)
            elif into.exists():
                into.unlink()
            shutil.move(str(path), str(into))
        return into

    # -- webhooks ---------------------------------------------------------------------------------
    def ensure_webhook(self, name: str, url: str, secret: str, events: tuple[str, ...]) -> str:
        """Create the webhook, or update the one of that name; returns its id."""
        hooks = self.call("listing webhooks", lambda: list(self.client.list_webhooks(max_results=1000)))
        for hook in hooks:
            if hook.name == name:
                self.call(
                    "updating the webhook",
                    lambda h=hook: self.client.update_webhook(  # type: ignore[misc]
                        h.webhook_id, url=url, events=list(events), secret=secret, status="ACTIVE"
                    ),
                )
                return str(hook.webhook_id)
        created = self.call(
            "creating the webhook",
            lambda: self.client.create_webhook(name=name, url=url, events=list(events), secret=secret),
        )
        return str(created.webhook_id)


@contextlib.contextmanager
def _staging(parent: Path) -> Iterator[Path]:
    """A scratch folder in ``parent``, removed afterwards."""
    staging = parent / f".download-{datetime.now(UTC).strftime('%H%M%S%f')}"
    staging.mkdir(parents=True)
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _version_info(mv: Any) -> VersionInfo:
    created = datetime.fromtimestamp((mv.creation_timestamp or 0) / 1000, UTC)
    return VersionInfo(
        name=mv.name,
        version=str(mv.version),
        source=mv.source or "",
        run_id=mv.run_id or None,
        created_at=created,
        status=str(mv.status or ""),
        tags=dict(mv.tags or {}),
        aliases=tuple(getattr(mv, "aliases", None) or ()),
    )
