"""The release service: triggers (webhooks, the registry poll, the CLI and API), promotion and rollback.

``sustain serve`` builds one; it owns the pipeline's worker threads, the deploy targets and, through the local
target, the scoring server processes. Aliases are mirrored both ways:

* ``challenger`` — the release candidate (set when a version is deployed);
* ``champion`` — the version in production (``promote`` moves it to the candidate);
* ``previous_champion`` — the one before, kept warm, so ``rollback`` is one alias flip and one route switch.

Every alias move is recorded with its time, so "which version was champion at time T" has an answer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sustain.deploy_pipeline.release.errors import RegistryUnavailable, TargetFailed, WebhookRejected
from sustain.deploy_pipeline.release.gateway import Gateway
from sustain.deploy_pipeline.release.mlflow_registry import MlflowRegistry
from sustain.deploy_pipeline.release.monitoring import Monitoring, sustain_name
from sustain.deploy_pipeline.release.pipeline import ReleasePipeline, Work
from sustain.deploy_pipeline.release.targets import Routing, Target, TargetContext, targets
from sustain.deploy_pipeline.release.webhooks import EVENTS, parse_event, verify_delivery
from sustain.errors import Conflict, NotFound, SustainError, ValidationError
from sustain.spec import ModelSpec
from sustain.spec.release import ReleaseSettings
from sustain.store.releases import (
    ROLES,
    AliasEvent,
    Check,
    Delivery,
    Release,
    ReleaseStore,
    StageRecord,
    State,
    Transition,
    now,
)

log = logging.getLogger("sustain.release")


@dataclass
class ReleaseOptions:
    """How the service runs: where bundles go, how often it polls, its webhook secret, target options."""

    workdir: Path
    webhook_secret: str | None = None
    poll_interval: float = 0.0  # seconds; 0 turns the registry poll off
    workers: int = 2
    base_dir: Path | None = None
    target_options: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    gateway_url: str | None = None


class ReleaseService:
    def __init__(
        self,
        store: ReleaseStore,
        registry: MlflowRegistry,
        monitoring: Monitoring,
        options: ReleaseOptions,
        *,
        gateway: Gateway | None = None,
        specs: Callable[[], list[ModelSpec]] = list,
    ) -> None:
        self.store = store
        self.registry = registry
        self.monitoring = monitoring
        self.options = options
        self.gateway = gateway
        self.specs = specs
        self._targets: dict[str, Target] = {}
        self._targets_lock = threading.Lock()
        self._locks: dict[str, threading.RLock] = {}
        self._locks_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=options.workers, thread_name_prefix="sustain-release")
        self._futures: dict[tuple[str, str], Future[Release]] = {}
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self.pipeline = ReleasePipeline(
            store,
            registry,
            monitoring,
            self.target,
            options.workdir,
            base_dir=options.base_dir,
            gateway_url=options.gateway_url,
            make_candidate=self._make_candidate,
        )

    # -- parts --------------------------------------------------------------------------------------
    def target(self, name: str) -> Target:
        with self._targets_lock:
            if name not in self._targets:
                factory = targets.get(name)
                context = TargetContext(
                    self.options.workdir, self.gateway, dict(self.options.target_options.get(name, {}))
                )
                self._targets[name] = factory(context)
            return self._targets[name]

    def _lock(self, model: str) -> threading.RLock:
        with self._locks_lock:
            return self._locks.setdefault(model, threading.RLock())

    def resolve(self, name: str) -> tuple[str, str, ModelSpec | None]:
        """(sustain model, MLflow registered model, spec) for a name given by either side."""
        specs = self.specs()
        for spec in specs:
            if spec.release.registered_model == name:
                return spec.name, name, spec
        for spec in specs:
            if spec.name == name:
                return spec.name, spec.release.registered_model or name, spec
        model = sustain_name(name)
        return model, name, self.monitoring.spec(model)

    def settings(self, spec: ModelSpec | None) -> ReleaseSettings:
        return spec.release if spec is not None else ReleaseSettings()

    # -- aliases -------------------------------------------------------------------------------------
    def aliases(self, model: str) -> dict[str, str]:
        """The model's aliases now, as sustain recorded them."""
        current: dict[str, str] = {}
        for event in self.store.alias_history(model):
            if event.version is None:
                current.pop(event.alias, None)
            else:
                current[event.alias] = event.version
        return current

    def champion_at(self, model: str, at: datetime) -> AliasEvent | None:
        return self.store.alias_at(model, "champion", at)

    def _move_aliases(self, release: Release, changes: Mapping[str, str | None], reason: str) -> None:
        """Set the aliases in MLflow, then record them; a registry failure undoes what was set and raises."""
        before = self.aliases(release.model)
        done: list[str] = []
        try:
            for alias, version in changes.items():
                if before.get(alias) != version:
                    self.registry.set_alias(release.registered_model, alias, version)
                    done.append(alias)
        except SustainError:
            for alias in done:
                try:
                    self.registry.set_alias(release.registered_model, alias, before.get(alias))
                except SustainError as exc:
                    log.error("could not restore @%s of %s: %s", alias, release.registered_model, exc.message)
            raise
        at = now()
        for alias, version in changes.items():
            if before.get(alias) != version:
                self.store.record_alias(AliasEvent(release.model, alias, version, at, reason))

    # -- releasing ---------------------------------------------------------------------------------
    def submit(self, name: str, version: str, *, trigger: str = "cli", target: str | None = None) -> Release:
        """Record the release as registered and run its stages in the background; Conflict when the version
        already has a release that is running, a candidate or in production."""
        model, registered, spec = self.resolve(name)
        settings = self.settings(spec)
        if not settings.enabled:
            raise Conflict(f"releases of {model} are turned off (release.enabled: false)", field="model")
        at = now()
        reason = f"{registered} version {version} registered in MLflow; release triggered by {trigger}"
        release = Release(
            model,
            str(version),
            State.REGISTERED,
            at,
            at,
            trigger=trigger,
            target=target or settings.target,
            reason=reason,
            registered_model=registered,
            stages=[StageRecord(State.REGISTERED, at, at, "passed", reason)],
        )
        started = self.store.begin(release)
        if started is None:
            existing = self.store.get(model, str(version))
            state = existing.state.value if existing else "known"
            raise Conflict(f"{model} version {version} is already {state}; nothing to do", field="version")
        self._futures[(model, started.version)] = self._executor.submit(self._run, started, spec, settings)
        return started

    def release(self, name: str, version: str, *, trigger: str = "cli", target: str | None = None) -> Release:
        """Run a release to its end and return it (tests, benchmarks and the demo wait; the API does not)."""
        started = self.submit(name, version, trigger=trigger, target=target)
        return self.wait(started.model, started.version)

    def wait(self, model: str, version: str, timeout: float | None = None) -> Release:
        future = self._futures.get((model, version))
        if future is not None:
            return future.result(timeout)
        found = self.store.get(model, version)
        if found is None:
            raise NotFound(f"no release of {model} version {version}")
        return found

    def _run(self, release: Release, spec: ModelSpec | None, settings: ReleaseSettings) -> Release:
        work = Work(release, settings, spec, self.pipeline.bundle(release.model, release.version))
        with self._lock(release.model):
            work.champion = self._champion_for_gate(release)
        self.pipeline.run(work)
        if release.state == State.DEPLOYED and settings.policy == "automatic":
            try:
                return self.promote(release.model, release.version, actor="policy: automatic")
            except SustainError as exc:
                log.warning("automatic promotion of %s %s failed: %s", release.model, release.version, exc.message)
                release = self.store.get(release.model, release.version) or release
                release.reason = f"{release.reason}; automatic promotion failed: {exc.message}"
                self.store.save(release)
        return release

    def _champion_for_gate(self, release: Release) -> str | None:
        """The version the evaluation gate compares with: MLflow's @champion, else sustain's record."""
        try:
            self.registry.ping()  # MLflow's client would retry a dead server for minutes
            return self.registry.alias(release.registered_model, "champion")
        except RegistryUnavailable:
            return self.aliases(release.model).get("champion")

    def _make_candidate(self, work: Work) -> Check:
        """The last step of the deployed stage: route the version as the candidate and move ``challenger``."""
        release, settings = work.release, work.settings
        with self._lock(release.model):
            aliases = self.aliases(release.model)
            champion, earlier = aliases.get("champion"), aliases.get("challenger")
            target = self.target(release.target)
            standby = tuple(v for v in (aliases.get("previous_champion"),) if v and v != champion)
            routing = Routing(champion, release.version, settings.canary_percent, settings.shadow, standby)
            target.route(release.model, routing)
            try:
                self._move_aliases(
                    release, {"challenger": release.version}, f"version {release.version} is the candidate"
                )
            except SustainError:
                before = Routing(champion, earlier, settings.canary_percent, settings.shadow, standby)
                target.route(release.model, before if earlier else Routing(champion, standby=standby))
                raise
            if earlier and earlier not in (release.version, champion):
                self._supersede(release.model, earlier, release.version)
        if champion is None:
            share = "every request (there is no champion yet)"
        elif settings.shadow:
            share = "a shadow copy of every request"
        else:
            share = f"{settings.canary_percent:g}% of requests"
        return Check("routing", True, f"release candidate (@challenger), serving {share}")

    def _supersede(self, model: str, version: str, by: str) -> None:
        old = self.store.get(model, version)
        if old is None or old.state != State.DEPLOYED:
            return
        try:
            self.target(old.target).retire(model, version)
        except TargetFailed as exc:
            log.warning("could not stop %s version %s: %s", model, version, exc.message)
        old.move(State.SUPERSEDED, f"version {by} became the candidate")
        self.pipeline.save(old, transition=True)

    # -- promote and rollback -------------------------------------------------------------------------
    def promote(self, name: str, version: str | None = None, *, actor: str = "cli") -> Release:
        model = self.resolve(name)[0]
        with self._lock(model):
            aliases = self.aliases(model)
            version = version or aliases.get("challenger")
            if version is None:
                raise Conflict(f"{model} has no release candidate to promote", field="version")
            release = self._get(model, version)
            if aliases.get("champion") == version:
                raise Conflict(f"{model} version {version} is already the champion", field="version")
            warm = release.state == State.PROMOTED and aliases.get("previous_champion") == version
            if release.state != State.DEPLOYED and not warm:
                raise Conflict(
                    f"{model} version {version} is {release.state.value}; only a candidate (deployed) or the "
                    "previous champion can be promoted",
                    field="version",
                )
            old = aliases.get("champion")
            record = StageRecord(State.PROMOTED, now())
            target = self.target(release.target)
            challenger = aliases.get("challenger")
            changes: dict[str, str | None] = {"champion": version, "previous_champion": old}
            if challenger == version:
                changes["challenger"] = None
            self._move_aliases(release, changes, f"{actor} promoted version {version}")
            try:
                target.route(model, Routing(version, standby=(old,) if old else ()))
            except SustainError:
                self._move_aliases(release, {k: aliases.get(k) for k in changes}, "undone: the switch failed")
                raise
            record.ended_at, record.outcome = now(), "passed"
            record.reason = f"{actor}: champion is version {version}" + (
                f"; version {old} is previous_champion" if old else ""
            )
            release.stages.append(record)
            release.move(State.PROMOTED, record.reason)
            self.pipeline.save(release, transition=True)
            self._retire_unused(model, target, keep={version, *([old] if old else [])})
            return release

    def rollback(self, name: str, *, actor: str = "cli") -> Release:
        model = self.resolve(name)[0]
        with self._lock(model):
            aliases = self.aliases(model)
            champion, previous = aliases.get("champion"), aliases.get("previous_champion")
            if champion is None or previous is None:
                raise Conflict(f"{model} has no previous champion to roll back to", field="model")
            current, restored = self._get(model, champion), self._get(model, previous)
            target = self.target(restored.target)
            self._ensure_served(restored, target)
            record = StageRecord(State.ROLLED_BACK, now())
            self._move_aliases(
                current,
                {"champion": previous, "previous_champion": None},
                f"{actor} rolled back from version {champion} to {previous}",
            )
            challenger = aliases.get("challenger")
            settings = self.settings(self.resolve(model)[2])
            routing = Routing(previous)
            if challenger and challenger not in (champion, previous):
                routing = Routing(previous, challenger, settings.canary_percent, settings.shadow)
            try:
                target.route(model, routing)
            except SustainError:
                undo = {"champion": champion, "previous_champion": previous}
                self._move_aliases(current, undo, "undone: the switch failed")
                raise
            record.ended_at, record.outcome = now(), "passed"
            record.reason = f"{actor}: rolled back; version {previous} is the champion again"
            current.stages.append(record)
            current.move(State.ROLLED_BACK, record.reason)
            self.pipeline.save(current, transition=True)
            restored.reason = f"champion again after the rollback of version {champion}"
            restored.updated_at = record.ended_at
            self.store.save(
                restored, Transition(model, previous, State.PROMOTED, record.ended_at, restored.reason, actor)
            )
            self.pipeline.mirror(restored)
            self._retire_unused(model, target, keep=routing.versions())
            return current

    def _ensure_served(self, release: Release, target: Target) -> None:
        if release.bundle is None:
            raise Conflict(f"{release.model} version {release.version} has no serving bundle; release it again")
        from sustain.deploy_pipeline.release.package import Bundle

        target.deploy(release.model, release.version, Bundle(Path(release.bundle)))

    def _retire_unused(self, model: str, target: Target, keep: set[str]) -> None:
        """Stop every version of ``model`` that is neither kept nor the candidate."""
        challenger = self.aliases(model).get("challenger")
        for release in self.store.query(model):
            if release.version in keep or release.version == challenger:
                continue
            try:
                target.retire(model, release.version)
            except TargetFailed as exc:
                log.warning("could not stop %s version %s: %s", model, release.version, exc.message)

    def _get(self, model: str, version: str) -> Release:
        release = self.store.get(model, version)
        if release is None:
            raise NotFound(f"no release of {model} version {version}; run sustain release {model} {version}")
        return release

    # -- triggers ----------------------------------------------------------------------------------------
    def on_webhook(self, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        """Handle one MLflow webhook delivery; every delivery, good or bad, is recorded with what became of it."""
        received = now()
        lowered = {k.lower(): v for k, v in headers.items()}
        claimed_id = lowered.get("x-mlflow-delivery-id", "")[:100] or "(none)"
        secret = self.options.webhook_secret
        try:
            if not secret:
                raise WebhookRejected(
                    "sustain has no MLflow webhook secret: start it with SUSTAIN_MLFLOW_WEBHOOK_SECRET set, "
                    "and give MLflow the same secret when creating the webhook"
                )
            delivery_id = verify_delivery(secret.encode(), headers, body)
            event = parse_event(body)
        except (WebhookRejected, ValidationError) as exc:
            self.store.record_delivery(Delivery(claimed_id, received, "rejected", exc.message))
            raise
        if event.event not in EVENTS or event.version is None:
            reason = f"{event.event} does not start a release"
            self.store.record_delivery(Delivery(delivery_id, received, "ignored", reason, event.event, event.name))
            return {"delivery_id": delivery_id, "outcome": "ignored", "reason": reason}
        action = self._webhook_action(event.event, event.name, event.version, event.alias)
        delivery = Delivery(delivery_id, received, "accepted", action, event.event, event.name, event.version)
        if not self.store.claim_delivery(delivery):
            return {"delivery_id": delivery_id, "outcome": "duplicate", "reason": "already handled"}
        if action.startswith("release"):
            try:
                self.submit(event.name, event.version, trigger=f"webhook {delivery_id}")
            except Conflict as exc:
                action = f"nothing to do: {exc.message}"
        elif action.startswith("promote"):
            self._executor.submit(self._promote_quietly, event.name, event.version, f"webhook {delivery_id}")
        return {"delivery_id": delivery_id, "outcome": "accepted", "reason": action}

    def _webhook_action(self, event: str, name: str, version: str, alias: str | None) -> str:
        model = self.resolve(name)[0]
        # Under the model's lock: an alias sustain moves itself is recorded before this delivery is judged.
        with self._lock(model):
            known = self.store.get(model, version)
            champion = self.aliases(model).get("champion")
        if event == "model_version.created" or (alias == "challenger" and known is None):
            return f"release {name} version {version}"
        if alias == "champion" and known is not None and champion != version:
            return f"promote {name} version {version} (its @champion alias was set in MLflow)"
        return f"nothing to do: @{alias} of {name} moved to version {version}"

    def _promote_quietly(self, name: str, version: str, actor: str) -> None:
        try:
            self.promote(name, version, actor=actor)
        except SustainError as exc:
            log.warning("promotion of %s %s requested by %s failed: %s", name, version, actor, exc.message)

    def poll_once(self) -> list[Release]:
        """Release every version registered since the poll first ran (for registries without webhooks)."""
        first = self.store.claim_delivery(Delivery("poll:baseline", now(), "accepted", "the registry poll began"))
        started = []
        for info in self.registry.versions():
            key = f"poll:{info.name}:{info.version}"
            if first:
                reason = "registered before sustain watched the registry"
                self.store.claim_delivery(Delivery(key, now(), "ignored", reason, "poll", info.name, info.version))
                continue
            model, _, spec = self.resolve(info.name)
            if not self.settings(spec).enabled or self.store.get(model, info.version) is not None:
                continue
            delivery = Delivery(
                key, now(), "accepted", "new version found by the poll", "poll", info.name, info.version
            )
            if not self.store.claim_delivery(delivery):
                continue
            try:
                started.append(self.submit(info.name, info.version, trigger="registry poll"))
            except Conflict:
                continue
        return started

    def _poll_forever(self) -> None:
        while not self._stop.wait(self.options.poll_interval):
            try:
                self.poll_once()
            except SustainError as exc:
                log.warning("polling the MLflow registry failed: %s", exc.message)
            except Exception:
                log.exception("polling the MLflow registry failed")

    # -- what is served -------------------------------------------------------------------------------
    def serving(self) -> dict[str, Any]:
        """Every target in use, with what it serves."""
        with self._targets_lock:
            items = list(self._targets.items())
        return {name: target.status() for name, target in items}

    def serving_processes(self) -> list[dict[str, Any]]:
        return [server for status in self.serving().values() for server in status.get("servers", [])]

    def roles(self, model: str) -> dict[str, list[str]]:
        """version -> its roles (champion, challenger, previous_champion)."""
        out: dict[str, list[str]] = {}
        for role, version in self.aliases(model).items():
            out.setdefault(version, []).append(role)
        return out

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        """Serve again what was served before a restart, and start the registry poll."""
        self._executor.submit(self.restore)
        if self.options.poll_interval > 0:
            self._poller = threading.Thread(target=self._poll_forever, name="sustain-release-poll", daemon=True)
            self._poller.start()

    def restore(self) -> None:
        models = sorted({r.model for r in self.store.query(limit=10_000)})
        for model in models:
            aliases = self.aliases(model)
            wanted = [aliases[r] for r in ROLES if r in aliases]
            if not wanted:
                continue
            with self._lock(model):
                try:
                    served = []
                    for version in dict.fromkeys(wanted):
                        release = self._get(model, version)
                        self._ensure_served(release, self.target(release.target))
                        served.append(version)
                    settings = self.settings(self.resolve(model)[2])
                    champion, challenger = aliases.get("champion"), aliases.get("challenger")
                    standby = tuple(v for v in (aliases.get("previous_champion"),) if v)
                    routing = Routing(champion, challenger, settings.canary_percent, settings.shadow, standby)
                    self.target(self._get(model, wanted[0]).target).route(model, routing)
                    log.warning(
                        "serving %s again: %s", model, ", ".join(f"{r} {aliases[r]}" for r in ROLES if r in aliases)
                    )
                except SustainError as exc:
                    log.error("could not serve %s again after the restart: %s", model, exc.message)

    def close(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=5)
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.pipeline.close()
        with self._targets_lock:
            for target in self._targets.values():
                try:
                    target.close()
                except Exception:
                    log.exception("closing the %s target failed", target.name)
            self._targets.clear()
