"""Run one unit process: ``python -m sustain.inference.serve CONFIG_JSON`` (what ``sustain aiu serve`` and the
supervisor start), with its Prometheus metrics on a port when one is given.

>>> from sustain.inference.config import BackendConfig, ModelBinding, UnitConfig, BatchPolicy
>>> config = UnitConfig("redis://r:6379", (ModelBinding("churn", BackendConfig("v2", "http://m:8080")),),
...                     batch=BatchPolicy(32, 2.0, (8, 16)), name="u-1")
>>> options = UnitOptions(config, metrics_port=9100)
>>> UnitOptions.from_json(options.to_json()) == options
True
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict, dataclass, replace
from typing import Any

from sustain.inference.config import BackendConfig, BatchPolicy, ModelBinding, MonitorConfig, UnitConfig

log = logging.getLogger("sustain.inference")


@dataclass(frozen=True)
class UnitOptions:
    """A unit's configuration plus what only its process needs: where to serve metrics, how long to wind down."""

    config: UnitConfig
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    grace: float = 10.0
    log_level: str = "warning"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> UnitOptions:
        raw = json.loads(text)
        config = dict(raw.pop("config"))
        config["batch"] = BatchPolicy(
            **{**config["batch"], "preferred_sizes": tuple(config["batch"]["preferred_sizes"])}
        )
        config["models"] = tuple(_binding(m) for m in config["models"])
        return cls(UnitConfig(**config), **raw)

    def for_child(self, index: int) -> UnitOptions:
        """The options of the ``index``-th unit of a supervisor: a name and a metrics port of its own."""
        port = None if self.metrics_port is None else self.metrics_port + index
        return replace(self, config=replace(self.config, name=f"{self.config.name}-{index}"), metrics_port=port)


def _binding(raw: dict[str, Any]) -> ModelBinding:
    backend = dict(raw["backend"])
    backend["headers"] = tuple(tuple(h) for h in backend["headers"])
    monitor = MonitorConfig(**raw["monitor"]) if raw.get("monitor") else None
    return ModelBinding(raw["model"], BackendConfig(**backend), monitor)


def serve(options: UnitOptions) -> None:
    """Serve until SIGTERM or SIGINT, with metrics on ``options.metrics_port`` if given."""
    from sustain.inference.metrics import UnitMetrics
    from sustain.inference.unit import Unit

    logging.basicConfig(level=options.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    metrics = UnitMetrics() if options.metrics_port is not None else None
    unit = Unit(options.config, metrics=metrics, grace=options.grace)
    if metrics is not None and options.metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(options.metrics_port, options.metrics_host, registry=metrics.registry)
    unit.serve_forever()


def main(argv: list[str]) -> int:
    from sustain.errors import SustainError

    try:
        serve(UnitOptions.from_json(argv[0]))
    except SustainError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
