"""``sustain export elastalert|kibana``: generate configuration for the tools that run beside sustain at scale."""

from __future__ import annotations

import json
from pathlib import Path

import click

from sustain.cli.app import app, fail, json_option, out, path_type

required_config = click.option(
    "--config", "-c", type=path_type(), required=True, help="monitor spec file (sustain.yaml)"
)
prefix_option = click.option("--prefix", default="sustain", help="the Elasticsearch store's name prefix")


@app.group("export")
def export_app() -> None:
    """Generate ElastAlert2 rules and Kibana saved objects from a monitor spec."""


@export_app.command("elastalert")
@required_config
@click.option("--out", "out_dir", type=path_type(), required=True, help="directory for config.yaml and rules/")
@click.option("--hook-url", default="http://sustain:8000", help="sustain as ElastAlert2 reaches it")
@click.option("--index", default=None, help="indicator index; default <prefix>-indicators")
@prefix_option
@click.option("--es-host", default="elasticsearch", help="Elasticsearch host for ElastAlert2")
@click.option("--es-port", type=int, default=9200, help="Elasticsearch port for ElastAlert2")
@json_option
def elastalert(
    config: Path,
    out_dir: Path,
    hook_url: str,
    index: str | None,
    prefix: str,
    es_host: str,
    es_port: int,
    json_out: bool,
) -> None:
    """Write ElastAlert2 rules that call sustain's hook (POST /v1/hooks/ACTION) for every alert rule."""
    from rich.markup import escape

    from sustain.backends.elasticsearch.elastalert import export_rules, write_rules
    from sustain.errors import SustainError
    from sustain.spec.loader import load_config

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
@required_config
@click.option("--out", "out_file", type=path_type(), default="sustain-kibana.ndjson", help="the NDJSON file to write")
@click.option("--model", default=None, help="only this model (default: every model of the spec)")
@prefix_option
@json_option
def kibana(config: Path, out_file: Path, model: str | None, prefix: str, json_out: bool) -> None:
    """Write Kibana 8.x data views, Lens visualizations and dashboards for the Elasticsearch engine."""
    from sustain.backends.elasticsearch.kibana import export_kibana, import_command
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
