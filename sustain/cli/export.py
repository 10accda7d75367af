"""``sustain export elastalert|kibana``: generate configuration for the tools that run beside sustain at scale."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from sustain.cli.app import JsonOpt, app, fail, out

export_app = typer.Typer(
    help="Generate ElastAlert2 rules and Kibana saved objects from a monitor spec.", no_args_is_help=True
)
app.add_typer(export_app, name="export")


@export_app.command("elastalert")
def elastalert(
    config: Annotated[Path, typer.Option("--config", "-c", help="monitor spec file (sustain.yaml)")],
    out_dir: Annotated[Path, typer.Option("--out", help="directory for config.yaml and rules/ (created)")],
    hook_url: Annotated[str, typer.Option(help="sustain as ElastAlert2 reaches it")] = "http://sustain:8000",
    index: Annotated[str | None, typer.Option(help="indicator index; default <prefix>-indicators")] = None,
    prefix: Annotated[str, typer.Option(help="the Elasticsearch store's name prefix")] = "sustain",
    es_host: Annotated[str, typer.Option(help="Elasticsearch host for ElastAlert2")] = "elasticsearch",
    es_port: Annotated[int, typer.Option(help="Elasticsearch port for ElastAlert2")] = 9200,
    json_out: JsonOpt = False,
) -> None:
    """Write ElastAlert2 rules that call sustain's hook (POST /v1/hooks/ACTION) for every alert rule."""
    from rich.markup import escape

    from sustain.alerting.elastalert import export_rules, write_rules
    from sustain.errors import SustainError
    from sustain.spec_loader import load_config

    try:
        files = export_rules(
            load_config(config), hook_url=hook_url, index=index, prefix=prefix, es_host=es_host, es_port=es_port
        )
        result = write_rules(files, out_dir)
    except SustainError as exc:
        fail(escape(exc.message), exc.exit_code)  # messages name paths like models[0] or [/path]
    except OSError as exc:
        fail(escape(f"cannot write to {out_dir}: {exc.strerror or exc}"), 1)
    rules = [p for p in result.written if p.parent.name == "rules"]
    if json_out:
        body = {
            "out": str(out_dir),
            "files": [str(p) for p in result.written],
            "rules": len(rules),
            "removed": [str(p) for p in result.removed],
        }
        out.print_json(json.dumps(body))
        return
    out.print(f"wrote {len(rules)} ElastAlert2 rule(s) and config.yaml to {out_dir}", highlight=False)
    for path in result.written:
        out.print(f"  {path}", highlight=False)
    for path in result.removed:
        out.print(f"  removed {path} (its rule is gone from the spec)", highlight=False)
    if not rules:
        out.print(f"{config} has no alert rules, so there is nothing for ElastAlert2 to watch", highlight=False)


@export_app.command("kibana")
def kibana(
    config: Annotated[Path, typer.Option("--config", "-c", help="monitor spec file (sustain.yaml)")],
    out_file: Annotated[Path, typer.Option("--out", help="the NDJSON file to write")] = Path("sustain-kibana.ndjson"),
    model: Annotated[str | None, typer.Option(help="only this model (default: every model of the spec)")] = None,
    prefix: Annotated[str, typer.Option(help="the Elasticsearch store's name prefix")] = "sustain",
    json_out: JsonOpt = False,
) -> None:
    """Write Kibana 8.x data views, Lens visualizations and dashboards for the Elasticsearch engine."""
    from sustain.dashboards.kibana import export_kibana, import_command
    from sustain.errors import SustainError

    try:
        result = export_kibana(config, out_file, model=model, prefix=prefix)
    except SustainError as exc:
        fail(exc.message, exc.exit_code)
    except OSError as exc:
        fail(f"cannot write {out_file}: {exc.strerror or exc}", 1)
    if json_out:
        out.print_json(json.dumps(result.to_json()))
        return
    counts = ", ".join(f"{kind} {n}" for kind, n in result.counts.items())
    total = sum(result.counts.values())
    summary = f"wrote {total} saved objects ({counts}) to {out_file}; import them into Kibana 8.8 or newer with"
    out.print(summary, soft_wrap=True, highlight=False, markup=False)
    out.print(import_command(out_file), soft_wrap=True, highlight=False, markup=False)
