"""What the release pipeline serves, as Prometheus metrics read when ``/metrics`` is scraped:

* ``sustain_serving_version{model,role}`` — the version number in each role (``champion``, ``challenger``,
  ``previous_champion``; a version that is not a number has no sample);
* ``sustain_release_state{model,version,state}`` — 1 for the state of each model's newest releases;
* ``sustain_gateway_requests{model,version}`` — requests each version answered through the gateway;
* ``sustain_gateway_failovers{model}`` and ``sustain_gateway_failed{model}`` — requests sent on to another
  version because the chosen one was down, and requests no version could answer;
* ``sustain_serving_restarts{model,version}`` — restarts of a scoring server process by the local target.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sustain.store.releases import ROLES

if TYPE_CHECKING:
    from sustain.deploy_pipeline.release.service import ReleaseService


class ReleaseCollector(Collector):
    def __init__(self, service: ReleaseService) -> None:
        self.service = service

    def collect(self) -> Iterable[Metric]:
        service = self.service
        version = GaugeMetricFamily(
            "sustain_serving_version", "The version of a model in each role", labels=["model", "role"]
        )
        state = GaugeMetricFamily(
            "sustain_release_state", "1 for the state of a version's release", labels=["model", "version", "state"]
        )
        releases = service.store.query(limit=500)
        for model in sorted({r.model for r in releases}):
            aliases = service.aliases(model)
            for role in ROLES:
                value = aliases.get(role)
                if value is not None and value.isdigit():
                    version.add_metric([model, role], float(value))
        for release in releases:
            state.add_metric([release.model, release.version, release.state.value], 1.0)
        yield version
        yield state
        gateway = service.gateway
        if gateway is not None:
            answered = GaugeMetricFamily(
                "sustain_gateway_requests", "Requests a version answered (gateway)", labels=["model", "version"]
            )
            failovers = GaugeMetricFamily(
                "sustain_gateway_failovers", "Requests sent on to another version", labels=["model"]
            )
            failed = GaugeMetricFamily("sustain_gateway_failed", "Requests no version could answer", labels=["model"])
            for model, counters in sorted(gateway.counters.items()):
                for v, n in sorted(counters.requests.items()):
                    answered.add_metric([model, v], float(n))
                failovers.add_metric([model], float(counters.failovers))
                failed.add_metric([model], float(counters.failed))
            yield answered
            yield failovers
            yield failed
        restarts = GaugeMetricFamily(
            "sustain_serving_restarts", "Restarts of a scoring server process", labels=["model", "version"]
        )
        for server in service.serving_processes():
            restarts.add_metric([server["model"], server["version"]], float(server["restarts"]))
        yield restarts


def release_registry(service: ReleaseService) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReleaseCollector(service))
    return registry
