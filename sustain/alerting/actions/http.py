"""HTTP actions: a signed JSON ``webhook`` and a Slack-compatible ``slack`` incoming webhook."""

from __future__ import annotations

import orjson

from sustain.alerting.actions.base import Action, ActionFailed, AlertEvent, render
from sustain.alerting.signing import sign


def post_json(url: str, body: bytes, headers: dict[str, str], timeout: float) -> str:
    import httpx

    try:
        response = httpx.post(
            url, content=body, headers={"Content-Type": "application/json", **headers}, timeout=timeout
        )
    except httpx.TimeoutException as exc:
        raise ActionFailed(f"POST {url} timed out after {timeout:g}s") from exc
    except httpx.HTTPError as exc:
        raise ActionFailed(f"POST {url} failed: {type(exc).__name__}") from exc
    if response.status_code >= 500 or response.status_code in (408, 429):
        raise ActionFailed(f"POST {url} answered {response.status_code}")
    if response.status_code >= 400:
        raise ActionFailed(f"POST {url} answered {response.status_code}: {response.text[:200]}", retry=False)
    return f"POST {url} answered {response.status_code}"


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
        return post_json(url, orjson.dumps({"text": text}), {}, self.timeout)
