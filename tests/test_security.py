"""Least privilege (issue 11, items 1-3): scopes, actions that run programs, the environment allow-list, hooks
that confirm their rule, secrets kept out of logs and answers, and the loopback guard of ``create_app``."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from sustain.alerting.service import Alerting
from sustain.api.app import create_app
from sustain.errors import ConfigError, SpecError
from sustain.indicators.documents import IndicatorDoc
from sustain.settings import Settings
from sustain.spec.loader import load_config_text, parse_model_spec
from tests.helpers import CHURN_YAML, Receiver

READ, WRITE, ADMIN = "read-token", "write-token", "admin-token"
TOKENS = {"read_tokens": (READ,), "write_tokens": (WRITE,), "admin_tokens": (ADMIN,)}
SLACK_SECRET = "B0SECRETPATH4711"


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def config(tmp_path: Path, receiver_url: str, marker: Path) -> Path:
    data = yaml.safe_load(CHURN_YAML)
    churn = data["models"][0]
    churn["actions"] = {
        "hook": {"type": "webhook", "url": f"{receiver_url}/hook", "secret": "${SUSTAIN_SECRET_HOOK}"},
        "team-slack": {"type": "slack", "url": f"{receiver_url}/services/T0/{SLACK_SECRET}", "retries": 0},
        "run": {"type": "command", "command": [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]},
    }
    churn["alerts"] = [
        {
            "name": "drift",
            "when": {"indicator": "drift", "feature": "any", "status": "alert"},
            "actions": ["hook", "team-slack", "run"],
        }
    ]
    path = tmp_path / "sustain.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(statuses=[500]) as r:  # every delivery fails: the failure is what must not leak the secret
        yield r


@pytest.fixture
def app_client(tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("SUSTAIN_SECRET_HOOK", "hook-signing-secret")
    settings = Settings(
        store=f"duckdb:///{tmp_path / 's.duckdb'}",
        config=str(config(tmp_path, receiver.url, tmp_path / "ran")),
        **TOKENS,  # type: ignore[arg-type]
    )
    with TestClient(create_app(settings)) as client:
        yield client


PWN = {"features": {"age": "numeric"}, "actions": {"run": {"type": "command", "command": ["touch", "X"]}}}


def test_a_write_token_cannot_change_specs_silences_or_run_hooks(app_client: TestClient, tmp_path: Path) -> None:
    """Issue 11 item 1 as reported: PUT a spec with a command action, then call its hook, with the write token
    every Logger carries."""
    put = app_client.put("/v1/models/pwn", json=PWN, headers=auth(WRITE))
    assert put.status_code == 403 and "admin token" in put.json()["error"]["message"]
    hook = app_client.post("/v1/hooks/run", params={"model": "churn", "rule": "drift"}, headers=auth(WRITE))
    assert hook.status_code == 403
    silence = {"model": "churn", "duration": "1h", "reason": "x"}
    assert app_client.post("/v1/silences", json=silence, headers=auth(WRITE)).status_code == 403
    assert app_client.delete("/v1/silences/nope", headers=auth(WRITE)).status_code == 403
    # the write token still does what loggers need, and reads
    event = {"features": {"age": 30}}
    assert app_client.post("/v1/models/churn/events", json=[event], headers=auth(WRITE)).status_code == 200
    assert app_client.get("/v1/models/churn", headers=auth(WRITE)).status_code == 200
    # the admin token passes the scope check for all of them
    assert app_client.post("/v1/silences", json=silence, headers=auth(ADMIN)).status_code == 201
    assert not (tmp_path / "ran").exists() and not Path("X").exists()


def test_specs_over_http_cannot_define_actions_that_run_programs(app_client: TestClient) -> None:
    r = app_client.put("/v1/models/pwn", json=PWN, headers=auth(ADMIN))
    assert r.status_code == 403 and "only be defined in the config file" in r.json()["error"]["message"]
    assert r.json()["error"]["field"] == "actions.run"
    retrain = {"features": {"age": "numeric"}, "actions": {"r": {"type": "retrain", "command": "touch X"}}}
    assert app_client.put("/v1/models/pwn", json=retrain, headers=auth(ADMIN)).status_code == 403
    mlflow = {"features": {"age": "numeric"}, "actions": {"r": {"type": "retrain", "mlflow_project": "git://x"}}}
    assert app_client.put("/v1/models/pwn", json=mlflow, headers=auth(ADMIN)).status_code == 403
    assert app_client.get("/v1/models/pwn", headers=auth(READ)).status_code == 404
    # a spec without such actions is fine with the admin token
    fine = {"features": {"age": "numeric"}, "actions": {"note": {"type": "log"}}}
    assert app_client.put("/v1/models/fine", json=fine, headers=auth(ADMIN)).status_code == 201


def test_the_config_files_command_action_may_be_sent_back_unchanged_but_not_changed(app_client: TestClient) -> None:
    shown = app_client.get("/v1/models/churn", headers=auth(READ)).json()
    shown["windows"] = ["1m", "1h", "1d"]
    r = app_client.put("/v1/models/churn", json=shown, headers=auth(ADMIN))
    assert r.status_code == 200, r.text
    assert r.json()["windows"] == ["1m", "1h", "1d"]
    shown["actions"]["run"]["command"] = ["touch", "X"]
    assert app_client.put("/v1/models/churn", json=shown, headers=auth(ADMIN)).status_code == 403


def test_a_spec_may_not_read_the_services_tokens(app_client: TestClient, receiver: Receiver) -> None:
    leak = {"features": {"age": "numeric"}, "actions": {"w": {"type": "webhook", "url": "${SUSTAIN_WRITE_TOKENS}"}}}
    r = app_client.put("/v1/models/leak", json=leak, headers=auth(ADMIN))
    assert r.status_code == 422 and "SUSTAIN_WRITE_TOKENS" in r.json()["error"]["message"]
    other = {"features": {"age": "numeric"}, "actions": {"w": {"type": "webhook", "url": f"{receiver.url}/${{HOME}}"}}}
    r = app_client.put("/v1/models/leak", json=other, headers=auth(ADMIN))
    assert r.status_code == 422 and "SUSTAIN_SECRET_*" in r.json()["error"]["message"]
    allowed = {"features": {"age": "numeric"}, "actions": {"w": {"type": "webhook", "url": "${SUSTAIN_SECRET_X}"}}}
    assert app_client.put("/v1/models/leak", json=allowed, headers=auth(ADMIN)).status_code == 201


def test_the_config_file_lists_what_actions_may_read(tmp_path: Path) -> None:
    spec = "models:\n  - name: m\n    features: {x: numeric}\n    actions: {s: {type: slack, url: '${TEAM_SLACK}'}}\n"
    with pytest.raises(SpecError, match="TEAM_SLACK"):
        load_config_text(spec)
    assert load_config_text("action_env: [TEAM_SLACK]\n" + spec).env_policy.allows("TEAM_SLACK")
    with pytest.raises(SpecError, match="own credentials"):
        load_config_text("action_env: [SUSTAIN_ADMIN_TOKENS]\n" + spec.replace("TEAM_SLACK", "SUSTAIN_SECRET_S"))


def _alerting(tmp_path: Path, actions: dict[str, Any], policy: Any = None) -> tuple[Alerting, Any]:
    from sustain.backends.duckdb.alerts import DuckDBAlerts
    from sustain.backends.duckdb.documents import DuckDBIndicators
    from sustain.backends.duckdb.store import DuckDBStore

    # parse_model_spec does not check the allow-list: this is a spec stored before it existed
    spec = parse_model_spec(
        {
            "name": "m",
            "features": {"x": "numeric"},
            "windows": ["1m"],
            "alerts": [{"name": "drift", "when": {"indicator": "drift", "feature": "any", "status": "alert"}}],
            "actions": actions,
        }
    )
    store = DuckDBStore(f"duckdb:///{tmp_path / 'a.duckdb'}")
    store.put_spec(spec)
    docs = DuckDBIndicators(store)
    extra = {} if policy is None else {"env_policy": policy}
    return Alerting(store, docs, DuckDBAlerts(store), sleep=lambda s: None, **extra), spec


def test_actions_never_expand_a_variable_off_the_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sustain.spec.secrets import EnvPolicy

    monkeypatch.setenv("SUSTAIN_WRITE_TOKENS", "the-write-token")
    monkeypatch.setenv("LISTED", "fine")
    with Receiver() as receiver:
        actions = {
            "leak": {"type": "webhook", "url": receiver.url + "/${SUSTAIN_WRITE_TOKENS}", "retries": 0},
            "listed": {"type": "webhook", "url": receiver.url + "/${LISTED}", "retries": 0},
        }
        alerting, spec = _alerting(tmp_path, actions, EnvPolicy(frozenset({"LISTED"})))
        from sustain.alerting.documents import Alert

        alert = Alert.new("k", "drift", "m", "1", "warning", datetime.now(UTC))
        alerting.alerts.save(alert)
        alerting.dispatcher.dispatch(spec, alert, "firing", ["leak", "listed"])
        assert alerting.dispatcher.flush(30)
        stored = alerting.alerts.get(alert.id)
        assert stored is not None
        by_action = {a.action: a for a in stored.attempts}
        assert not by_action["leak"].ok and "may not read ${SUSTAIN_WRITE_TOKENS}" in by_action["leak"].detail
        assert by_action["listed"].ok
        assert [r["path"] for r in receiver.requests] == ["/fine"]
        alerting.close()


def _drift_documents(client: TestClient) -> None:
    """Closed 1m windows whose drift is 'alert', so the rule holds now. The engine is stopped first: its own
    evaluation would fire the rule and run every action; here only the hook may run them."""
    engine = client.app.state.sustain.engine  # type: ignore[attr-defined]
    engine.stop()
    docs = engine.documents
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    rows = []
    for back in range(1, 4):
        start = now - timedelta(minutes=back)
        for version in ("1", "*"):
            rows.append(
                IndicatorDoc(
                    "churn", version, "drift", "drift", "age", "1m", start, start + timedelta(minutes=1), 0.4, "alert"
                )
            )
    docs.put(rows)


def test_hooks_confirm_the_named_rule_or_refuse(app_client: TestClient, receiver: Receiver, tmp_path: Path) -> None:
    admin = auth(ADMIN)
    unknown = app_client.post("/v1/hooks/hook", params={"model": "churn", "rule": "external-psi"}, headers=admin)
    assert unknown.status_code == 404 and "no alert rule 'external-psi'" in unknown.json()["error"]["message"]
    nameless = app_client.post("/v1/hooks/hook", params={"model": "churn"}, headers=admin)
    assert nameless.status_code == 422 and nameless.json()["error"]["field"] == "rule"
    quiet = app_client.post("/v1/hooks/hook", params={"model": "churn", "rule": "drift"}, headers=admin)
    assert quiet.status_code == 409 and "does not hold now" in quiet.json()["error"]["message"]
    alerting = app_client.app.state.sustain.alerting  # type: ignore[attr-defined]
    assert alerting.dispatcher.flush(10) and receiver.requests == []
    assert app_client.get("/v1/alerts", headers=admin).json()["alerts"] == []  # nothing ran, nothing recorded

    _drift_documents(app_client)
    fired = app_client.post("/v1/hooks/hook", params={"model": "churn", "rule": "drift"}, headers=admin)
    assert fired.status_code == 202 and fired.json()["dispatched"] is True
    again = app_client.post("/v1/hooks/hook", json={"model": "churn", "rule": "drift"}, headers=admin)
    assert again.json()["alert_id"] == fired.json()["alert_id"]
    assert alerting.dispatcher.flush(30)
    assert {r["path"] for r in receiver.requests} == {"/hook"}
    assert not (tmp_path / "ran").exists()  # the rule's other actions only run when asked for


def test_secrets_stay_out_of_logs_alerts_and_answers(
    app_client: TestClient, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    _drift_documents(app_client)
    with caplog.at_level(logging.DEBUG):
        r = app_client.post("/v1/hooks/team-slack", params={"model": "churn", "rule": "drift"}, headers=auth(ADMIN))
        assert r.status_code == 202
        alerting = app_client.app.state.sustain.alerting  # type: ignore[attr-defined]
        assert alerting.dispatcher.flush(30)
    assert receiver.requests and SLACK_SECRET in str(receiver.requests[0]["path"])  # the real URL was used
    alert = app_client.get(f"/v1/alerts/{r.json()['alert_id']}", headers=auth(READ)).json()
    (attempt,) = alert["attempts"]
    assert not attempt["ok"] and "answered 500" in attempt["detail"] and "/***" in attempt["detail"]
    answers = [
        app_client.get("/v1/alerts", headers=auth(READ)).text,
        app_client.get("/v1/models/churn", headers=auth(READ)).text,
        app_client.get("/v1/dashboard/models/churn", headers=auth(READ)).text,
        caplog.text,
    ]
    for text in answers:
        assert SLACK_SECRET not in text and "hook-signing-secret" not in text
    spec = app_client.get("/v1/models/churn", headers=auth(READ)).json()
    assert spec["actions"]["team-slack"]["url"].endswith("/***")
    assert spec["actions"]["hook"]["secret"] == "${SUSTAIN_SECRET_HOOK}"  # a name, not a secret: shown


def test_a_spec_sent_back_as_shown_keeps_its_secrets(app_client: TestClient) -> None:
    shown = app_client.get("/v1/models/churn", headers=auth(READ)).json()
    assert app_client.put("/v1/models/churn", json=shown, headers=auth(ADMIN)).status_code == 200
    ctx = app_client.app.state.sustain  # type: ignore[attr-defined]
    assert SLACK_SECRET in ctx.store.get_spec("churn").actions["team-slack"].options["url"]


def test_webhook_urls_with_credentials_or_tokens_are_redacted(tmp_path: Path) -> None:
    with Receiver(statuses=[503]) as receiver:
        url = receiver.url.replace("http://", "http://ops:pa55word@") + "/hook?token=tok3n"
        alerting, spec = _alerting(tmp_path, {"w": {"type": "webhook", "url": url, "retries": 0}})
        from sustain.alerting.documents import Alert

        alert = Alert.new("k", "drift", "m", "1", "warning", datetime.now(UTC))
        alerting.alerts.save(alert)
        alerting.dispatcher.dispatch(spec, alert, "firing", ["w"])
        assert alerting.dispatcher.flush(30)
        stored = alerting.alerts.get(alert.id)
        assert stored is not None
        detail = stored.attempts[0].detail
        assert "answered 503" in detail and "pa55word" not in detail and "tok3n" not in detail
        assert "***@127.0.0.1" in detail and "token=***" in detail
        alerting.close()


def test_create_app_applies_the_loopback_guard(tmp_path: Path) -> None:
    store = f"duckdb:///{tmp_path / 'g.duckdb'}"
    with pytest.raises(ConfigError, match="without authentication"):
        create_app(Settings(store=store, host="0.0.0.0"))
    # Started by something that binds another address (uvicorn --factory --host 0.0.0.0): requests that arrive
    # on a non-loopback address are refused while no token is configured.
    with TestClient(create_app(Settings(store=store)), base_url="http://192.0.2.10:8000") as remote:
        r = remote.get("/v1/models")
        assert r.status_code == 403 and "loopback only" in r.json()["error"]["message"]
    with TestClient(create_app(Settings(store=store)), base_url="http://127.0.0.1:8000") as local:
        assert local.get("/v1/models").status_code == 200
    guarded = create_app(Settings(store=store, **TOKENS))  # type: ignore[arg-type]
    with TestClient(guarded, base_url="http://192.0.2.10:8000") as remote:
        assert remote.get("/v1/models", headers=auth(READ)).status_code == 200
