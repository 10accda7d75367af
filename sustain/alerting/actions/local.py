"""Local actions: ``log`` (the server log), ``command`` (a program), ``email`` (SMTP)."""

from __future__ import annotations

import logging
import os
import shlex
import subprocess

import orjson

from sustain.alerting.actions.base import Action, ActionFailed, AlertEvent, render
from sustain.spec.secrets import SERVICE_CREDENTIALS

log = logging.getLogger("sustain.alerts")


class Log(Action):
    type = "log"

    def run(self, event: AlertEvent) -> str:
        a = event.alert
        log.warning(
            "alert %s %s: rule %s on %s v%s (%s) %s",
            a.id,
            event.kind,
            a.rule,
            a.model,
            a.version,
            a.severity,
            a.summary,
        )
        return "logged"


def child_environment() -> dict[str, str]:
    """The environment a program started by an action gets: the service's, without its credentials."""
    return {k: v for k, v in os.environ.items() if k not in SERVICE_CREDENTIALS}


def run_command(command: str | list[str], event: AlertEvent, timeout: float) -> str:
    """Run ``command`` with the alert as JSON on stdin and as SUSTAIN_ALERT_* variables; exit 0 is success."""
    argv = shlex.split(command) if isinstance(command, str) else [str(c) for c in command]
    fields = event.fields()
    env = child_environment()
    for key in ("alert_id", "rule", "model", "version", "severity", "event", "status"):
        env[f"SUSTAIN_ALERT_{key.upper()}"] = str(fields.get(key) or "")
    env["SUSTAIN_DELIVERY_ID"] = event.delivery_id
    try:
        done = subprocess.run(
            argv, input=orjson.dumps(event.payload()), capture_output=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ActionFailed(f"{argv[0]} did not finish within {timeout:g}s") from exc
    except OSError as exc:
        raise ActionFailed(f"cannot run {argv[0]}: {exc.strerror}", retry=False) from exc
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise ActionFailed(f"{argv[0]} exited with {done.returncode}: {tail[0][:200]}")
    return f"{argv[0]} exited 0"


class Command(Action):
    """Run a program. Options: ``command`` (string or list). The alert arrives as JSON on stdin."""

    type = "command"

    def run(self, event: AlertEvent) -> str:
        return run_command(self.option("command", required=True), event, self.timeout)


class Email(Action):
    """Send a plain-text email over SMTP.

    Options: ``to`` (address or list), ``from``, ``host`` (default localhost), ``port`` (25), ``starttls``,
    ``username``, ``password`` (use ``${ENV}``), ``subject`` (template).
    """

    type = "email"

    def run(self, event: AlertEvent) -> str:
        import smtplib
        from email.message import EmailMessage

        to = self.option("to", required=True)
        recipients = [to] if isinstance(to, str) else list(to)
        a = event.alert
        message = EmailMessage()
        message["From"] = self.option("from", "sustain@localhost")
        message["To"] = ", ".join(recipients)
        message["Subject"] = render(
            self.option("subject", "[sustain] {{ severity }} {{ rule }} on {{ model }}: {{ event }}"), event.fields()
        )
        lines = [
            f"{a.rule} on {a.model} version {a.version}: {event.kind}",
            a.summary,
            "",
            orjson.dumps(a.evidence, option=orjson.OPT_INDENT_2).decode(),
        ]
        message.set_content("\n".join(lines))
        try:
            with smtplib.SMTP(
                self.option("host", "localhost"), int(self.option("port", 25)), timeout=self.timeout
            ) as smtp:
                if self.option("starttls", False):
                    smtp.starttls()
                username = self.option("username")
                if username:
                    smtp.login(username, self.option("password", ""))
                smtp.send_message(message, to_addrs=recipients)
        except (OSError, smtplib.SMTPException) as exc:
            raise ActionFailed(f"SMTP delivery failed: {type(exc).__name__}: {exc}") from exc
        return f"mailed {len(recipients)} recipient(s)"
