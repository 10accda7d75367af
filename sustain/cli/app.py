"""The click application, shared options and the error printer of the ``sustain`` command.

The command is built on click, and rich is imported only when something is printed. Typer was used first, but
typer 0.2x builds a pydantic adapter for every option each time the command starts. That cost about 0.1 s
before any command ran, a quarter of ``sustain drift`` on a million rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from rich.console import Console


@click.group(context_settings={"show_default": True, "max_content_width": 120})
def app() -> None:
    """Model monitoring: capture, aggregate, detect drift, alert and act."""


@app.group("reference")
def reference_app() -> None:
    """Reference data: what the model was trained on."""


class LazyConsole:
    """A rich Console made on first use: importing rich costs 15 ms that a ``--json`` run never needs."""

    def __init__(self, stderr: bool = False) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self._stderr)
        return self._console

    def print(self, *objects: Any, **kwargs: Any) -> None:
        if all(isinstance(o, str) for o in objects):  # a sentence stays one line, whatever the terminal's width
            kwargs.setdefault("soft_wrap", True)
        self.console.print(*objects, **kwargs)

    def print_json(self, text: str) -> None:
        self.console.print_json(text)

    @property
    def is_terminal(self) -> bool:
        return self.console.is_terminal


out = LazyConsole()
err = LazyConsole(stderr=True)

store_option = click.option(
    "--store", default=None, help="store URI; default $SUSTAIN_STORE or duckdb:///./data/sustain.duckdb"
)
json_option = click.option("--json", "json_out", is_flag=True, help="print JSON instead of a table")
url_option = click.option("--url", envvar="SUSTAIN_URL", default="http://127.0.0.1:8000", help="the sustain service")
token_option = click.option("--token", envvar="SUSTAIN_TOKEN", default=None, help="bearer token")
config_option = click.option(
    "--config", "-c", type=click.Path(path_type=Path), default=None, help="monitor spec file (sustain.yaml)"
)


def path_type() -> click.Path:
    return click.Path(path_type=Path)


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise click.exceptions.Exit(code)


def call_service(method: str, url: str, path: str, token: str | None, timeout: float = 30.0, **kwargs: Any) -> Any:
    """One request to the running service: its JSON, or a sentence and an exit code (2 bad input, 3 down)."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.request(method, f"{url.rstrip('/')}{path}", headers=headers, timeout=timeout, **kwargs)
    except httpx.HTTPError as exc:
        fail(f"cannot reach the sustain service at {url} ({exc}); is it running? (sustain serve)", 3)
    if response.status_code >= 400:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:300]
        fail(f"the service answered {response.status_code}: {message}", 2 if response.status_code < 500 else 3)
    return response.json()
