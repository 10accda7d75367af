"""HTTP actions: a signed JSON ``webhook`` and a Slack-compatible ``slack`` incoming webhook."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import orjson

from sustain.alerting.actions.base import Action, ActionFailed, AlertEvent, render
from sustain.alerting.signing import sign
from sustain.spec.secrets import redact_url


class _HideActionURLs(logging.Filter):
    """httpx logs every request's full URL (level INFO): an action's URL is shown as :func:`redact_url` has it."""

    def __init__(self) -> None:
        super().__init__()
        self.shown: dict[str, tuple[str, int]] = {}  # url -> (what to show, actions posting to it now)
        self.lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) > 1 and self.shown:
            with self.lock:
                hidden = self.shown.get(str(args[1]))
            if hidden is not None:
                record.args = (args[0], hidden[0], *args[2:])
        return True

    @contextmanager
    def hiding(self, url: str, shown: str) -> Iterator[None]:
        with self.lock:
            self.shown[url] = (shown, self.shown.get(url, (shown, 0))[1] + 1)
        try:
            yield
        finally:
            with self.lock:
                left = self.shown[url][1] - 1
                if left:
                    self.shown[url] = (shown, left)
                else:
                    del self.shown[url]


_HIDE = _HideActionURLs()


def post_json(url: str, body: bytes, headers: dict[str, str], timeout: float, *, secret_url: bool = False) -> str:
    """POST ``body``; the outcome names the URL with its credentials, query values (and, for an incoming
    webhook whose URL is the credential, its path) shown as ``***``, and so does httpx's own log line."""
    import httpx

    shown = redact_url(url, whole_path=secret_url)
    client_log = logging.getLogger("httpx")
    if _HIDE not in client_log.filters:
        client_log.addFilter(_HIDE)
    try:
        with _HIDE.hiding(str(httpx.URL(url)), shown):
            response = httpx.post(
                url, content=body, headers={"Content-Type": "application/json", **headers}, timeout=timeout
            )
    except httpx.TimeoutException as exc:
        raise ActionFailed(f"POST {shown} timed out after {timeout:g}s") from exc
    except httpx.HTTPError as exc:
        raise ActionFailed(f"POST {shown} failed: {type(exc).__name__}") from exc
    if response.status_code >= 500 or response.status_code in (408, 429):
        raise ActionFailed(f"POST {shown} answered {response.status_code}")
    if response.status_code >= 400:
        raise ActionFailed(f"POST {shown} answered {response.status_code}: {response.text[:200]}", retry=False)
    return f"POST {shown} answered {response.status_code}"


class Webhook(Action):
    """POST the alert as JSON (or a ``payload`` template), signed with HMAC-SHA256 when ``secret`` is set.

    Options: ``url`` (required), ``secret``, ``payload`` (a JSON template with ``{{ model }}``-style fields),
    ``headers``.
    """

    type = "webhook"

    def body(self, event: AlertEvent) -> bytes:
        template = self.spec.options.get("payload")
        data = event.payload() if template is None else render(template, event.fields())
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)

    def run(self, event: AlertEvent) -> str:
        url = self.option("url", required=True)
        body = self.body(event)
        headers = {str(k): str(v) for k, v in (self.option("headers") or {}).items()}
        secret = self.option("secret")
        if secret:
            headers.update(sign(str(secret).encode(), event.delivery_id, body))
        return post_json(url, body, headers, self.timeout)


class Slack(Action):
    """A Slack (or Mattermost, Teams-compatible) incoming webhook: ``{"text": ...}``. Option ``url``."""

    type = "slack"

    def run(self, event: AlertEvent) -> str:
        url = self.option("url", required=True)
        a = event.alert
        icon = {"resolved": ":white_check_mark:", "critical": ":rotating_light:"}.get(
            event.kind if event.kind == "resolved" else a.severity, ":warning:"
        )
        default = f"{icon} [{a.severity}] {a.rule} on {a.model} v{a.version}: {event.kind}. {a.summary}"
        text = render(self.option("text", default), event.fields())
        return post_json(url, orjson.dumps({"text": text}), {}, self.timeout, secret_url=True)
