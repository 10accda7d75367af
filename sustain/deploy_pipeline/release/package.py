"""The ``packaged`` stage: a serving bundle per version, in ``<releases dir>/<model>/<version>/``::

model/                       the downloaded MLflow model (what the local target serves)
docker/Dockerfile            as ``mlflow models generate-dockerfile`` writes it (no Docker daemon), with the model
kubernetes/seldondeployment.yaml   the version as the model's only predictor
sustain.yaml                 the monitor spec the version is watched with
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from sustain.deploy_pipeline.release.errors import TargetFailed
from sustain.errors import SustainError
from sustain.spec import ModelSpec
from sustain.store.releases import Check

_SELDON_READABLE = ("s3://", "gs://", "wasbs://", "abfss://", "pvc://", "hdfs://")


@dataclass(frozen=True)
class Bundle:
    """Where a version's serving bundle lives."""

    root: Path

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def dockerfile(self) -> Path:
        return self.root / "docker" / "Dockerfile"

    @property
    def manifest_dir(self) -> Path:
        return self.root / "kubernetes"

    def model_uri(self) -> str:
        """The storage URI of the model, as the packaged SeldonDeployment names it."""
        for path in sorted(self.manifest_dir.glob("*-seldondeployment-*.yaml")):
            body = yaml.safe_load(path.read_text())
            return str(body["spec"]["predictors"][0]["graph"]["modelUri"])
        raise TargetFailed(f"{self.root} holds no SeldonDeployment; release the version again")

    @property
    def spec(self) -> Path:
        return self.root / "sustain.yaml"


def package(bundle: Bundle, model: str, version: str, spec: ModelSpec | None, model_uri: str) -> list[Check]:
    return [dockerfile(bundle), manifest(bundle, model, spec, version, model_uri), monitor_spec(bundle, spec)]


def dockerfile(bundle: Bundle) -> Check:
    """What ``mlflow models generate-dockerfile -m <model> -d docker --env-manager local`` writes, made by the
    function that command calls (in this process: no interpreter start, no Docker daemon)."""
    from mlflow.models.flavor_backend_registry import get_flavor_backend

    out = bundle.dockerfile.parent
    try:
        backend = get_flavor_backend(str(bundle.model), docker_build=True, env_manager="local")  # type: ignore[no-untyped-call]
        if backend is None or not backend.can_build_image():
            return Check("dockerfile", False, "MLflow has no Docker backend for this model's flavors")
        backend.generate_dockerfile(str(bundle.model), str(out))
    except Exception as exc:  # MLflow raises many kinds here; the sentence is what matters
        return Check("dockerfile", False, f"generating the Dockerfile failed: {type(exc).__name__}: {exc}")
    if not bundle.dockerfile.is_file():
        return Check("dockerfile", False, f"MLflow wrote no Dockerfile in {out}")
    base = next((line for line in bundle.dockerfile.read_text().splitlines() if line.startswith("FROM ")), "FROM ?")
    return Check("dockerfile", True, f"{bundle.dockerfile.relative_to(bundle.root)} ({base}, serving on 8080)")


def manifest(bundle: Bundle, model: str, spec: ModelSpec | None, version: str, model_uri: str) -> Check:
    """The version as the model's only predictor, compiled by the inference-graph compiler, one file per object."""
    from sustain.deploy_pipeline.release.manifests import release_manifests

    sustain_model = spec.name if spec is not None else model
    try:
        manifests = release_manifests(model, sustain_model, {version: model_uri}, champion=version)
    except SustainError as exc:
        return Check("manifest", False, exc.message)
    folder = bundle.manifest_dir
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i, body in enumerate(manifests):
        path = folder / f"{i:02d}-{body['kind'].lower()}-{body['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(body, sort_keys=False))
        names.append(body["kind"])
    readable = model_uri.startswith(_SELDON_READABLE)
    kind = f"{model_uri.split(':', 1)[0]}: URIs" if "://" in model_uri or model_uri.startswith("mlflow-") else "paths"
    note = (
        ""
        if readable
        else f"; note: Seldon's storage initializer cannot read local {kind}, so on Kubernetes run MLflow with "
        "--default-artifact-root s3://..."
    )
    return Check("manifest", True, f"{folder.name}/: {', '.join(names)}{note}")


def monitor_spec(bundle: Bundle, spec: ModelSpec | None) -> Check:
    if spec is None:
        return Check("monitor_spec", False, "no monitor spec for the model")
    body = {"models": [spec.model_dump(mode="json", exclude_defaults=True)]}
    bundle.spec.write_text(yaml.safe_dump(body, sort_keys=False))
    return Check(
        "monitor_spec", True, f"{bundle.spec.name} ({len(spec.features)} features, {len(spec.outputs)} outputs)"
    )
