"""``sustain serve``, ``validate``, ``reference upload`` and ``version``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from sustain.cli.app import (
    app,
    config_option,
    err,
    fail,
    json_option,
    out,
    path_type,
    reference_app,
    store_option,
    token_option,
    url_option,
)
from sustain.errors import ConfigError


@app.command()
@config_option
@click.option("--host", default=None, help="address to listen on; default 127.0.0.1")
@click.option("--port", type=int, default=None, help="port; default 8000")
@store_option
@click.option("--demo-traffic", is_flag=True, help="also send demo traffic to every model")
@click.option("--transform-interval", type=float, default=None, help="seconds between aggregation runs")
@click.option("--indicator-interval", type=float, default=None, help="seconds between indicator runs")
@click.option(
    "--registry",
    envvar="MLFLOW_TRACKING_URI",
    default=None,
    help="MLflow registry whose versions are released (default $MLFLOW_TRACKING_URI); none: no release pipeline",
)
@click.option("--release-dir", default=None, help="serving bundles of released versions; default ./data/releases")
@click.option("--release-poll", type=float, default=None, help="seconds between registry polls (0: webhooks only)")
@click.option("--public-url", default=None, help="how MLflow's webhook reaches this service; default http://HOST:PORT")
@click.option(
    "--target-option",
    "target_options",
    multiple=True,
    help="a deploy target's option, TARGET.KEY=VALUE (kubernetes.namespace=models); repeat for more",
)
@click.option("--redis", default=None, help="the inference units' Redis: show their queues (sustain aiu)")
@click.option("--log-level", default="warning", help="uvicorn log level")
def serve(
    config: Path | None,
    host: str | None,
    port: int | None,
    store: str | None,
    demo_traffic: bool,
    transform_interval: float | None,
    indicator_interval: float | None,
    registry: str | None,
    release_dir: str | None,
    release_poll: float | None,
    public_url: str | None,
    target_options: tuple[str, ...],
    redis: str | None,
    log_level: str,
) -> None:
    """Run the collector, the engine and the dashboard; with a registry, the release pipeline and its gateway.

    The MLflow webhook's secret comes from SUSTAIN_MLFLOW_WEBHOOK_SECRET (never the command line)."""
    import uvicorn

    from sustain.api.app import build_context, create_app
    from sustain.settings import Settings

    settings = Settings.from_env(
        config=str(config) if config else None,
        host=host,
        port=port,
        store=store,
        demo_traffic=demo_traffic or None,
        transform_interval=transform_interval,
        indicator_interval=indicator_interval,
        registry=registry,
        release_dir=release_dir,
        release_poll=release_poll,
        public_url=public_url,
        target_options=",".join(target_options) or None,
        redis=redis,
    )
    settings.check_bind()
    if settings.registry:
        _quick_mlflow_client()
    ctx = build_context(settings)
    application = create_app(settings, context=ctx, startup=_startup_hooks(settings))
    models = ", ".join(s.name for s in ctx.store.list_specs()) or "none yet (PUT /v1/models/NAME)"
    base = f"http://{settings.host}:{settings.port}"
    _tune_interpreter()
    out.print(f"sustain {_version()} on {ctx.store.uri}; models: {models}", highlight=False)
    out.print(f"dashboard: {base}/   API docs: {base}/docs   metrics: {base}/metrics", highlight=False)
    if ctx.releases is not None:
        serving = f"{base}/serving/MODEL/invocations"
        out.print(f"releases from {settings.registry}: models served at {serving}", highlight=False)
    uvicorn.run(application, host=settings.host, port=settings.port, log_level=log_level, access_log=False)


def _quick_mlflow_client() -> None:
    """MLflow's client retries a dead tracking server for about four minutes by default; the release pipeline
    would rather fail the release with a sentence and let it be retried (a variable already set is kept)."""
    import os

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import logging

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # its INFO lines narrate every model it loads


