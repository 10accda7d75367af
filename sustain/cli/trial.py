"""``sustain indicators try TARGET REFERENCE CURRENT``: an indicator on two files, before it is deployed.

Exit codes: 0 the values were computed and every check passed, 1 a conformance check failed or the indicator
raised, 2 bad input (the indicator cannot be found or built, a file cannot be read, the spec is wrong).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sustain.cli.app import err, fail, json_option, out, path_type
from sustain.cli.drift import _must_exist, _with_progress
from sustain.cli.indicators import STATUS_STYLE, _num, indicators

if TYPE_CHECKING:
    from sustain.report.trial import Trial
    from sustain.spec import ModelSpec


def _params(pairs: tuple[str, ...]) -> dict[str, Any]:
    import yaml

    params: dict[str, Any] = {}
    for pair in pairs:
        key, eq, text = pair.partition("=")
        if not eq or not key.strip():
            fail(f"--param {pair!r}: write it as NAME=VALUE, e.g. --param margin=0.05", 2)
        try:
            params[key.strip()] = yaml.safe_load(text) if text.strip() else text
        except yaml.YAMLError:
            params[key.strip()] = text
    return params


@indicators.command("try")
@click.argument("target")
@click.argument("reference", type=path_type())
@click.argument("current", type=path_type())
@click.option("--spec", "spec_file", type=path_type(), default=None, help="monitor spec (default: read off REFERENCE)")
@click.option("--model", default=None, help="the model of --spec to use, when it holds several")
@click.option("--param", "-p", "pairs", multiple=True, help="an indicator parameter, NAME=VALUE (repeatable)")
@click.option("--skip-checks", is_flag=True, help="compute only; do not run the conformance checks")
@json_option
def try_(
    target: str,
    reference: Path,
    current: Path,
    spec_file: Path | None,
    model: str | None,
    pairs: tuple[str, ...],
    skip_checks: bool,
    json_out: bool,
) -> None:
    """Run the indicator TARGET on the window CURRENT makes against REFERENCE, with the conformance checks.

    TARGET is package.module:Class, path/to/file.py:Class or a registered indicator name. REFERENCE and CURRENT
    are Parquet, CSV or JSON files; CURRENT's rows become one window of events (its `label` column their
    labels), built by the same embedded pipeline the service and the conformance kit run. Without --spec, the
    spec is read off REFERENCE's columns: `label`, `prediction`, class scores as `<output>.<class>`, and every
    other column a feature of its type."""
    _must_exist(reference, current)
    from sustain.report.trial import load_indicator, load_spec, try_indicator

    indicator = load_indicator(target, _params(pairs))
    spec = load_spec(spec_file, model) if spec_file is not None else None
    trial = _with_progress(
        lambda update: try_indicator(
            indicator,
            reference,
            current,
            spec=spec,
            spec_source=str(spec_file) if spec_file else None,
            checks=not skip_checks,
            progress=update,
        ),
        json_out,
    )
    if json_out:
        sys.stdout.write(json.dumps(_body(trial, target), indent=2, default=str) + "\n")
    else:
        _print(trial, target, reference, current)
    raise click.exceptions.Exit(0 if trial.passed else 1)


def _body(trial: Trial, target: str) -> dict[str, Any]:
    ctx = trial.context
    return {
        "indicator": target,
        "params": trial.indicator.params(),
        "spec": trial.spec.model_dump(mode="json", exclude_defaults=True),
        "spec_source": trial.spec_source,
        "window": {"events": ctx.window.rows, "reference_rows": ctx.reference.rows if ctx.reference else 0},
        "values": [
            {
                "feature": v.feature,
                "metric": v.metric,
                "value": v.value,
                "status": v.status,
                "p_value": v.p_value,
                "threshold": v.threshold,
                "n": v.n,
                "method": v.method,
                "details": dict(v.details),
            }
            for v in trial.values
        ],
        "checks": [{"name": c.name, "passed": c.passed, "message": c.message} for c in trial.checks],
        "notes": trial.notes,
        "passed": trial.passed,
    }


def _print(trial: Trial, target: str, reference: Path, current: Path) -> None:
    from rich.table import Table

    ctx = trial.context
    ref_rows = ctx.reference.rows if ctx.reference else 0
    title = f"{target} on {current} ({ctx.window.rows:,} events) against {reference} ({ref_rows:,} rows)"
    out.print(title, highlight=False, soft_wrap=True)
    out.print(f"[dim]spec {trial.spec_source}: {_spec_line(trial.spec)}[/]", highlight=False, soft_wrap=True)
    for note in trial.notes:
        out.print(f"[dim]note: {note}[/]", highlight=False, soft_wrap=True)
    table = Table()
    for name in ("feature", "metric", "value", "threshold", "p-value", "n", "status"):
        table.add_column(name, justify="right" if name in ("value", "threshold", "p-value", "n") else "left")
    for v in trial.values:
        style = STATUS_STYLE.get(v.status, "")
        reason = v.details.get("reason") if v.status == "insufficient" else None
        table.add_row(
            v.feature or "(all)",
            v.metric or "-",
            _num(v.value),
            _num(v.threshold),
            _num(v.p_value),
            "-" if v.n is None else f"{v.n:,}",
            f"[{style}]{v.status}[/]" + (f" [dim]({reason})[/]" if reason else ""),
        )
    if trial.values:
        out.print(table)
    else:
        out.print("the indicator gave no values for this window", highlight=False, soft_wrap=True)
    failed = [c for c in trial.checks if not c.passed]
    for c in failed:
        err.print(f"[bold red]check failed:[/] {c.name}: {c.message}", highlight=False, soft_wrap=True)
    passed = len(trial.checks) - len(failed)
    out.print(f"checks: {passed} of {len(trial.checks)} passed", highlight=False, soft_wrap=True)


def _spec_line(spec: ModelSpec) -> str:
    parts = ["features " + ", ".join(f"{f.name} ({f.kind})" for f in spec.features)]
    for o in spec.outputs:
        classes = f": {', '.join(o.classes)}" if o.classes else ""
        parts.append(f"output {o.name} ({o.kind}{classes})")
    if spec.label is not None:
        parts.append(f"label ({spec.label.kind})")
    return "; ".join(parts)
