"""``sustain aiu serve`` and ``sustain aiu status``: inference units over Redis Streams."""

from __future__ import annotations

import json

import click

from sustain.cli.app import app, fail, json_option, out, token_option

redis_option = click.option(
    "--redis", "redis_url", envvar="SUSTAIN_REDIS", required=True, help="Redis URL, e.g. redis://127.0.0.1:6379/0"
)


@app.group("aiu")
def aiu_app() -> None:
    """Inference units: batch requests from Redis Streams against any serving backend."""


@aiu_app.command("serve")
@redis_option
@click.option("--model", "models", multiple=True, required=True, help="a model to serve (repeat for several)")
@click.option(
    "--backend",
    "backends",
    multiple=True,
    required=True,
    help="the backend's URL (module:function with --backend-kind python): one for all models, or one per --model",
)
@click.option("--backend-kind", default="mlflow", help="mlflow, seldon, v2, python, or a plugin's name")
@click.option("--backend-model", default=None, help="the model's name at the backend (v2 path); default --model")
@click.option("--backend-timeout", type=float, default=30.0, help="seconds to wait for one backend call")
@click.option("--max-batch", type=int, default=64, help="most requests per backend call")
@click.option("--max-wait-ms", type=float, default=5.0, help="longest a request waits for its batch to fill")
@click.option("--preferred-batch", type=int, multiple=True, help="batch sizes sent as soon as they can be formed")
@click.option("--units", type=int, default=1, help="unit processes to run (restarted when they die)")
@click.option("--partitions", type=int, default=None, help="streams per model, for a model not registered yet [16]")
@click.option("--max-inflight", type=int, default=1024, help="requests a unit holds unanswered, per model")
@click.option("--concurrency", type=int, default=2, help="batches of a model at its backend at once, per unit")
@click.option("--max-deliveries", type=int, default=5, help="deliveries before a request is dead-lettered")
@click.option("--lease-ttl", type=float, default=5.0, help="seconds a dead unit keeps its partitions")
@click.option(
    "--min-idle", type=float, default=None, help="seconds before a dead unit's request is claimed [lease ttl]"
)
@click.option("--result-ttl", type=int, default=24 * 3600, help="seconds an answer is kept")
@click.option("--collector", default=None, help="a sustain service URL: every inference is logged to it")
@token_option
@click.option("--model-version", default=None, help="the version logged with every inference")
@click.option("--metrics-port", type=int, default=None, help="serve Prometheus metrics here (+i for the i-th unit)")
@click.option("--metrics-host", default="127.0.0.1", help="address of the metrics endpoint")
@click.option("--name", default=None, help="this unit's consumer name; default host-pid-random")
@click.option("--log-level", default="warning", help="debug, info, warning or error")
def serve(
    redis_url: str,
    models: tuple[str, ...],
    backends: tuple[str, ...],
    backend_kind: str,
    backend_model: str | None,
    backend_timeout: float,
    max_batch: int,
    max_wait_ms: float,
    preferred_batch: tuple[int, ...],
    units: int,
    partitions: int | None,
    max_inflight: int,
    concurrency: int,
    max_deliveries: int,
    lease_ttl: float,
    min_idle: float | None,
    result_ttl: int,
    collector: str | None,
    token: str | None,
    model_version: str | None,
    metrics_port: int | None,
    metrics_host: str,
    name: str | None,
    log_level: str,
) -> None:
    """Serve models from Redis Streams: batch, call the backend, answer, log every inference."""
    from sustain.inference.backends import backends as registry
    from sustain.inference.config import (
        BackendConfig,
        BatchPolicy,
        ModelBinding,
        MonitorConfig,
        UnitConfig,
        default_unit_name,
    )
    from sustain.inference.serve import UnitOptions

    if len(backends) not in (1, len(models)):
        fail(f"give one --backend for all models or one per --model ({len(models)}), not {len(backends)}", 2)
    if units < 1:
        fail(f"--units must be at least 1, not {units}", 2)
    if backend_kind not in registry.names():
        fail(f"unknown --backend-kind {backend_kind!r}; known: {', '.join(registry.names())}", 2)
    targets = backends * len(models) if len(backends) == 1 else backends
    bindings = tuple(
        ModelBinding(
            model,
            BackendConfig(backend_kind, target, model=backend_model, timeout=backend_timeout),
            MonitorConfig(collector, version=model_version, token=token) if collector else None,
        )
        for model, target in zip(models, targets, strict=True)
    )
    config = UnitConfig(
        redis_url,
        bindings,
        batch=BatchPolicy(max_batch, max_wait_ms, preferred_batch),
        partitions=partitions,
        max_inflight=max_inflight,
        concurrency=concurrency,
        max_deliveries=max_deliveries,
        lease_ttl=lease_ttl,
        min_idle=min_idle,
        result_ttl=result_ttl,
        name=name or default_unit_name(),
    )
    options = UnitOptions(config, metrics_port=metrics_port, metrics_host=metrics_host, log_level=log_level)
    where = f"; metrics on {metrics_host}:{metrics_port}" if metrics_port is not None else ""
    out.print(
        f"{units} unit(s) serving {', '.join(models)} from {redis_url} with {backend_kind}{where}", highlight=False
    )
    if units == 1:
        from sustain.inference.serve import serve as run_unit

        run_unit(options)
        return
    from sustain.inference.supervisor import Supervisor
    from sustain.inference.unit import connect

    connect(redis_url).close()  # a wrong URL is one sentence now, not children restarting for ever
    Supervisor(options, units).run()


@aiu_app.command("status")
@redis_option
@click.option("--model", "models", multiple=True, help="only these models (default: every registered one)")
@json_option
def status(redis_url: str, models: tuple[str, ...], json_out: bool) -> None:
    """Lag, pending requests and dead letters of each model's queues."""
    from sustain.inference.queues import status as read_status
    from sustain.inference.unit import connect

    client = connect(redis_url)
    try:
        rows = read_status(client, models or None)
    finally:
        client.close()
    if json_out:
        out.print_json(json.dumps([r.to_dict() for r in rows]))
        return
    if not rows:
        out.print("no model is registered on this Redis yet (a client or a unit registers it)")
        return
    from rich.table import Table

    table = Table("model", "partitions", "units", "lag", "pending", "backlog", "dead letters")
    for r in rows:
        dead = f"[bold red]{r.dead_letters}[/]" if r.dead_letters else "0"
        table.add_row(r.model, str(r.partitions), str(r.units), str(r.lag), str(r.pending), str(r.backlog), dead)
    out.print(table)
