"""``sustain indicators MODEL``: the latest indicator values of a model, as a table or JSON.

``indicators`` is a group whose default subcommand is ``show``: ``sustain indicators churn`` is
``sustain indicators show churn``, and ``sustain indicators try ...`` (:mod:`sustain.cli.trial`) tries a plugin on
two files. A model named like a subcommand is shown with ``sustain indicators show NAME``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click

from sustain.cli.app import app, fail, json_option, out, store_option, token_option, url_option

STATUS_STYLE = {"alert": "bold red", "warn": "yellow", "ok": "green", "error": "magenta", "insufficient": "dim"}


class ShowByDefault(click.Group):
    """A group that runs ``show`` when the first argument names no subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["show", *args]
        return super().parse_args(ctx, args)


@app.group(cls=ShowByDefault)
def indicators() -> None:
    """Indicator values of a model (`sustain indicators MODEL`), and trying a plugin on two files (`try`)."""


@indicators.command("show")
@click.argument("model")
@url_option
@token_option
@store_option
@click.option("--indicator", default=None, help="only this indicator")
@click.option("--feature", default=None, help="only this feature or output")
@click.option("--window", default=None, help="only this window, e.g. 1h")
@click.option("--since", type=click.DateTime(), default=None, help="windows ending after this time")
@click.option("--history", is_flag=True, help="every window, not only the latest of each series")
@click.option("--limit", type=int, default=200, help="at most this many documents")
@json_option
def show(
    model: str,
    url: str,
    token: str | None,
    store: str | None,
    indicator: str | None,
    feature: str | None,
    window: str | None,
    since: datetime | None,
    history: bool,
    limit: int,
    json_out: bool,
) -> None:
    """Show MODEL's indicators (from a running service, or with --store straight from a store)."""
    params: dict[str, Any] = {
        "indicator": indicator,
        "feature": feature,
        "window": window,
        "limit": limit,
        "latest": not history,
    }
    if since is not None:
        params["since"] = since.isoformat()
    docs = _from_store(model, store, params) if store else _from_service(model, url, token, params)
    if json_out:
        out.print_json(json.dumps(docs))
        return
    if not docs:
        out.print(f"no indicators for {model} yet (they appear once events and a reference are in)")
        return
    from rich.table import Table

    table = Table(title=f"{model}: {'indicator history' if history else 'latest indicators'}")
    for name in (
        "indicator",
        "feature",
        "version",
        "window",
        "window start",
        "value",
        "threshold",
        "p-value",
        "n",
        "status",
    ):
        table.add_column(name, justify="right" if name in ("value", "threshold", "p-value", "n") else "left")
    for d in docs:
        style = STATUS_STYLE.get(d["status"], "")
        table.add_row(
            d["indicator"],
            d["feature"] or "(all)",
            d["version"],
            d["window"],
            d["window_start"][:19],
            _num(d["value"]),
            _num(d["threshold"]),
            _num(d["p_value"]),
            str(d["n"] if d["n"] is not None else "-"),
            f"[{style}]{d['status']}[/]" + (" (open)" if d.get("partial") else ""),
        )
    out.print(table)


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2e}" if 0 < abs(value) < 1e-3 else f"{value:.4f}"


def _from_service(model: str, url: str, token: str | None, params: dict[str, Any]) -> list[dict[str, Any]]:
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    query = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in params.items() if v is not None}
    try:
        response = httpx.get(
            f"{url.rstrip('/')}/v1/models/{model}/indicators", params=query, headers=headers, timeout=60
        )
    except httpx.HTTPError as exc:
        fail(f"cannot reach the sustain service at {url} ({exc}); is it running? (sustain serve)", 3)
    if response.status_code >= 400:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError):
            message = response.text[:300]
        fail(f"the service answered {response.status_code}: {message}", 2 if response.status_code < 500 else 3)
    docs: list[dict[str, Any]] = response.json()["indicators"]
    return docs


def _from_store(model: str, uri: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    from sustain.backends import open_store
    from sustain.backends.duckdb.documents import DuckDBIndicators
    from sustain.backends.duckdb.store import DuckDBStore
    from sustain.errors import NotFound
    from sustain.indicators.documents import IndicatorQuery

    store = open_store(uri)
    try:
        if not isinstance(store, DuckDBStore):
            fail("--store reads indicators from an embedded (duckdb://) store only; use --url for a service", 2)
        if store.get_spec(model) is None:
            raise NotFound(f"model {model!r} is not in the store {uri}")
        since = datetime.fromisoformat(params["since"]) if params.get("since") else None
        query = IndicatorQuery(
            model=model,
            since=since,
            indicator=params["indicator"],
            feature=params["feature"],
            window=params["window"],
            limit=params["limit"],
            latest=params["latest"],
        )
        return [d.to_json() for d in DuckDBIndicators(store).query(query)]
    finally:
        store.close()
