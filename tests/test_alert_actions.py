"""The notification actions against real receivers: an SMTP server (aiosmtpd), an HTTP server, a child process."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pydantic
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from sustain.alerting.actions import ActionFailed, AlertEvent, build_action
from sustain.alerting.documents import Alert
from sustain.spec.alerts import ActionSpec
from tests.helpers import Receiver, free_port

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def event(kind: str = "firing", severity: str = "warning") -> AlertEvent:
    alert = Alert.new("drift|churn|2", "churn-drift", "churn", "2", severity, NOW)
    alert.summary = "drift share 0.40 >= 0.30"
    alert.evidence = [{"indicator": "drift", "feature": "age", "value": 0.41}]
    return AlertEvent(kind, alert, "delivery-1")


def action(**options: Any) -> Any:
    spec = ActionSpec.model_validate({"retries": 0, "timeout": "5s", **options})
    return build_action("under-test", spec)


class Mailbox:
    """Collects what the SMTP server receives."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()

    def authenticate(server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any) -> Any:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"ops", b"s3cret")
        return AuthResult(success=ok, handled=False)  # unhandled: the server answers 535 itself

    port = free_port()
    controller = Controller(
        mailbox, hostname="127.0.0.1", port=port, authenticator=authenticate, auth_require_tls=False
    )
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


def test_email_is_delivered_with_the_alert(smtp) -> None:
    mailbox, port = smtp
    mail = action(type="email", host="127.0.0.1", port=port, to=["a@example.org", "b@example.org"])
    assert mail.run(event(severity="critical")) == "mailed 2 recipient(s)"
    (envelope,) = mailbox.envelopes
    assert sorted(envelope.rcpt_tos) == ["a@example.org", "b@example.org"]
    message = message_from_bytes(envelope.original_content or b"")
    assert message["Subject"] == "[sustain] critical churn-drift on churn: firing"
    body = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert "churn-drift on churn version 2: firing" in body and "drift share 0.40" in body
    assert '"feature": "age"' in body


def test_email_login_uses_credentials_from_the_environment(smtp, monkeypatch) -> None:
    mailbox, port = smtp
    monkeypatch.setenv("SUSTAIN_SECRET_SMTP_PASSWORD", "s3cret")
    options = {"type": "email", "host": "127.0.0.1", "port": port, "to": "a@example.org", "username": "ops"}
    password = "${SUSTAIN_SECRET_SMTP_PASSWORD}"
    action(**options, password=password, subject="{{ model }} {{ event }}").run(event("resolved"))
    assert message_from_bytes(mailbox.envelopes[0].original_content or b"")["Subject"] == "churn resolved"
    with pytest.raises(ActionFailed, match="SMTP delivery failed: SMTPAuthenticationError"):
        action(**options, password="wrong").run(event())
    assert len(mailbox.envelopes) == 1


def test_email_to_an_unreachable_server_fails_and_may_be_retried() -> None:
    with pytest.raises(ActionFailed, match="SMTP delivery failed") as failed:
        action(type="email", host="127.0.0.1", port=free_port(), to="a@example.org").run(event())
    assert failed.value.retry


def test_email_without_recipients_is_a_configuration_error() -> None:
    """Found when the spec loads, not when an alert fires (issue 12: action options are typed)."""
    with pytest.raises(pydantic.ValidationError, match="action type 'email' needs the option 'to'"):
        action(type="email", host="127.0.0.1")


def test_slack_posts_a_readable_text() -> None:
    with Receiver() as receiver:
        slack = action(type="slack", url=receiver.url + "/hooks/T0/B0")
        assert "answered 200" in slack.run(event(severity="critical"))
        slack.run(event("resolved"))
        custom = action(type="slack", url=receiver.url, text="{{ model }} is {{ status }} ({{ summary }})")
        custom.run(event())
        texts = [json.loads(r["body"])["text"] for r in receiver.requests]  # type: ignore[arg-type]
    assert receiver.requests[0]["path"] == "/hooks/T0/B0"
    assert texts[0].startswith(":rotating_light: [critical] churn-drift on churn v2: firing.")
    assert texts[1].startswith(":white_check_mark: ") and "resolved" in texts[1]
    assert texts[2] == "churn is firing (drift share 0.40 >= 0.30)"


def test_slack_rejection_is_not_retried_but_an_outage_is() -> None:
    with Receiver(statuses=[404]) as gone, Receiver(statuses=[503]) as down:
        with pytest.raises(ActionFailed, match="answered 404") as rejected:
            action(type="slack", url=gone.url).run(event())
        with pytest.raises(ActionFailed, match="answered 503") as outage:
            action(type="slack", url=down.url).run(event())
    assert not rejected.value.retry and outage.value.retry


SCRIPT = """
import json, os, sys
body = json.load(sys.stdin)
out = {"stdin": body, "env": {k: v for k, v in os.environ.items() if k.startswith("SUSTAIN_")}}
open(sys.argv[1], "w").write(json.dumps(out))
sys.exit(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
"""


def test_command_gets_the_alert_on_stdin_and_in_the_environment(tmp_path: Path) -> None:
    script, out = tmp_path / "hook.py", tmp_path / "out.json"
    script.write_text(SCRIPT)
    assert action(type="command", command=[sys.executable, str(script), str(out)]).run(event()).endswith("exited 0")
    seen = json.loads(out.read_text())
    assert seen["stdin"]["event"] == "firing" and seen["stdin"]["delivery_id"] == "delivery-1"
    assert seen["stdin"]["alert"]["rule"] == "churn-drift" and seen["stdin"]["alert"]["evidence"][0]["value"] == 0.41
    assert seen["env"]["SUSTAIN_ALERT_MODEL"] == "churn" and seen["env"]["SUSTAIN_ALERT_VERSION"] == "2"
    assert seen["env"]["SUSTAIN_ALERT_EVENT"] == "firing" and seen["env"]["SUSTAIN_DELIVERY_ID"] == "delivery-1"


def test_command_as_a_string_is_split_like_a_shell(tmp_path: Path) -> None:
    script, out = tmp_path / "my hook.py", tmp_path / "out.json"
    script.write_text(SCRIPT)
    action(type="command", command=f"{sys.executable} '{script}' '{out}'").run(event("resolved"))
    assert json.loads(out.read_text())["stdin"]["event"] == "resolved"


def test_command_failures_say_why(tmp_path: Path) -> None:
    script = tmp_path / "hook.py"
    script.write_text(SCRIPT + "\n")
    failing = tmp_path / "fail.py"
    failing.write_text("import sys\nsys.stdin.read()\nprint('no route to trainer', file=sys.stderr)\nsys.exit(3)\n")
    with pytest.raises(ActionFailed, match="exited with 3: no route to trainer") as exited:
        action(type="command", command=[sys.executable, str(failing)]).run(event())
    assert exited.value.retry
    with pytest.raises(ActionFailed, match="cannot run /nonexistent/hook") as missing:
        action(type="command", command="/nonexistent/hook").run(event())
    assert not missing.value.retry
    slow = [sys.executable, "-c", "import time; time.sleep(10)"]
    with pytest.raises(ActionFailed, match=r"did not finish within 0\.5s"):
        action(type="command", command=slow, timeout="500ms").run(event())
