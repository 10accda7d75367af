"""``sustain alerts``, ``sustain silence``, ``sustain silences`` and ``sustain unsilence``."""

from __future__ import annotations

import json
from typing import Any

import click

from sustain.cli.app import app, call_service, fail, json_option, out, store_option, token_option, url_option

STYLE = {"firing": "bold red", "resolved": "green"}


def _local(store_uri: str) -> Any:
    from sustain.backends import open_store
    from sustain.backends.duckdb.alerts import DuckDBAlerts
    from sustain.backends.duckdb.store import DuckDBStore

    store = open_store(store_uri)
    if not isinstance(store, DuckDBStore):
        store.close()
        fail("--store reads alerts from an embedded (duckdb://) store only; use --url for a service", 2)
    return store, DuckDBAlerts(store)


@app.command()
@url_option
@token_option
@store_option
@click.option("--model", default=None, help="only this model")
@click.option("--status", default=None, help="firing or resolved")
@click.option("--limit", type=int, default=50, help="at most this many")
@json_option
def alerts(
    url: str, token: str | None, store: str | None, model: str | None, status: str | None, limit: int, json_out: bool
) -> None:
    """List alerts, newest first, with the outcome of their actions."""
    if status not in (None, "firing", "resolved"):
        fail(f"--status must be firing or resolved, not {status!r}", 2)
    if store:
        handle, alert_store = _local(store)
        try:
            rows = [a.to_json() for a in alert_store.query(model=model, status=status, limit=limit)]
        finally:
            handle.close()
    else:
        params = {k: v for k, v in {"model": model, "status": status, "limit": limit}.items() if v is not None}
        rows = call_service("GET", url, "/v1/alerts", token, params=params)["alerts"]
    if json_out:
        out.print_json(json.dumps(rows))
        return
    if not rows:
        out.print("no alerts")
        return
    from rich.table import Table

    table = Table(title="alerts")
    for name in ("id", "rule", "model", "version", "severity", "status", "started", "actions", "summary"):
        table.add_column(name)
    for a in rows:
        ok = sum(1 for t in a["attempts"] if t["ok"])
        failed = sum(1 for t in a["attempts"] if not t["ok"])
        actions = f"{ok} ok" + (f", {failed} failed" if failed else "")
        status_text = f"[{STYLE.get(a['status'], '')}]{a['status']}[/]" + (" (silenced)" if a["silenced"] else "")
        table.add_row(
            a["id"][:8],
            a["rule"],
            a["model"],
            a["version"],
            a["severity"],
            status_text,
            a["started_at"][:19],
            actions,
            a["summary"][:80],
        )
    out.print(table)


@app.command()
@click.option("--reason", required=True, help="why (shown beside the silenced alerts)")
@click.option("--for", "duration", default="1h", help="how long, e.g. 2h")
@click.option("--model", default="*", help="a model, or * for all")
@click.option("--rule", default="*", help="a rule, or * for all")
@click.option("--version", default="*", help="a version, or * for all")
@url_option
@token_option
@json_option
def silence(
    reason: str, duration: str, model: str, rule: str, version: str, url: str, token: str | None, json_out: bool
) -> None:
    """Silence alerts for a while: they are still tracked, but their actions wait until the silence ends."""
    from sustain.durations import parse_duration

    try:
        parse_duration(duration)
    except ValueError as exc:
        fail(f"--for: {exc}", 2)
    body = {"model": model, "rule": rule, "version": version, "duration": duration, "reason": reason}
    created = call_service("POST", url, "/v1/silences", token, json=body)
    if json_out:
        out.print_json(json.dumps(created))
        return
    out.print(
        f"silence {created['id']} until {created['ends_at']}: model {model}, rule {rule}, version {version}",
        highlight=False,
    )


@app.command()
@url_option
@token_option
@click.option("--all", "every", is_flag=True, help="also silences that ended")
@json_option
def silences(url: str, token: str | None, every: bool, json_out: bool) -> None:
    """List silences in force."""
    rows = call_service("GET", url, "/v1/silences", token, params={"all": str(every).lower()})["silences"]
    if json_out:
        out.print_json(json.dumps(rows))
        return
    if not rows:
        out.print("no silences")
    for s in rows:
        out.print(
            f"{s['id']}  {s['model']}/{s['rule']}/{s['version']}  until {s['ends_at']}  {s['reason']}", highlight=False
        )


@app.command()
@click.argument("silence_id")
@url_option
@token_option
def unsilence(silence_id: str, url: str, token: str | None) -> None:
    """End the silence SILENCE_ID now."""
    call_service("DELETE", url, f"/v1/silences/{silence_id}", token)
    out.print(f"silence {silence_id} ended")
