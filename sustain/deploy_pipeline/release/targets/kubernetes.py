"""The ``kubernetes`` target: one SeldonDeployment per model, applied with the ``kubernetes`` client.

Every change is a server-side apply of the whole resource, first with ``dryRun=All`` (the API server and
Seldon's admission webhook validate it and nothing changes), then for real. ``deploy`` adds the candidate's
predictor with its canary share, ``route`` sets the traffic (promote: the candidate alone at 100; rollback:
the previous champion), ``retire`` drops a predictor. Seldon's request logger sends every request and response
to sustain's CloudEvents endpoint, with the version in ``Ce-Endpoint``.

It needs ``KUBECONFIG`` (or an in-cluster service account); options, as ``--target-option kubernetes.KEY=VALUE``
or ``SUSTAIN_TARGET_OPTIONS``: ``namespace`` (default ``default``), ``logger_url`` (sustain's
``.../v1/cloudevents`` as the cluster reaches it), ``secret`` (the rclone secret for the model store).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import yaml

from sustain.deploy_pipeline.release.errors import TargetFailed
from sustain.deploy_pipeline.release.package import Bundle
from sustain.deploy_pipeline.release.seldon import (
    API_VERSION,
    KIND,
    Predictor,
    admission_problems,
    resource_name,
    seldon_deployment,
)
from sustain.deploy_pipeline.release.targets.base import Deployment, Routing, TargetContext


def _model_uri(bundle: Bundle) -> str:
    manifest = yaml.safe_load(bundle.manifest.read_text())
    return str(manifest["spec"]["predictors"][0]["graph"]["modelUri"])


class KubernetesTarget:
    name = "kubernetes"

    def __init__(self, namespace: str = "default", logger_url: str | None = None, secret: str | None = None) -> None:
        self.namespace = namespace
        self.logger_url = logger_url
        self.secret = secret
        self._uris: dict[tuple[str, str], str] = {}
        self._routing: dict[str, Routing] = {}
        self._lock = threading.Lock()
        self._resource: Any = None
        self._client: Any = None

    @classmethod
    def from_context(cls, context: TargetContext) -> KubernetesTarget:
        if not os.environ.get("KUBECONFIG") and not os.environ.get("KUBERNETES_SERVICE_HOST"):
            raise TargetFailed(
                "the kubernetes target needs a cluster: set KUBECONFIG (or run sustain in a pod with a service account)"
            )
        options = context.options
        return cls(options.get("namespace", "default"), options.get("logger_url"), options.get("secret"))

    def _api(self) -> Any:
        if self._resource is None:
            from kubernetes import config, dynamic
            from kubernetes.client import api_client

            try:
                if os.environ.get("KUBECONFIG"):
                    config.load_kube_config()  # type: ignore[no-untyped-call]
                else:
                    config.load_incluster_config()  # type: ignore[no-untyped-call]
                self._client = dynamic.DynamicClient(api_client.ApiClient())  # type: ignore[no-untyped-call]
                self._resource = self._client.resources.get(api_version=API_VERSION, kind=KIND)
            except Exception as exc:
                raise TargetFailed(f"cannot reach the Kubernetes API or find the SeldonDeployment CRD: {exc}") from exc
        return self._resource

    def manifest(self, model: str, routing: Routing) -> dict[str, Any]:
        """The SeldonDeployment for ``routing`` (the champion at 100 - canary, the candidate at canary)."""
        canary = 0 if routing.candidate is None or routing.shadow else round(routing.canary_percent)
        predictors = []
        if routing.champion is not None:
            predictors.append(Predictor(routing.champion, self._uri(model, routing.champion), 100 - canary))
        if routing.candidate is not None and routing.candidate != routing.champion:
            predictors.append(
                Predictor(routing.candidate, self._uri(model, routing.candidate), canary, shadow=routing.shadow)
            )
        sdep = seldon_deployment(
            model, predictors, namespace=self.namespace, logger_url=self.logger_url, secret=self.secret
        )
        problems = admission_problems(sdep)
        if problems:
            raise TargetFailed(f"the SeldonDeployment for {model} would be refused: {'; '.join(problems)}")
        return sdep

    def _uri(self, model: str, version: str) -> str:
        try:
            return self._uris[(model, version)]
        except KeyError:
            raise TargetFailed(f"{model} version {version} was not deployed through this target") from None

    def _apply(self, sdep: dict[str, Any]) -> None:
        resource = self._api()
        name = sdep["metadata"]["name"]
        try:
            for dry_run in ("All", None):
                self._client.server_side_apply(
                    resource,
                    body=sdep,
                    name=name,
                    namespace=self.namespace,
                    field_manager="sustain",
                    force_conflicts=True,
                    dry_run=dry_run,
                )
        except Exception as exc:
            raise TargetFailed(f"applying SeldonDeployment {self.namespace}/{name} failed: {exc}") from exc

    def prepare(self, model: str, version: str, bundle: Bundle) -> None:
        """Nothing reaches the cluster before the version passed its tests."""

    def deploy(self, model: str, version: str, bundle: Bundle) -> Deployment:
        with self._lock:
            self._uris[(model, version)] = _model_uri(bundle)
            current = self._routing.get(model, Routing(None))
            if current.champion is None:
                routing = Routing(champion=version)
            else:
                routing = Routing(current.champion, version, 0.0, False, current.standby)
            try:
                self._apply(self.manifest(model, routing))
            except TargetFailed:
                self._uris.pop((model, version), None)
                raise
            self._routing[model] = routing
        name = resource_name(model)
        return Deployment(model, version, f"{self.namespace}/{name}", f"SeldonDeployment predictor {version!r}")

    def route(self, model: str, routing: Routing) -> None:
        with self._lock:
            self._apply(self.manifest(model, routing))
            self._routing[model] = routing

    def retire(self, model: str, version: str) -> None:
        with self._lock:
            routing = self._routing.get(model)
            if routing is not None and version in (routing.champion, routing.candidate):
                raise TargetFailed(f"{model} version {version} still gets traffic; route it away first")
            self._uris.pop((model, version), None)

    def status(self) -> dict[str, Any]:
        return {
            "target": self.name,
            "namespace": self.namespace,
            "routes": {
                m: {"champion": r.champion, "candidate": r.candidate, "canary_percent": r.canary_percent}
                for m, r in self._routing.items()
            },
        }

    def close(self) -> None:
        self._resource = None
        self._client = None
