"""Turn a graph's model URIs into the storage folders a model server downloads (Seldon's ``modelUri``).

Compilers never talk to MLflow themselves: they ask a :class:`ModelResolver`. :class:`MlflowResolver` asks a real
registry (``client.get_model_version_download_uri``); :class:`StaticResolver` answers from a mapping, for offline
rendering and for the release pipeline when it already knows the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sustain.deploy_pipeline.graph.model import GraphError
from sustain.deploy_pipeline.graph.uris import parse_models_uri


@dataclass(frozen=True)
class ResolvedModel:
    uri: str  # as written in the graph
    download_uri: str  # the folder holding MLmodel
    name: str | None = None  # registered model name, when the URI names one
    version: str | None = None


class ModelResolver(Protocol):
    def resolve(self, uri: str) -> ResolvedModel:
        """The storage location of ``uri``; raises GraphError when the model is unknown."""
        ...


class StaticResolver:
    """Answers from a mapping ``uri -> download URI``; storage URIs (s3://, gs://, ...) resolve to themselves."""

    def __init__(self, mapping: Mapping[str, str] | None = None) -> None:
        self.mapping = dict(mapping or {})

    def resolve(self, uri: str) -> ResolvedModel:
        ref = parse_models_uri(uri)
        if uri in self.mapping:
            return ResolvedModel(uri, self.mapping[uri], ref.name if ref else None, ref.version if ref else None)
        if ref is None and not uri.startswith("runs:/"):
            return ResolvedModel(uri, uri)
        raise GraphError(f"model {uri!r} is not known to this resolver; give its download URI")


class MlflowResolver:
    """Resolves through an MLflow tracking server / registry (``MLFLOW_TRACKING_URI`` when none is given)."""

    def __init__(self, tracking_uri: str | None = None) -> None:
        self.tracking_uri = tracking_uri
        self._client: Any = None
        self._cache: dict[str, ResolvedModel] = {}

    @property
    def client(self) -> Any:
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    def resolve(self, uri: str) -> ResolvedModel:
        if uri not in self._cache:
            self._cache[uri] = self._resolve(uri)
        return self._cache[uri]

    def _resolve(self, uri: str) -> ResolvedModel:
        from mlflow.exceptions import MlflowException

        ref = parse_models_uri(uri)
        try:
            if uri.startswith("runs:/"):
                from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository

                return ResolvedModel(uri, RunsArtifactRepository.get_underlying_uri(uri, self.tracking_uri))
            if ref is None:
                return ResolvedModel(uri, uri)
            if ref.logged_id is not None:
                return ResolvedModel(uri, str(self.client.get_logged_model(ref.logged_id).artifact_location))
            assert ref.name is not None
            if ref.alias is not None:
                version = str(self.client.get_model_version_by_alias(ref.name, ref.alias).version)
            else:
                assert ref.version is not None
                version = str(self.client.get_model_version(ref.name, ref.version).version)
            download = self.client.get_model_version_download_uri(ref.name, version)
            return ResolvedModel(uri, str(download), ref.name, version)
        except MlflowException as exc:
            where = self.tracking_uri or "the MLflow registry"
            first = str(exc.message).splitlines()[0] if exc.message else type(exc).__name__
            raise GraphError(f"model {uri!r} is not registered in {where}: {first}") from None
        except OSError as exc:
            raise GraphError(f"cannot reach the MLflow registry to resolve {uri!r}: {exc}") from None
