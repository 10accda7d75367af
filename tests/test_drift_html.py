"""`sustain drift --html`: one self-contained page, opened in a real Chromium, plotting exactly the counted shares."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from playwright.sync_api import BrowserContext

from tests.browser import ARTIFACTS, REPO, Watched, chromium, chromium_path

HOSTILE = "</script><script>alert(1)</script>"


def table(n: int, seed: int, drift: bool, category: str = "team") -> pa.Table:
    rng = np.random.default_rng(seed)
    p = np.array([0.5, 0.3, 0.2])
    return pa.table(
        {
            "age": rng.normal(40 + (5 if drift else 0), 10, n),
            "plan": rng.choice(["basic", "pro", category], size=n, p=p[::-1] if drift else p),
            "active": rng.random(n) < 0.4,
            "score": rng.normal(0, 1, n),
        }
    )


def html_report(tmp: Path, reference: pa.Table, current: pa.Table) -> dict:
    """Run `sustain drift --html` as a user does (relative paths, from the data's folder) and read the page."""
    ref, cur, page = tmp / "ref.parquet", tmp / "cur.parquet", tmp / "report.html"
    pq.write_table(reference, ref)
    pq.write_table(current, cur)
    command = [sys.executable, "-m", "sustain.cli", "drift", ref.name, cur.name, "--json", "--html", page.name]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp)
    assert result.returncode == 1, result.stderr
    text = page.read_text()
    embedded = re.search(r'<script type="application/json" id="sustain-data">(.*?)</script>', text, re.S)
    assert embedded is not None
    return {"rows": json.loads(result.stdout), "charts": json.loads(embedded.group(1)), "text": text, "page": page}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    chromium_path()
    reference = table(20_000, 1, False)
    return {**html_report(tmp_path_factory.mktemp("html"), reference, table(30_000, 2, True)), "ref": reference}


def open_offline(browser: BrowserContext, page: Path) -> tuple[Watched, list[str], list[str]]:
    """The page in Chromium with every request but the file itself refused; dialogs (``alert``) recorded."""
    watched = Watched.open(browser)
    dialogs: list[str] = []
    watched.page.on("dialog", lambda d: dialogs.append(d.message))
    refused: list[str] = []

    def only_the_file(route) -> None:
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    watched.page.route("**/*", only_the_file)
    watched.goto(page.as_uri())
    return watched, dialogs, refused


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


def test_the_page_embeds_what_was_counted(report) -> None:
    charts = {c["column"]: c for c in report["charts"]}
    assert set(charts) == {r["column"] for r in report["rows"]}
    assert {c for c, chart in charts.items() if chart["drifted"]} == {"age", "plan"}
    plan = report["ref"].column("plan").to_pylist()
    expected = {k: plan.count(k) / len(plan) for k in set(plan)}
    got = dict(zip(charts["plan"]["labels"], charts["plan"]["reference"], strict=True))
    assert got == pytest.approx(expected, abs=1e-12)  # no empty "(other)" bar: nothing fell outside the categories
    assert charts["active"]["labels"] == ["false", "true"]
    age = charts["age"]
    assert age["labels"][0].startswith("≤ ") and age["labels"][-1].startswith("> ") and len(age["labels"]) == 20
    assert sum(age["reference"]) == pytest.approx(1) and sum(age["current"]) == pytest.approx(1)
    assert "<script src=" not in report["text"] and "<link" not in report["text"]  # everything inline


def test_names_cannot_break_out_of_the_page(tmp_path, browser) -> None:
    reference = table(5_000, 3, False, category=HOSTILE).rename_columns(["age", HOSTILE, "active", "score"])
    current = table(5_000, 4, True, category=HOSTILE).rename_columns(["age", HOSTILE, "active", "score"])
    report = html_report(tmp_path, reference, current)
    assert HOSTILE not in report["text"]  # escaped in the table, \u003c in the data
    watched, dialogs, _ = open_offline(browser, report["page"])
    try:
        labels = watched.traces(next(c["id"] for c in report["charts"] if c["column"] == HOSTILE))[0]["x"]
        assert HOSTILE in labels and not dialogs
        watched.assert_clean()
    finally:
        watched.close()


def test_the_page_draws_every_chart_offline_without_errors(report, browser) -> None:
    watched = Watched.open(browser)
    try:
        watched.page.route(
            "**/*", lambda route: route.abort() if not route.request.url.startswith("file:") else route.continue_()
        )
        watched.goto(report["page"].as_uri())
        for chart in report["charts"]:
            traces = watched.traces(chart["id"])
            assert [t["name"] for t in traces] == ["reference", "current"]
            assert traces[0]["y"] == pytest.approx(chart["reference"]) and traces[1]["y"] == pytest.approx(
                chart["current"]
            )
        watched.page.wait_for_timeout(200)  # an injected script would have run by now
        dialogs: list[str] = []
        watched.page.on("dialog", lambda d: dialogs.append(d.message))
        assert not dialogs
        assert watched.page.locator("tr.drifted").count() == 2
        # docs/drift-report.png (the README's picture) is refreshed on request, so `make test` leaves the tree clean
        update_docs = os.environ.get("SUSTAIN_UPDATE_SCREENSHOTS") == "1"
        watched.screenshot(
            ARTIFACTS / "drift-report.png", *([REPO / "docs" / "drift-report.png"] if update_docs else [])
        )
        watched.assert_clean()
    finally:
        watched.close()
