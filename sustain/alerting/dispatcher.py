"""Run alert actions off the engine's thread, with retries and backoff, recording every attempt on the alert.

A failing action (receiver down, command exiting 1, timeout) is retried with
exponential backoff, each attempt is recorded with its outcome, and nothing it
does can stop other actions, other rules or the service. Secrets are expanded
from the environment inside the action and never reach a log line or the
alert document.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime

from sustain.alerting.actions import ActionFailed, AlertEvent, build_action
from sustain.alerting.documents import Alert, AlertStore, Attempt
from sustain.errors import RegistryError
from sustain.spec import ModelSpec
from sustain.spec.secrets import EnvPolicy

log = logging.getLogger("sustain.alerts")


class Dispatcher:
    def __init__(
        self,
        alerts: AlertStore,
        *,
        workers: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        env_policy: EnvPolicy | None = None,
    ) -> None:
        self.alerts = alerts
        self.env_policy = env_policy or EnvPolicy()
        self.sleep = sleep
        self.clock = clock
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sustain-action")
        self._pending: set[Future[None]] = set()
        self._lock = threading.Lock()
        # Actions that run once per firing are claimed here before they start, so two evaluations racing on
        # the same alert cannot both trigger a retraining.
        self._claimed: set[tuple[str, str]] = set()

    def dispatch(self, spec: ModelSpec, alert: Alert, kind: str, names: list[str]) -> None:
        for name in names:
            action_spec = spec.actions.get(name)
            if action_spec is None:
                self._record(alert, name, "?", kind, False, f"no action named {name!r} in the spec of {spec.name}")
                continue
            try:
                action = build_action(name, action_spec)
            except RegistryError as exc:
                self._record(alert, name, action_spec.type, kind, False, exc.message)
                continue
            action.env_policy = self.env_policy
            if action.once_per_alert:
                if kind != "firing":
                    continue
                with self._lock:
                    claim = (alert.id, name)
                    if claim in self._claimed or alert.succeeded(name, "firing"):
                        continue
                    self._claimed.add(claim)
            delivery = f"{alert.id}.{name}" if action.once_per_alert else f"{alert.id}.{name}.{kind}.{time.time_ns()}"
            event = AlertEvent(kind, alert, delivery)
            future = self._pool.submit(self._run, action, event)
            with self._lock:
                self._pending.add(future)
            future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def _run(self, action: object, event: AlertEvent) -> None:
        from sustain.alerting.actions import Action

        assert isinstance(action, Action)
        attempts = action.retries + 1
        for attempt in range(1, attempts + 1):
            started = time.perf_counter()
            ok, retry = False, False
            try:
                detail = action.redact(action.run(event))
                ok = True
            except ActionFailed as exc:
                detail, retry = action.redact(exc.message), exc.retry
                if not retry or attempt == attempts:
                    log.warning("action %s for alert %s failed for good: %s", action.name, event.alert.id, detail)
            except Exception as exc:  # a broken action plugin: record it, never crash the worker
                # No traceback in the log: its messages may hold the secrets the action was given.
                detail = action.redact(f"{type(exc).__name__}: {exc}")
                log.error("action %s crashed: %s", action.name, detail)
            elapsed = time.perf_counter() - started
            self._record(event.alert, action.name, action.type, event.kind, ok, detail, attempt, elapsed)
            if ok or not retry or attempt == attempts:
                return
            self.sleep(action.backoff * 2 ** (attempt - 1))

    def _record(
        self,
        alert: Alert,
        name: str,
        type_: str,
        kind: str,
        ok: bool,
        detail: str,
        attempt: int = 1,
        seconds: float = 0.0,
    ) -> None:
        record = Attempt(name, type_, kind, self.clock(), ok, detail, attempt, round(seconds, 4))
        try:
            self.alerts.add_attempt(alert.id, record)
        except Exception:
            log.exception("could not record an attempt of action %s on alert %s", name, alert.id)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait for every dispatched action (tests and shutdown). True when all finished."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                pending = set(self._pending)
            if not pending:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            wait(pending, timeout=remaining)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
