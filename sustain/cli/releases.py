"""``sustain release``, ``promote``, ``rollback`` and ``releases``: the release pipeline of a running service.

``sustain release MODEL VERSION`` starts the pipeline and prints each stage as it ends; it exits 0 when the
version became a release candidate (or was promoted by an automatic policy), 1 when it was rejected, and 3
when it failed for a reason outside the model (the registry or the target): run it again later.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import click

from sustain.cli.app import app, call_service, fail, json_option, out, token_option, url_option

ICON = {"passed": "[green]✓[/]", "failed": "[bold red]✗[/]", "skipped": "[dim]-[/]", "running": "[yellow]…[/]"}
EXIT = {"deployed": 0, "promoted": 0, "rejected": 1, "failed": 3}


def _stage_line(stage: dict[str, Any]) -> str:
    seconds = "" if stage["seconds"] is None else f" [dim]{stage['seconds']:.1f} s[/]"
    return f"{ICON.get(stage['outcome'], '?')} {stage['stage']}{seconds}  {stage['reason']}"


def _checks(stage: dict[str, Any]) -> list[str]:
    lines = []
    for check in stage["checks"]:
        mark = "[dim]-[/]" if check["skipped"] else "[green]✓[/]" if check["ok"] else "[bold red]✗[/]"
        fix = f" [dim](fix: {check['fix']})[/]" if not check["ok"] and check["fix"] else ""
        lines.append(f"    {mark} {check['name']}: {check['reason']}{fix}")
    return lines


@app.command("release")
@click.argument("model")
@click.argument("version")
@click.option("--target", default=None, help="deploy target (default: the spec's release.target, local)")
@click.option("--timeout", type=float, default=900.0, help="seconds to wait for the pipeline")
@url_option
@token_option
@json_option
def release(
    model: str, version: str, target: str | None, timeout: float, url: str, token: str | None, json_out: bool
) -> None:
    """Run the release pipeline for a registered model version, printing each stage as it happens."""
    import httpx

    params = {"target": target} if target else {}
    path = f"/v1/releases/{model}/{version}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        started = httpx.post(f"{url.rstrip('/')}{path}", params=params, headers=headers, timeout=60)
    except httpx.HTTPError as exc:
        fail(f"cannot reach the sustain service at {url} ({exc}); is it running? (sustain serve --registry URI)", 3)
    if started.status_code == 409:
        current = call_service("GET", url, path, token)
        if not json_out:
            out.print(f"{model} version {version} is already {current['state']}: {current['reason']}", highlight=False)
        body = current
    else:
        if started.status_code >= 400:
            call_service("POST", url, path, token, params=params)  # prints the service's sentence and exits
        body = _follow(url, path, token, timeout, quiet=json_out)
    if json_out:
        out.print_json(json.dumps(body))
    raise click.exceptions.Exit(EXIT.get(body["state"], 1))


def _follow(url: str, path: str, token: str | None, timeout: float, quiet: bool) -> dict[str, Any]:
    """Poll the release, printing each stage once it has ended, until it ends."""
    printed = 0
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = call_service("GET", url, path, token)
        ended = [s for s in body["stages"] if s["outcome"] != "running"]
        for stage in ended[printed:]:
            if not quiet:
                out.print(_stage_line(stage), highlight=False, soft_wrap=True)
                for line in _checks(stage):
                    out.print(line, highlight=False, soft_wrap=True)
        printed = len(ended)
        if body["state"] in EXIT:
            if not quiet:
                style = "green" if EXIT[body["state"]] == 0 else "bold red"
                out.print(f"[{style}]{body['model']} version {body['version']} {body['state']}[/]: {body['reason']}")
            return body
        if time.monotonic() > deadline:
            fail(f"the release is still {body['state']} after {timeout:g} s; follow it with sustain releases", 3)
        time.sleep(0.5)


@app.command("promote")
@click.argument("model")
@click.argument("version", required=False)
@url_option
@token_option
@json_option
def promote(model: str, version: str | None, url: str, token: str | None, json_out: bool) -> None:
    """Promote the release candidate (or VERSION): @champion moves to it, the old one stays warm."""
    path = f"/v1/releases/{model}/{version}/promote" if version else f"/v1/releases/{model}/promote"
    started = time.monotonic()
    body = call_service("POST", url, path, token, timeout=300)
    if json_out:
        out.print_json(json.dumps(body))
        return
    seconds = time.monotonic() - started
    out.print(f"{model} version {body['version']} is the champion ({seconds:.2f} s): {body['reason']}")


@app.command("rollback")
@click.argument("model")
@url_option
@token_option
@json_option
def rollback(model: str, url: str, token: str | None, json_out: bool) -> None:
    """Roll back: @champion moves back to @previous_champion, in one alias flip and one route switch."""
    started = time.monotonic()
    body = call_service("POST", url, f"/v1/releases/{model}/rollback", token, timeout=300)
    if json_out:
        out.print_json(json.dumps(body))
        return
    out.print(f"{model} version {body['version']} rolled back ({time.monotonic() - started:.2f} s): {body['reason']}")


@app.command("releases")
@click.argument("model", required=False)
@click.option("--champion-at", default=None, help="which version of MODEL was champion at this time (ISO 8601)")
@url_option
@token_option
@json_option
def releases(model: str | None, champion_at: str | None, url: str, token: str | None, json_out: bool) -> None:
    """List releases (newest first) with their state and roles, or answer which version was champion when."""
    if champion_at is not None:
        if model is None:
            fail("--champion-at needs a MODEL", 2)
        try:
            datetime.fromisoformat(champion_at.replace("Z", "+00:00"))
        except ValueError:
            fail(f"--champion-at must be an ISO 8601 time such as 2026-01-31T12:00:00Z, not {champion_at!r}", 2)
        answer = call_service("GET", url, f"/v1/releases/{model}/champion", token, params={"at": champion_at})
        if json_out:
            out.print_json(json.dumps(answer))
        elif answer["version"] is None:
            out.print(f"{model} had no champion at {champion_at}")
        else:
            out.print(f"{model} version {answer['version']} was champion at {champion_at} (since {answer['since']})")
        return
    rows = call_service("GET", url, "/v1/releases", token, params={"model": model} if model else {})["releases"]
    if json_out:
        out.print_json(json.dumps(rows))
        return
    if not rows:
        out.print("no releases yet")
        return
    from rich.table import Table

    table = Table(title="releases")
    for name in ("model", "version", "state", "roles", "trigger", "updated", "reason"):
        table.add_column(name, overflow="fold")
    for r in rows:
        table.add_row(
            r["model"],
            r["version"],
            r["state"],
            ", ".join(r["roles"]),
            r["trigger"],
            (r["updated_at"] or "")[:19],
            r["reason"][:160],
        )
    out.print(table)
