"""The typer application, shared options and the error printer of the ``sustain`` command."""

from __future__ import annotations

from typing import Annotated, NoReturn

import typer
from rich.console import Console

app = typer.Typer(
    name="sustain",
    help="Model monitoring: capture, aggregate, detect drift, alert and act.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
reference_app = typer.Typer(help="Reference data: what the model was trained on.", no_args_is_help=True)
app.add_typer(reference_app, name="reference")

out = Console()
err = Console(stderr=True)

StoreOpt = Annotated[
    str | None, typer.Option("--store", help="store URI; default $SUSTAIN_STORE or duckdb:///./data/sustain.duckdb")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
UrlOpt = Annotated[str, typer.Option("--url", envvar="SUSTAIN_URL", help="the sustain service")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="SUSTAIN_TOKEN", help="bearer token")]


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)
