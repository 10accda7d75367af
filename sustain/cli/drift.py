"""``sustain drift REFERENCE CURRENT``: a calibrated drift report for two files, without a server."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from sustain.cli.app import app, err, fail, json_option, out, path_type

T = TypeVar("T")


@app.command()
@click.argument("reference", type=path_type())
@click.argument("current", type=path_type())
@json_option
@click.option("--alpha", type=float, default=0.01, help="false-alarm budget: chance of any alert on undrifted data")
@click.option("--correction", default="bh", help="bh, bonferroni, holm or none")
@click.option(
    "--method",
    default="auto",
    help="auto (psi / js / tv by kind), psi, js, hellinger, kl, tv, "
    "or wasserstein (numbers only, in reference standard deviations)",
)
@click.option("--test", default="auto", help="auto, calibrated, ks, cvm, ad, chi2, z or fisher")
@click.option("--bins", type=int, default=20, help="quantile bins per numeric column")
@click.option("--min-effect", type=float, default=None, help="smallest distance worth flagging")
@click.option("--columns", default=None, help="comma-separated columns to compare (default: all)")
@click.option("--out", "out_file", type=path_type(), default=None, help="also write the JSON report here")
@click.option(
    "--html",
    "html_file",
    type=path_type(),
    default=None,
    help="also write an HTML report with a chart per column (self-contained: opens offline)",
)
def drift(
    reference: Path,
    current: Path,
    json_out: bool,
    alpha: float,
    correction: str,
    method: str,
    test: str,
    bins: int,
    min_effect: float | None,
    columns: str | None,
    out_file: Path | None,
    html_file: Path | None,
) -> None:
    """Compare CURRENT with REFERENCE column by column; exit code 1 when something drifted.

    Each is a Parquet, CSV or JSON file, a glob or a folder of Parquet files. REFERENCE can also be a profile
    saved by `sustain profile`, so the reference is not read again."""
    _must_exist(reference, current)
    from sustain.indicators.decide import DriftSettings
    from sustain.report.drift import DriftReport, as_rows, histograms
    from sustain.report.profile import ProfileError
    from sustain.report.read import DataReadError

    chosen: Any = correction  # DriftSettings checks it
    try:
        settings = DriftSettings(method=method, test=test, alpha=alpha, correction=chosen, min_effect=min_effect)
        report = DriftReport(settings, bins=bins)
    except ValueError as exc:
        fail(f"--{exc}", 2)  # the message starts with the setting's name
    only = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    try:
        assessed, notes, sizes = _with_progress(lambda update: report.run(reference, current, only, update), json_out)
    except DataReadError as exc:
        fail(f"cannot read the data: {exc}", 2)
    except ProfileError as exc:
        fail(f"cannot use the profile: {exc}", 2)
    rows = as_rows(assessed)
    body = {
        "reference": str(reference),
        "current": str(current),
        **sizes,
        "alpha": alpha,
        "correction": correction,
        "columns": rows,
        "notes": notes,
    }
    try:
        if out_file is not None:
            out_file.write_text(json.dumps(body, indent=2))
        if html_file is not None:
            from sustain.report.html import write_html

            write_html(html_file, body, histograms(assessed))
    except OSError as exc:
        fail(f"cannot write the report: {exc.strerror or exc}: {getattr(exc, 'filename', '') or ''}", 1)
    drifted = [r["column"] for r in rows if r["drifted"]]
    if json_out:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        _print_table(rows, sizes, notes, drifted)
    raise click.exceptions.Exit(1 if drifted else 0)


def _must_exist(*paths: Path) -> None:
    """A missing file is a sentence before anything loads; a glob is left to the reader."""
    for path in paths:
        if not path.exists() and not any(ch in str(path) for ch in "*?["):
            fail(f"{path}: no such file", 2)


def _with_progress(work: Callable[[Any], T], quiet: bool) -> T:
    """``work(update)`` with rich progress bars on a terminal; ``update`` is None when nobody would see them."""
    if quiet or not sys.stderr.isatty():
        return work(None)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=err.console, transient=True
    ) as progress:
        tasks: dict[str, Any] = {}

        def update(label: str, done: float) -> None:
            if label not in tasks:
                tasks[label] = progress.add_task(label, total=1.0)
            progress.update(tasks[label], completed=done)

        return work(update)


def _print_table(rows: list[dict[str, Any]], sizes: dict[str, int], notes: list[str], drifted: list[str]) -> None:
    from rich.table import Table

    table = Table(title=f"drift: {sizes['current_rows']:,} current rows vs {sizes['reference_rows']:,} reference rows")
    for name in ("column", "kind", "method", "value", "threshold", "p-value", "n", "drifted"):
        table.add_column(name, justify="right" if name in ("value", "threshold", "p-value", "n") else "left")
    for r in rows:
        mark = "[bold red]yes[/]" if r["drifted"] else ("[yellow]warn[/]" if r["status"] == "warn" else "no")
        if r["status"] == "insufficient":
            mark = f"[dim]{r.get('reason', 'insufficient')}[/]"
        table.add_row(
            r["column"],
            r["kind"],
            r["method"] or "-",
            _fmt(r["value"]),
            _fmt(r["threshold"]),
            _fmt(r["p_value"], p=True),
            f"{r['n']:,}",
            mark,
        )
    out.print(table)
    for note in notes:
        out.print(f"[dim]note: {note}[/]", highlight=False)
    out.print(f"drifted: {', '.join(drifted) if drifted else 'nothing'}", highlight=False)


def _fmt(value: float | None, p: bool = False) -> str:
    if value is None:
        return "-"
    if p and value < 1e-4:
        return f"{value:.1e}"
    return f"{value:.4f}"


@app.command()
@click.argument("reference", type=path_type())
@click.option("--out", "-o", "out_file", type=path_type(), required=True, help="the profile file to write (.json)")
@click.option("--bins", type=int, default=20, help="quantile bins per numeric column")
@json_option
def profile(reference: Path, out_file: Path, bins: int, json_out: bool) -> None:
    """Profile REFERENCE once for `sustain drift PROFILE CURRENT`: bins, counts, categories and a bounded sample.

    REFERENCE is a Parquet, CSV or JSON file, a glob or a folder of Parquet files."""
    _must_exist(reference)
    if out_file.suffix.lower() != ".json":
        fail(f"--out {out_file}: a profile is a .json file (sustain drift recognises it by that)", 2)
    from sustain.report.drift import DriftReport
    from sustain.report.read import DataReadError

    try:
        report = DriftReport(bins=bins)
    except ValueError as exc:
        fail(f"--{exc}", 2)
    try:
        made = _with_progress(lambda update: report.profile(reference, update), json_out)
    except DataReadError as exc:
        fail(f"cannot read the data: {exc}", 2)
    try:
        made.save(out_file)
    except OSError as exc:
        fail(f"cannot write {out_file}: {exc.strerror or exc}", 1)
    summary = {"profile": str(out_file), "rows": made.rows, "columns": [c.name for c in made.columns]}
    if json_out:
        sys.stdout.write(json.dumps(summary) + "\n")
        return
    size = out_file.stat().st_size
    out.print(
        f"profiled {made.rows:,} rows x {len(made.columns)} columns of {reference} into {out_file} ({size:,} bytes)",
        highlight=False,
    )
