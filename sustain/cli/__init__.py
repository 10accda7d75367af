"""The ``sustain`` command. Errors read as sentences with an exit code, never a traceback.

Exit codes: 0 ok, 1 failure, 2 bad input (spec, options), 3 the store or service is unavailable, 130 interrupted.
Subcommands live in modules of this package; each imports its heavy dependencies only when it runs.
"""

from __future__ import annotations

import sys

from sustain.cli import alerts, core, demo, drift, export, indicators  # noqa: F401 - importing registers the subcommands
from sustain.cli.app import app, err
from sustain.errors import SustainError


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app and turn sustain errors into sentences with exit codes."""
    try:
        app(args=argv, standalone_mode=True)
    except SustainError as exc:
        err.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
        for problem in (exc.details or [])[:20] if isinstance(exc.details, list) else []:
            if isinstance(problem, dict) and "message" in problem:
                err.print(f"  {problem.get('where', '')}: {problem['message']}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except OSError as exc:
        err.print(f"[bold red]error:[/] {exc.strerror or exc}: {getattr(exc, 'filename', '') or ''}", highlight=False)
        sys.exit(1)