def _tune_interpreter() -> None:
    """Two settings for a server that parses big batches in one thread and commits in another.

    Parsed request bodies are many small acyclic objects freed by reference counting; the default
    collector thresholds (700 allocations) make the cyclic GC rescan them several times per batch.
    The writer thread needs the GIL briefly between DuckDB calls (which release it); with the default
    5 ms switch interval it waits that long behind the parsing thread every time.
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    sys.setswitchinterval(0.0005)


def _startup_hooks(settings: Any) -> list[Any]:
    hooks = []
    if settings.demo_traffic:
        from sustain.demo.traffic import start_demo_traffic

        hooks.append(start_demo_traffic)
    return hooks


@app.command()
@click.argument("file", type=path_type(), default="sustain.yaml", required=False)
@json_option
def validate(file: Path, json_out: bool) -> None:
    """Check a monitor spec file (default sustain.yaml); every problem is named by line and path."""
    from sustain.errors import SpecError
    from sustain.spec.loader import load_config

    try:
        config = load_config(file)
    except SpecError as exc:
        if json_out:
            out.print_json(json.dumps({"valid": False, "problems": exc.details or [{"message": exc.message}]}))
            raise click.exceptions.Exit(2) from None
        err.print(f"[bold red]{file} is not a valid monitor spec:[/]", highlight=False)
        for problem in exc.details or [{"where": str(file), "message": exc.message}]:
            err.print(f"  {problem.get('where', file)}: {problem['message']}", highlight=False, soft_wrap=True)
        raise click.exceptions.Exit(2) from None
    if json_out:
        out.print_json(json.dumps({"valid": True, "models": [m.name for m in config.models]}))
        return
    from rich.table import Table

    table = Table("model", "features", "outputs", "label", "windows", title=f"{file} is valid")
    for m in config.models:
        table.add_row(
            m.name,
            str(len(m.features)),
            str(len(m.outputs)),
            m.label.kind if m.label else "-",
            ", ".join(m.windows),
        )
    out.print(table)


@reference_app.command("upload")
@click.argument("file", type=path_type())
@click.option("--model", "-m", required=True, help="model name")
@click.option("--version", "-v", default=None, help="model version; default the spec's")
@url_option
@token_option
@store_option
@config_option
@json_option
def reference_upload(
    file: Path,
    model: str,
    version: str | None,
    url: str,
    token: str | None,
    store: str | None,
    config: Path | None,
    json_out: bool,
) -> None:
    """Upload reference data FILE (CSV, Parquet or JSON) for a model version: to a running service, or with
    --store straight into a store."""
    if not file.exists():
        fail(f"{file}: no such file", 2)
    if store:
        result = _reference_into_store(file, model, version, store, config)
    else:
        result = _reference_over_http(file, model, version, url, token)
    if json_out:
        out.print_json(json.dumps(result))
        return
    out.print(
        f"reference for {model} version {result['version']}: {result['rows']} rows, "
        f"{len(result['columns'])} columns stored",
        highlight=False,
    )
    if result.get("ignored_columns"):
        out.print(f"ignored columns (not in the spec): {', '.join(result['ignored_columns'])}", highlight=False)
    if result.get("missing_features"):
        out.print(f"features missing from the file: {', '.join(result['missing_features'])}", highlight=False)


def _reference_over_http(file: Path, model: str, version: str | None, url: str, token: str | None) -> dict[str, Any]:
    import httpx
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    size = file.stat().st_size
    headers = {"Content-Type": _content_type(file), "Content-Length": str(size)}
    if token:
        headers["Authorization"] = f"Bearer {token}"

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err.console,
        transient=True,
        disable=size < 8 * 1024 * 1024,
    ) as progress:
        task = progress.add_task(f"uploading {file.name}", total=size)

        def chunks() -> Any:
            with open(file, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    progress.advance(task, len(chunk))
                    yield chunk

        params = {"version": version} if version else {}
        try:
            response = httpx.put(
                f"{url.rstrip('/')}/v1/models/{model}/reference",
                params=params,
                content=chunks(),
                headers=headers,
                timeout=600,
            )
        except httpx.HTTPError as exc:
            fail(f"cannot reach the sustain service at {url} ({exc}); is it running? (sustain serve)", 3)
    return _reply(response)


def _reply(response: Any) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = {"error": {"message": response.text[:500]}}
    if response.status_code >= 400:
        message = body.get("error", {}).get("message", response.text[:500])
        fail(f"the service answered {response.status_code}: {message}", 2 if response.status_code < 500 else 3)
    result: dict[str, Any] = body
    return result


def _content_type(file: Path) -> str:
    suffix = file.suffix.lower()
    return {
        ".parquet": "application/vnd.apache.parquet",
        ".csv": "text/csv",
        ".json": "application/json",
        ".ndjson": "application/x-ndjson",
        ".jsonl": "application/x-ndjson",
    }.get(suffix, "application/octet-stream")


def _reference_into_store(
    file: Path, model: str, version: str | None, store_uri: str, config: Path | None
) -> dict[str, Any]:
    from sustain.api.app import apply_config
    from sustain.backends import open_store
    from sustain.collector.reference import read_table, sniff_format, to_layout

    store = open_store(store_uri)
    try:
        if config:
            apply_config(store, str(config))
        spec = store.get_spec(model)
        if spec is None:
            raise ConfigError(f"model {model!r} is not in the store; pass --config with its spec")
        body = file.read_bytes()
        parsed = to_layout(spec, read_table(body, sniff_format(body, _content_type(file), file.name)))
        chosen = version or spec.effective_default_version
        info = store.put_reference(model, chosen, parsed.table)
        return {
            "model": model,
            "version": chosen,
            "rows": info.rows,
            "columns": info.columns,
            "ignored_columns": parsed.ignored_columns,
            "missing_features": parsed.missing_features,
        }
    finally:
        store.close()


@app.command()
def version() -> None:
    """Print the versions of sustain and the parts it runs on."""
    import platform
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as pkg_version

    out.print(f"sustain {_version()}", highlight=False)
    for name in ("duckdb", "pyarrow", "fastapi", "pydantic", "numpy", "scipy"):
        try:
            out.print(f"  {name} {pkg_version(name)}", highlight=False)
        except PackageNotFoundError:
            out.print(f"  {name} not installed", highlight=False)
    out.print(f"  python {platform.python_version()}", highlight=False)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as pkg_version

    try:
        return pkg_version("sustain")
    except PackageNotFoundError:
        return "0+unknown"
