"""The ``kubernetes`` target: one SeldonDeployment per model, compiled by the inference-graph compiler and
applied with the ``kubernetes`` client (:func:`sustain.deploy_pipeline.graph.apply_manifests`: a server-side
dry-run of every object first, then the server-side apply).

``deploy`` adds the candidate's predictor beside the champion's with no traffic yet (a shadow), ``route`` sets
the traffic (promote: the candidate alone; rollback: the previous champion), ``retire`` forgets a version.
Predictors are named after versions (see :mod:`..manifests`), so Seldon's request logger tells sustain which
version answered, and a promotion only moves traffic.

It needs ``KUBECONFIG``; options, as ``--target-option kubernetes.KEY=VALUE`` or ``SUSTAIN_TARGET_OPTIONS``:
``namespace`` (default ``default``) and ``sustain_url`` (this service as the cluster reaches it; the request
logger posts to its ``/v1/cloudevents``).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from sustain.deploy_pipeline.release.errors import TargetFailed
from sustain.deploy_pipeline.release.manifests import DEFAULT_SUSTAIN_URL, release_manifests, resource_name
from sustain.deploy_pipeline.release.package import Bundle
from sustain.deploy_pipeline.release.targets.base import Deployment, Routing, TargetContext
from sustain.errors import SustainError


class KubernetesTarget:
    name = "kubernetes"

    def __init__(self, namespace: str = "default", sustain_url: str = DEFAULT_SUSTAIN_URL) -> None:
        self.namespace = namespace
        self.sustain_url = sustain_url
        self._uris: dict[tuple[str, str], str] = {}
        self._routing: dict[str, Routing] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_context(cls, context: TargetContext) -> KubernetesTarget:
        if not os.environ.get("KUBECONFIG"):
            raise TargetFailed("the kubernetes target needs a cluster: set KUBECONFIG to a kubeconfig file")
        options = context.options
        return cls(options.get("namespace", "default"), options.get("sustain_url", DEFAULT_SUSTAIN_URL))

    def manifests(self, model: str, routing: Routing) -> list[dict[str, Any]]:
        """The objects that serve ``routing`` (the champion's predictor, and the candidate's beside it)."""
        if routing.champion is None and routing.candidate is None:
            raise TargetFailed(f"{model}: a SeldonDeployment needs at least one version to serve")
        versions = [v for v in (routing.champion, routing.candidate) if v is not None]
        missing = [v for v in versions if (model, v) not in self._uris]
        if missing:
            raise TargetFailed(f"{model} version(s) {', '.join(missing)} were not deployed through this target")
        champion = routing.champion or routing.candidate
        assert champion is not None
        return release_manifests(
            model,
            model,
            {v: self._uris[(model, v)] for v in versions},
            champion=champion,
            candidate=routing.candidate,
            canary_percent=routing.canary_percent,
            shadow=routing.shadow,
            namespace=self.namespace,
            sustain_url=self.sustain_url,
        )

    def _apply(self, manifests: list[dict[str, Any]]) -> None:
        from sustain.deploy_pipeline.graph import apply_manifests

        try:
            apply_manifests(manifests, namespace=self.namespace)
        except SustainError as exc:
            raise TargetFailed(f"the cluster refused the release: {exc.message}") from exc

    # -- the target verbs ----------------------------------------------------------------------
    def prepare(self, model: str, version: str, bundle: Bundle) -> None:
        """Nothing reaches the cluster before the version passed its tests."""

    def deploy(self, model: str, version: str, bundle: Bundle) -> Deployment:
        with self._lock:
            self._uris[(model, version)] = bundle.model_uri()
            current = self._routing.get(model, Routing(None))
            # The candidate joins as a shadow (no answers reach callers) until route() gives it its share.
            routing = (
                Routing(version)
                if current.champion is None
                else Routing(current.champion, version, 0.0, True, current.standby)
            )
            try:
                self._apply(self.manifests(model, routing))
            except TargetFailed:
                self._uris.pop((model, version), None)
                raise
            self._routing[model] = routing
        return Deployment(model, version, f"{self.namespace}/{resource_name(model)}", f"predictor {version!r}")

    def route(self, model: str, routing: Routing) -> None:
        with self._lock:
            self._apply(self.manifests(model, routing))
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
        """Nothing to stop: the cluster keeps serving."""
