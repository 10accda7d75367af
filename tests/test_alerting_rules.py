"""Alert rules and their lifecycle on indicator documents, with a controlled clock and real HTTP receivers.

Each of cooldown, dedup, hysteresis, silences and retries has a test that fails without it.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sustain.alerting.documents import new_silence
from sustain.alerting.service import Alerting
from sustain.alerting.signing import verify
from sustain.backends.duckdb.alerts import DuckDBAlerts
from sustain.backends.duckdb.documents import DuckDBIndicators
from sustain.backends.duckdb.store import DuckDBStore
from sustain.indicators.documents import IndicatorDoc
from sustain.spec.loader import parse_model_spec
from tests.helpers import Receiver

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def make(tmp_path: Path, rules: list[dict], actions: dict, monkeypatch: pytest.MonkeyPatch | None = None):
    spec = parse_model_spec(
        {
            "name": "m",
            "features": {"x": "numeric", "y": "numeric"},
            "windows": ["1m"],
            "alerts": rules,
            "actions": actions,
        }
    )
    store = DuckDBStore(f"duckdb:///{tmp_path / 'a.duckdb'}")
    store.put_spec(spec)
    docs = DuckDBIndicators(store)
    clock = Clock()
    alerting = Alerting(store, docs, DuckDBAlerts(store), clock=clock, sleep=lambda s: None)
    return store, docs, alerting, clock


def window(docs: DuckDBIndicators, minute: int, drift: dict[str, str] | float, version: str = "1") -> None:
    """Drift documents for the window starting ``minute`` minutes after T0: per-feature statuses (or one value)."""
    start = T0 + timedelta(minutes=minute)
    rows = []
    statuses = drift if isinstance(drift, dict) else {"x": "ok", "y": "ok"}
    for feature, status in statuses.items():
        rows.append(
            IndicatorDoc(
                "m",
                version,
                "drift",
                "drift",
                feature,
                "1m",
                start,
                start + timedelta(minutes=1),
                0.3 if status == "alert" else 0.001,
                status,
                n=500,
            )
        )
    value = drift if isinstance(drift, float) else 0.0
    rows.append(
        IndicatorDoc(
            "m",
            version,
            "latency",
            "latency",
            None,
            "1m",
            start,
            start + timedelta(minutes=1),
            value,
            "ok",
            n=500,
            metric="p95",
        )
    )
    docs.put(rows)


def at(clock: Clock, minute: int, seconds: int = 30) -> None:
    clock.now = T0 + timedelta(minutes=minute, seconds=seconds)


def alerts(alerting: Alerting, status: str | None = None):
    return alerting.alerts.query(model="m", status=status)


DRIFT_RULE = {"name": "drift", "when": {"indicator": "drift", "feature": "any", "status": "alert"}}


def test_fire_then_resolve_and_the_webhook_is_signed(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SUSTAIN_SECRET_HOOK", "s3cret")
    with Receiver() as receiver:
        _, docs, alerting, clock = make(
            tmp_path,
            [{**DRIFT_RULE, "actions": ["hook"]}],
            {"hook": {"type": "webhook", "url": receiver.url, "secret": "${SUSTAIN_SECRET_HOOK}"}},
        )
        window(docs, 0, {"x": "ok", "y": "ok"})
        at(clock, 0)
        assert alerting.evaluator.evaluate() == [] and alerts(alerting) == []
        window(docs, 1, {"x": "alert", "y": "ok"})
        at(clock, 1)
        (fired,) = alerting.evaluator.evaluate()
        assert fired.status == "firing" and fired.evidence[0]["feature"] == "x" and "drift.x" in fired.summary
        alerting.dispatcher.flush()
        (request,) = receiver.requests
        assert verify(b"s3cret", request["headers"], request["body"])  # type: ignore[arg-type]
        body = json.loads(request["body"])  # type: ignore[arg-type]
        assert body["event"] == "firing" and body["alert"]["rule"] == "drift" and "s3cret" not in str(body)
        window(docs, 2, {"x": "ok", "y": "ok"})
        at(clock, 2)
        (resolved,) = alerting.evaluator.evaluate()
        assert resolved.status == "resolved" and resolved.resolved_at == clock.now
        alerting.dispatcher.flush()
        assert [json.loads(r["body"])["event"] for r in receiver.requests] == ["firing", "resolved"]  # type: ignore[arg-type]
        stored = alerting.alerts.get(fired.id)
        assert stored is not None and [a.event for a in stored.attempts if a.ok] == ["firing", "resolved"]


def test_dedup_one_alert_per_model_version_and_rule(tmp_path) -> None:
    _, docs, alerting, clock = make(tmp_path, [DRIFT_RULE], {})
    for minute in range(5):
        window(docs, minute, {"x": "alert", "y": "alert"})
        window(docs, minute, {"x": "alert", "y": "ok"}, version="2")
        at(clock, minute)
        alerting.evaluator.evaluate()
    firing = alerts(alerting, "firing")
    assert sorted(a.version for a in firing) == ["1", "2"]  # one per version, not one per window or feature


def test_cooldown_limits_repeated_notifications(tmp_path) -> None:
    with Receiver() as receiver:
        rule = {**DRIFT_RULE, "actions": ["hook"], "cooldown": "5m"}
        _, docs, alerting, clock = make(tmp_path, [rule], {"hook": {"type": "webhook", "url": receiver.url}})
        for minute in range(12):
            window(docs, minute, {"x": "alert", "y": "ok"})
            at(clock, minute)
            alerting.evaluator.evaluate()
            alerting.dispatcher.flush()
        events = [json.loads(r["body"])["event"] for r in receiver.requests]  # type: ignore[arg-type]
        assert events == ["firing", "repeat", "repeat"]  # minutes 0, 5 and 10 of a twelve-minute episode


def test_hysteresis_resolve_after_and_clear(tmp_path) -> None:
    rule = {
        "name": "slow",
        "when": {"indicator": "latency", "metric": "p95", "above": 100, "clear": 60},
        "resolve_after": 2,
    }
    _, docs, alerting, clock = make(tmp_path, [rule], {})
    for minute, p95 in enumerate([50.0, 120.0, 90.0, 80.0, 50.0, 70.0, 40.0, 30.0]):
        window(docs, minute, p95)
        at(clock, minute)
        alerting.evaluator.evaluate()
        status = alerts(alerting)[0].status if alerts(alerting) else None
        # fires at 120; 90 and 80 are below 'above' but above 'clear' (still firing); 50 is one healthy window,
        # 70 breaks the streak, 40 and 30 make two in a row: resolved.
        assert status == [None, "firing", "firing", "firing", "firing", "firing", "firing", "resolved"][minute], minute


def test_silences_hold_actions_until_they_end(tmp_path) -> None:
    with Receiver() as receiver:
        _, docs, alerting, clock = make(
            tmp_path, [{**DRIFT_RULE, "actions": ["hook"]}], {"hook": {"type": "webhook", "url": receiver.url}}
        )
        alerting.alerts.put_silence(
            new_silence(model="m", rule="drift", version="*", duration_seconds=150, reason="deploying", starts_at=T0)
        )
        for minute in range(4):
            window(docs, minute, {"x": "alert", "y": "ok"})
            at(clock, minute)
            alerting.evaluator.evaluate()
            alerting.dispatcher.flush()
            if minute < 2:
                assert receiver.requests == [] and alerts(alerting)[0].silenced
        assert [json.loads(r["body"])["event"] for r in receiver.requests] == ["firing"]  # type: ignore[arg-type]
        assert not alerts(alerting)[0].silenced


def test_retries_then_success_and_failures_are_recorded(tmp_path) -> None:
    # The other rule calls a receiver of its own: sharing the flaky one, its request could take the 500 or the 200
    # meant for the drift alert's retries (actions run on several threads).
    with Receiver(statuses=[503, 500, 200]) as flaky, Receiver(statuses=[404]) as wrong, Receiver() as steady:
        actions = {
            "flaky": {"type": "webhook", "url": flaky.url, "retries": 3},
            "down": {"type": "webhook", "url": "http://127.0.0.1:9/nothing", "retries": 2},
            "wrong": {"type": "webhook", "url": wrong.url, "retries": 3},
            "fails": {"type": "command", "command": [sys.executable, "-c", "import sys; sys.exit(1)"], "retries": 1},
            "hangs": {
                "type": "command",
                "command": [sys.executable, "-c", "import time; time.sleep(600)"],
                "timeout": "0.3s",
                "retries": 0,
            },
        }
        rules = [
            {**DRIFT_RULE, "actions": list(actions)},
            {"name": "other", "when": DRIFT_RULE["when"], "actions": ["steady"]},
        ]
        everything = {**actions, "steady": {"type": "webhook", "url": steady.url}}
        _, docs, alerting, clock = make(tmp_path, rules, everything)
        window(docs, 0, {"x": "alert", "y": "ok"})
        at(clock, 0)
        fired = alerting.evaluator.evaluate()
        assert {a.rule for a in fired} == {"drift", "other"}  # a failing action never stops another rule
        # Wait for the outcome, not for a time: a busy machine may take long to start the commands.
        assert alerting.dispatcher.flush(timeout=600)
        alert = next(a for a in alerts(alerting) if a.rule == "drift")
        tries: dict[str, list[tuple[int, bool]]] = {}
        for attempt in alert.attempts:
            tries.setdefault(attempt.action, []).append((attempt.attempt, attempt.ok))
        assert tries["flaky"] == [(1, False), (2, False), (3, True)]
        assert tries["down"] == [(1, False), (2, False), (3, False)]
        assert tries["wrong"] == [(1, False)]  # a 404 will not get better: no retry
        assert tries["fails"] == [(1, False), (2, False)]
        assert tries["hangs"] == [(1, False)] and "did not finish" in next(
            a.detail for a in alert.attempts if a.action == "hangs"
        )


def test_retrain_runs_once_per_firing(tmp_path) -> None:
    with Receiver() as trainer:
        rule = {**DRIFT_RULE, "actions": ["retrain"], "cooldown": "1m"}
        _, docs, alerting, clock = make(tmp_path, [rule], {"retrain": {"type": "retrain", "url": trainer.url}})
        for minute in range(6):  # firing for six minutes, re-notified every minute
            window(docs, minute, {"x": "alert", "y": "ok"})
            at(clock, minute)
            alerting.evaluator.evaluate()
            alerting.dispatcher.flush()
        assert len(trainer.requests) == 1
        window(docs, 6, {"x": "ok", "y": "ok"})
        at(clock, 6)
        alerting.evaluator.evaluate()
        window(docs, 7, {"x": "alert", "y": "ok"})  # a new episode: a new retraining
        at(clock, 7)
        alerting.evaluator.evaluate()
        alerting.dispatcher.flush()
        assert len(trainer.requests) == 2


def test_combinations_share_and_spike(tmp_path) -> None:
    rules = [
        {
            "name": "both",
            "when": {
                "all": [
                    {"indicator": "drift", "feature": "any", "status": "alert", "for": 2},
                    {"indicator": "latency", "metric": "p95", "above": 100},
                ]
            },
        },
        {"name": "half", "when": {"indicator": "drift", "share": 0.5, "status": "alert"}},
        {"name": "jump", "when": {"spike": {"indicator": "latency", "metric": "p95", "factor": 3, "baseline": 4}}},
    ]
    _, docs, alerting, clock = make(tmp_path, rules, {})
    plan = [
        ({"x": "ok", "y": "ok"}, 20.0),
        ({"x": "alert", "y": "ok"}, 20.0),
        ({"x": "alert", "y": "ok"}, 20.0),
        ({"x": "ok", "y": "ok"}, 20.0),
        ({"x": "alert", "y": "ok"}, 200.0),
        ({"x": "alert", "y": "alert"}, 150.0),
    ]
    fired: list[tuple[int, str]] = []
    for minute, (statuses, p95) in enumerate(plan):
        start = T0 + timedelta(minutes=minute)
        window(docs, minute, statuses)
        docs.put(
            [
                IndicatorDoc(
                    "m",
                    "1",
                    "latency",
                    "latency",
                    None,
                    "1m",
                    start,
                    start + timedelta(minutes=1),
                    p95,
                    "ok",
                    metric="p95",
                )
            ]
        )
        at(clock, minute)
        fired += [(minute, a.rule) for a in alerting.evaluator.evaluate() if a.status == "firing"]
    assert (1, "half") in fired  # one of two features: share 0.5
    assert (4, "jump") in fired  # 200 >= 3 x mean(20, 20, 20, 20)
    assert (5, "both") in fired and not any(rule == "both" for m, rule in fired if m < 5)


def test_flatline_fires_when_traffic_stops(tmp_path) -> None:
    _, docs, alerting, clock = make(
        tmp_path, [{"name": "quiet", "when": {"flatline": {"below": 100, "for": "5m"}}}], {}
    )
    for minute in range(10):
        start = T0 + timedelta(minutes=minute)
        docs.put(
            [IndicatorDoc("m", "1", "traffic", "traffic", None, "1m", start, start + timedelta(minutes=1), 500.0, "ok")]
        )
    at(clock, 10, 0)
    assert alerting.evaluator.evaluate() == []
    at(clock, 16, 0)  # no windows at all for six minutes
    (alert,) = alerting.evaluator.evaluate()
    assert alert.rule == "quiet" and alert.version == "*" and alert.evidence[0]["events"] == 0


def test_saving_an_alert_read_before_an_attempt_keeps_the_attempt(tmp_path) -> None:
    """The evaluator may save an alert it read before a dispatcher thread recorded an attempt on it (several
    windows judged in one pass): the attempt stays, and the later notification time wins."""
    from sustain.alerting.documents import Alert, Attempt

    alerts = DuckDBAlerts(DuckDBStore(f"duckdb:///{tmp_path / 'a.duckdb'}"))
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    alerts.save(Alert.new("m|1|r", "r", "m", "1", "critical", t0))
    stale = alerts.active("m|1|r")
    assert stale is not None
    alerts.add_attempt(stale.id, Attempt("hook", "webhook", "firing", t0 + timedelta(seconds=1), True, "200", 1, 0.01))
    stale.summary = "judged again"
    alerts.save(stale)
    saved = alerts.get(stale.id)
    assert saved is not None and saved.summary == "judged again"
    assert [a.action for a in saved.attempts] == ["hook"]
    assert saved.last_notified_at == t0 + timedelta(seconds=1)
