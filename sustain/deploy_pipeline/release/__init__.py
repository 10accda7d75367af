"""The release pipeline: a model version registered in MLflow is checked, tested, packaged, served as a release
candidate with monitoring attached, and promoted (or rolled back) with one command.

* :mod:`.service` — :class:`ReleaseService`: triggers (MLflow webhooks, a registry poll, the CLI and API),
  promote, rollback, and restoring what was served after a restart;
* :mod:`.pipeline` — the stages of one release (:mod:`.standards`, :mod:`.gates` with :mod:`.probe`,
  :mod:`.package`), recorded in a :class:`sustain.store.releases.ReleaseStore`;
* :mod:`.targets` — where versions are served: ``local`` (:mod:`.scoring` processes behind the
  :mod:`.gateway`) and ``kubernetes`` (:mod:`.manifests`, from the inference-graph compiler), plus
  ``sustain.targets`` plugins;
* :mod:`.mlflow_registry`, :mod:`.webhooks`, :mod:`.monitoring`, :mod:`.datasets` — the edges.
"""

from __future__ import annotations

from sustain.deploy_pipeline.release.errors import RegistryUnavailable, TargetFailed, WebhookRejected
from sustain.deploy_pipeline.release.gateway import Gateway, HttpEventSink
from sustain.deploy_pipeline.release.mlflow_registry import MlflowRegistry
from sustain.deploy_pipeline.release.monitoring import HttpMonitoring, Monitoring
from sustain.deploy_pipeline.release.service import ReleaseOptions, ReleaseService
from sustain.deploy_pipeline.release.targets import Routing, Target, TargetContext, targets

__all__ = [
    "Gateway",
    "HttpEventSink",
    "HttpMonitoring",
    "MlflowRegistry",
    "Monitoring",
    "RegistryUnavailable",
    "ReleaseOptions",
    "ReleaseService",
    "Routing",
    "Target",
    "TargetContext",
    "TargetFailed",
    "WebhookRejected",
    "targets",
]
