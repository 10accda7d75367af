"""The ``sustain`` command. Errors read as sentences with an exit code, never a traceback.

Exit codes: 0 ok, 1 failure, 2 bad input (spec, options), 3 the store or service is unavailable, 130 interrupted.
Subcommands live in modules of this package; each imports its heavy dependencies only when it runs.
"""

from __future__ import annotations

import logging
import os
import sys

from sustain.cli import aiu, alerts, core, demo, drift, export, graph, indicators, releases, trial  # noqa: F401 - importing registers the subcommands
from sustain.cli.app import app, err
from sustain.errors import SustainError

# Commands that only read files and print: at their end there is nothing to close but our own streams.
EXIT_WITHOUT_TEARDOWN = frozenset({"drift", "profile"})


def main(argv: list[str] | None = None) -> None:
    """Run the command and turn sustain errors into sentences with exit codes (raises SystemExit).

    Safe to call from Python: it never ends the process by itself (see :func:`console_main`).
    """
    try:
        app.main(args=argv, prog_name="sustain", standalone_mode=True)
    except SustainError as exc:
        err.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
        for problem in (exc.details or [])[:20] if isinstance(exc.details, list) else []:
            if isinstance(problem, dict) and "message" in problem:
                err.print(f"  {problem.get('where', '')}: {problem['message']}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except BrokenPipeError:
        raise
    except OSError as exc:
        err.print(f"[bold red]error:[/] {exc.strerror or exc}: {getattr(exc, 'filename', '') or ''}", highlight=False)
        sys.exit(1)


def console_main() -> None:
    """The ``sustain`` console script and ``python -m sustain.cli``.

    Besides :func:`main`: ``sustain drift ... | head`` ends quietly when the reader closes the pipe, and the
    read-only commands (drift, profile) end without the interpreter's teardown once their output is flushed.
    """
    fast = bool(sys.argv[1:]) and sys.argv[1] in EXIT_WITHOUT_TEARDOWN
    try:
        main()
    except SystemExit as exc:
        if fast:
            _exit_now(exc.code)
        raise
    except BrokenPipeError:
        _quiet_broken_pipe()


def _quiet_broken_pipe() -> None:
    """The reader of our output went away (``| head``): say nothing more and leave with the usual SIGPIPE status."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush of stdout would fail again
    sys.exit(141)


def _exit_now(code: object) -> None:
    """Exit without the interpreter's teardown, which frees every NumPy and Arrow buffer and module one by one:
    about 60 ms after ``sustain drift`` on a large file, a sixth of the whole command. Files the command wrote
    are closed by then; logging handlers and our streams are flushed here."""
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    logging.shutdown()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = code or 141
    sys.stderr.flush()
    os._exit(code or 0)
