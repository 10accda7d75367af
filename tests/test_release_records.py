"""Release records: the state machine, the DuckDB release store, the spec's release section, webhook checks."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sustain.alerting.signing import signature
from sustain.backends.duckdb.releases import DuckDBReleases
from sustain.backends.duckdb.store import DuckDBStore
from sustain.deploy_pipeline.release.errors import WebhookRejected
from sustain.deploy_pipeline.release.webhooks import parse_event, verify_delivery
from sustain.errors import Conflict, SpecError, ValidationError
from sustain.spec.loader import load_config_text
from sustain.store.releases import AliasEvent, Check, Delivery, Release, StageRecord, State, Transition, now


@pytest.fixture
def releases(tmp_path: Path) -> DuckDBReleases:
    return DuckDBReleases(DuckDBStore(f"duckdb:///{tmp_path / 'releases.duckdb'}"))


def _release(version: str = "1", state: State = State.REGISTERED) -> Release:
    at = now()
    return Release("churn", version, state, at, at, stages=[StageRecord(State.REGISTERED, at, at, "passed", "seen")])


def test_the_state_machine_allows_only_forward_moves_and_retries_of_ended_releases() -> None:
    release = _release()
    for state in (State.CHECKED, State.TESTED, State.PACKAGED, State.DEPLOYED, State.PROMOTED, State.ROLLED_BACK):
        release.move(state, f"now {state.value}")
    assert release.state == State.ROLLED_BACK and release.reason == "now rolled_back"
    with pytest.raises(Conflict, match="is checked; it cannot become promoted"):
        _release(state=State.CHECKED).move(State.PROMOTED, "skip the tests")
    assert State.REJECTED.retryable and State.FAILED.retryable and State.SUPERSEDED.retryable
    assert not State.DEPLOYED.retryable and not State.PROMOTED.retryable and not State.TESTED.retryable


def test_a_release_begins_once_until_it_ends_badly(releases: DuckDBReleases) -> None:
    first = releases.begin(_release())
    assert first is not None and first.attempt == 1
    assert releases.begin(_release()) is None  # a second trigger for a running release changes nothing
    first.move(State.CHECKED, "standards met")
    first.move(State.REJECTED, "failed test example")
    releases.save(first, Transition("churn", "1", State.REJECTED, now(), "failed test example"))
    again = releases.begin(_release())
    assert again is not None and again.attempt == 2 and releases.get("churn", "1").state == State.REGISTERED  # type: ignore[union-attr]
    states = [t.state for t in releases.transitions("churn")]
    assert states == [State.REGISTERED, State.REJECTED, State.REGISTERED]


def test_a_release_round_trips_with_its_stages_and_checks(releases: DuckDBReleases) -> None:
    release = releases.begin(_release("7"))
    assert release is not None
    record = StageRecord(State.CHECKED, now(), now(), "failed", "no signature")
    record.checks.append(Check("signature", False, "logged without a signature", "log an input example"))
    release.stages.append(record)
    release.move(State.REJECTED, "checked stage: no signature")
    releases.save(release)
    loaded = releases.get("churn", "7")
    assert loaded is not None and loaded.to_json() == release.to_json()
    assert loaded.stage(State.CHECKED).checks[0].fix == "log an input example"  # type: ignore[union-attr]
    assert [r.version for r in releases.query("churn")] == ["7"] and releases.query("other") == []


def test_the_champion_at_any_time_is_answered_from_the_alias_history(releases: DuckDBReleases) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for minutes, version in ((0, "1"), (10, "2"), (20, "1"), (30, None)):
        releases.record_alias(AliasEvent("churn", "champion", version, t0 + timedelta(minutes=minutes)))

    def at(minutes: float) -> str | None:
        event = releases.alias_at("churn", "champion", t0 + timedelta(minutes=minutes))
        return None if event is None else event.version

    assert [at(-1), at(5), at(15), at(25), at(35)] == [None, "1", "2", "1", None]
    assert len(releases.alias_history("churn")) == 4 and releases.alias_history("other") == []


def test_a_delivery_is_claimed_once_and_rejected_ones_never_claim_an_id(releases: DuckDBReleases) -> None:
    releases.record_delivery(Delivery("d-1", now(), "rejected", "forged"))
    assert releases.claim_delivery(Delivery("d-1", now(), "accepted", "release churn 3"))
    assert not releases.claim_delivery(Delivery("d-1", now(), "accepted", "release churn 3"))
    outcomes = [d.outcome for d in releases.deliveries()]
    assert sorted(outcomes) == ["accepted", "duplicate", "rejected"]


def test_the_release_section_of_a_spec_has_defaults_and_names_its_mistakes() -> None:
    spec = load_config_text("models:\n  - name: churn\n    features: {x: numeric}\n").models[0]
    assert spec.release.policy == "manual" and spec.release.standards.signature and spec.release.canary_percent == 10
    text = """
models:
  - name: churn
    features: {x: numeric}
    release:
      policy: sometimes
      evaluation: {thresholds: {my_metric: {threshold: 1}}}
"""
    with pytest.raises(SpecError) as caught:
        load_config_text(text, source="sustain.yaml")
    problems = {p["path"]: p["message"] for p in caught.value.details}
    assert "models[0].release.policy" in problems
    assert "say greater_is_better" in problems["models[0].release.evaluation"]


def _signed(secret: bytes, body: bytes, delivery: str = "d-1", stamp: int | None = None) -> dict[str, str]:
    stamp = int(time.time()) if stamp is None else stamp
    return {
        "X-MLflow-Delivery-Id": delivery,
        "X-MLflow-Timestamp": str(stamp),
        "X-MLflow-Signature": signature(secret, delivery, stamp, body),
    }


def test_webhook_deliveries_are_verified_and_each_refusal_says_why() -> None:
    body = b'{"entity": "model_version", "action": "created", "data": {"name": "churn", "version": "4"}}'
    assert verify_delivery(b"s", _signed(b"s", body), body) == "d-1"
    cases = {
        "missing x-mlflow-signature": {k: v for k, v in _signed(b"s", body).items() if k != "X-MLflow-Signature"},
        "does not match the body": _signed(b"other", body),
        "s old": _signed(b"s", body, stamp=int(time.time()) - 3600),
        "unix seconds": {**_signed(b"s", body), "X-MLflow-Timestamp": "yesterday"},
    }
    for expected, headers in cases.items():
        with pytest.raises(WebhookRejected, match=expected):
            verify_delivery(b"s", headers, body)
    tampered = body.replace(b'"4"', b'"5"')
    with pytest.raises(WebhookRejected, match="does not match"):
        verify_delivery(b"s", _signed(b"s", body), tampered)
    assert parse_event(body).version == "4"
    with pytest.raises(ValidationError, match="names no registered model"):
        parse_event(b'{"entity": "model_version", "action": "created", "data": {}}')
