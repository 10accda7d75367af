"""``sustain export elastalert|kibana``: generate configuration for the tools that run beside sustain at scale."""

from __future__ import annotations

import typer

from sustain.cli.app import app

export_app = typer.Typer(
    help="Generate ElastAlert2 rules and Kibana saved objects from a monitor spec.", no_args_is_help=True
)
app.add_typer(export_app, name="export")
