"""The one-shot drift report as one self-contained HTML file: the verdict table, then a chart per column.

Each chart puts the reference's and the current data's shares side by side, bin by bin (numbers, in the
reference's quantile bins) or category by category, so the eye sees *how* a column moved, not only that it
did. plotly.js is inlined from the installed plotly package, so the file opens offline and can be mailed or
attached to a ticket. Nothing but the standard library is imported to write it.
"""

from __future__ import annotations

import html
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Histogram:
    """What a column's chart shows: one label per bin or category and the counts on each side."""

    labels: list[str]
    reference: list[float]
    current: list[float]

    @classmethod
    def numeric(cls, edges: list[float], reference: list[float], current: list[float]) -> Histogram:
        """Right-closed bins between ``edges``, labelled like ``(1.5, 2.25]``.

        >>> Histogram.numeric([1.0, 2.5], [1, 2, 3], [3, 2, 1]).labels
        ['≤ 1', '(1, 2.5]', '> 2.5']
        """
        if not edges:
            return cls(["all values"], reference, current)
        text = [f"{e:.4g}" for e in edges]
        labels = [f"≤ {text[0]}", *(f"({a}, {b}]" for a, b in itertools.pairwise(text)), f"> {text[-1]}"]
        return cls(labels, reference, current)

    def shares(self) -> tuple[list[float], list[float]]:
        """Each side's counts as fractions of its total."""
        ref_total, cur_total = sum(self.reference) or 1.0, sum(self.current) or 1.0
        return [c / ref_total for c in self.reference], [c / cur_total for c in self.current]


def chart_data(rows: list[dict[str, Any]], histograms: dict[str, Histogram]) -> list[dict[str, Any]]:
    """One entry per charted column: what the page hands to plotly (and what the tests read back)."""
    charts = []
    for i, row in enumerate(rows):
        histogram = histograms.get(row["column"])
        if histogram is None:
            continue
        reference, current = histogram.shares()
        charts.append(
            {
                "id": f"chart-{i}",
                "column": row["column"],
                "title": _title(row),
                "drifted": row["drifted"],
                "labels": histogram.labels,
                "reference": reference,
                "current": current,
            }
        )
    return charts


def _title(row: dict[str, Any]) -> str:
    verdict = "drifted" if row["drifted"] else row["status"]
    value = f"{row['method']} {row['value']:.4g}" if row["value"] is not None else row.get("reason", "")
    return f"{row['column']}: {verdict} ({value}, n={row['n']:,})"


def write_html(path: Path, body: dict[str, Any], histograms: dict[str, Histogram]) -> None:
    """Write the report; ``body`` is the ``--out`` JSON (sizes, settings, columns, notes)."""
    from sustain.plotly_asset import plotly_js

    script = plotly_js()
    if script is None:
        raise OSError("the HTML report needs the plotly package (it ships plotly.js): pip install plotly")
    rows: list[dict[str, Any]] = body["columns"]
    charts = chart_data(rows, histograms)
    drifted = [r["column"] for r in rows if r["drifted"]]
    page = _PAGE.format(
        title=html.escape(f"drift: {body['current']} against {body['reference']}"),
        summary=html.escape(
            f"{body['current_rows']:,} current rows against {body['reference_rows']:,} reference rows; "
            f"false-alarm budget {body['alpha']}, {body['correction']} correction across columns. "
            f"Drifted: {', '.join(drifted) if drifted else 'nothing'}."
        ),
        table=_table(rows),
        notes="".join(f"<li>{html.escape(n)}</li>" for n in body.get("notes", [])),
        charts="".join(f'<div class="chart" id="{c["id"]}"></div>' for c in charts),
        plotly=script.read_text(encoding="utf-8"),
        data=_script_json(charts),
    )
    path.write_text(page, encoding="utf-8")


def _script_json(value: Any) -> str:
    """JSON that cannot close its ``<script>`` element, whatever the column names hold."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _table(rows: list[dict[str, Any]]) -> str:
    def number(value: float | None) -> str:
        if value is None:
            return "-"
        return f"{value:.2e}" if 0 < abs(value) < 1e-4 else f"{value:.4f}"

    lines = []
    for r in rows:
        status = "drifted" if r["drifted"] else r["status"]
        cells = [
            html.escape(r["column"]),
            html.escape(r["kind"]),
            html.escape(r["method"] or "-"),
            number(r["value"]),
            number(r["threshold"]),
            number(r["p_value"]),
            f"{r['n']:,}",
            html.escape(status if "reason" not in r else f"{status}: {r['reason']}"),
        ]
        lines.append(f'<tr class="{html.escape(status)}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return "".join(lines)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 24px; color: #1d2433; }}
table {{ border-collapse: collapse; margin: 12px 0 20px; }}
td, th {{ padding: 3px 10px; border-bottom: 1px solid #e3e6ec; text-align: right; }}
td:nth-child(-n+3), th:nth-child(-n+3), td:last-child, th:last-child {{ text-align: left; }}
tr.drifted td {{ color: #b3261e; font-weight: 600; }}
tr.warn td {{ color: #8a6100; }}
tr.insufficient td {{ color: #7a8090; }}
.charts {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 8px; }}
.chart {{ height: 300px; border: 1px solid #e3e6ec; }}
</style>
<script>{plotly}</script>
</head><body data-state="loading">
<h1>{title}</h1>
<p>{summary}</p>
<table><thead><tr><th>column</th><th>kind</th><th>method</th><th>value</th><th>threshold</th><th>p-value</th>
<th>n</th><th>status</th></tr></thead><tbody>{table}</tbody></table>
<ul>{notes}</ul>
<div class="charts">{charts}</div>
<script type="application/json" id="sustain-data">{data}</script>
<script>
const charts = JSON.parse(document.getElementById("sustain-data").textContent);
const drawn = charts.map(c => Plotly.newPlot(c.id, [
  {{type: "bar", name: "reference", x: c.labels, y: c.reference, marker: {{color: "#8a94a6"}}}},
  {{type: "bar", name: "current", x: c.labels, y: c.current, marker: {{color: c.drifted ? "#b3261e" : "#2f6fdb"}}}},
], {{
  title: {{text: c.title, font: {{size: 13, color: c.drifted ? "#b3261e" : "#1d2433"}}}},
  barmode: "group", margin: {{l: 48, r: 12, t: 36, b: 64}}, yaxis: {{tickformat: ".0%"}},
  xaxis: {{tickfont: {{size: 9}}, automargin: true}},
  legend: {{orientation: "h", y: 1.12, x: 1, xanchor: "right"}},
}}, {{displaylogo: false, responsive: true}}));
Promise.all(drawn).then(() => {{ document.body.dataset.state = "ready"; }});
</script>
</body></html>
"""
