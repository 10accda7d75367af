"""``sustain alerts``, ``sustain silence``, ``sustain silences`` and ``sustain unsilence``."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from sustain.cli.app import JsonOpt, StoreOpt, TokenOpt, UrlOpt, app, fail, out

STYLE = {"firing": "bold red", "resolved": "green"}


def _call(method: str, url: str, path: str, token: str | None, **kwargs: Any) -> Any:
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.request(method, f"{url.rstrip('/')}{path}", headers=headers, timeout=30, **kwargs)
    except httpx.HTTPError as exc:
        fail(f"cannot reach the sustain service at {url} ({exc}); is it running? (sustain serve)", 3)
    if response.status_code >= 400:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:300]
        fail(f"the service answered {response.status_code}: {message}", 2 if response.status_code < 500 else 3)
    return response.json()


def _local(store_uri: str) -> Any:
    from sustain.alerting.documents import DuckDBAlerts
    from sustain.store import open_store
    from sustain.store.duckdb import DuckDBStore

    store = open_store(store_uri)
    if not isinstance(store, DuckDBStore):
        store.close()
        fail("--store reads alerts from an embedded (duckdb://) store only; use --url for a service", 2)
    return store, DuckDBAlerts(store)


@app.command()
def alerts(
    url: UrlOpt = "http://127.0.0.1:8000",
    token: TokenOpt = None,
    store: StoreOpt = None,
    model: Annotated[str | None, typer.Option(help="only this model")] = None,
    status: Annotated[str | None, typer.Option(help="firing or resolved")] = None,
    limit: Annotated[int, typer.Option(help="at most this many")] = 50,
    json_out: JsonOpt = False,
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
        rows = _call("GET", url, "/v1/alerts", token, params=params)["alerts"]
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
def silence(
    reason: Annotated[str, typer.Option(help="why (shown beside the silenced alerts)")],
    duration: Annotated[str, typer.Option("--for", help="how long, e.g. 2h")] = "1h",
    model: Annotated[str, typer.Option(help="a model, or * for all")] = "*",
    rule: Annotated[str, typer.Option(help="a rule, or * for all")] = "*",
    version: Annotated[str, typer.Option(help="a version, or * for all")] = "*",
    url: UrlOpt = "http://127.0.0.1:8000",
    token: TokenOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Silence alerts for a while: they are still tracked, but their actions wait until the silence ends."""
    from sustain.durations import parse_duration

    try:
        parse_duration(duration)
    except ValueError as exc:
        fail(f"--for: {exc}", 2)
    body = {"model": model, "rule": rule, "version": version, "duration": duration, "reason": reason}
    created = _call("POST", url, "/v1/silences", token, json=body)
    if json_out:
        out.print_json(json.dumps(created))
        return
    out.print(
        f"silence {created['id']} until {created['ends_at']}: model {model}, rule {rule}, version {version}",
        highlight=False,
    )


@app.command()
def silences(
    url: UrlOpt = "http://127.0.0.1:8000",
    token: TokenOpt = None,
    every: Annotated[bool, typer.Option("--all", help="also silences that ended")] = False,
    json_out: JsonOpt = False,
) -> None:
    """List silences in force."""
    rows = _call("GET", url, "/v1/silences", token, params={"all": str(every).lower()})["silences"]
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
def unsilence(
    silence_id: Annotated[str, typer.Argument(help="the silence's id")],
    url: UrlOpt = "http://127.0.0.1:8000",
    token: TokenOpt = None,
) -> None:
    """End a silence now."""
    _call("DELETE", url, f"/v1/silences/{silence_id}", token)
    out.print(f"silence {silence_id} ended")
