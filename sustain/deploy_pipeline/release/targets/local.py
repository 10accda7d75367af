"""The ``local`` target: a real MLflow scoring server process per served version, behind sustain's gateway.

A supervisor thread pings every process; one that died or stopped answering is restarted on its port while
the gateway sends its traffic to the versions still up (the champion keeps serving when a candidate dies, and
the previous champion or the candidate covers while a champion restarts).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sustain.deploy_pipeline.release.errors import TargetFailed
from sustain.deploy_pipeline.release.gateway import Backend, Gateway, Route
from sustain.deploy_pipeline.release.package import Bundle
from sustain.deploy_pipeline.release.scoring import ScoringServer
from sustain.deploy_pipeline.release.targets.base import Deployment, Routing, TargetContext

log = logging.getLogger("sustain.release")


class LocalTarget:
    name = "local"

    def __init__(
        self,
        gateway: Gateway,
        *,
        ready_timeout: float = 180.0,
        check_interval: float = 1.0,
        failures_before_restart: int = 3,
    ) -> None:
        self.gateway = gateway
        self.ready_timeout = ready_timeout
        self.check_interval = check_interval
        self.failures_before_restart = failures_before_restart
        self.servers: dict[tuple[str, str], ScoringServer] = {}
        self.backends: dict[tuple[str, str], Backend] = {}
        self._failures: dict[tuple[str, str], int] = {}
        self._preparing: dict[tuple[str, str], ScoringServer] = {}
        self._restarting: set[tuple[str, str]] = set()
        self._stopping: list[threading.Thread] = []
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._supervisor = threading.Thread(target=self._supervise, name="sustain-serving-supervisor", daemon=True)
        self._supervisor.start()

    @classmethod
    def from_context(cls, context: TargetContext) -> LocalTarget:
        if context.gateway is None:
            raise TargetFailed("the local target needs sustain's gateway; run it inside sustain serve")
        ready = float(context.options.get("ready_timeout", 180))
        return cls(context.gateway, ready_timeout=ready)

    # -- the target verbs ----------------------------------------------------------------------
    def prepare(self, model: str, version: str, bundle: Bundle) -> None:
        key = (model, version)
        with self._lock:
            if key in self.servers or key in self._preparing:
                return
            server = ScoringServer(model, version, bundle.model, bundle.root)
            self._preparing[key] = server
        server.start()

    def deploy(self, model: str, version: str, bundle: Bundle) -> Deployment:
        key = (model, version)
        with self._lock:
            running = self.servers.get(key)
            server = self._preparing.pop(key, None)
        if running is not None and running.healthy():
            return Deployment(model, version, running.url, f"already serving (pid {running.pid})")
        if running is not None:
            running.stop()
        if server is None or not server.alive():
            server = ScoringServer(model, version, bundle.model, bundle.root)
            server.start()
        try:
            server.wait_ready(self.ready_timeout)
        except BaseException:
            server.stop()
            raise
        with self._lock:
            self.servers[key] = server
            self.backends[key] = Backend(version, server.url)
            self._failures[key] = 0
        return Deployment(model, version, server.url, f"mlflow models serve, pid {server.pid}, port {server.port}")

    def route(self, model: str, routing: Routing) -> None:
        with self._lock:
            missing = [v for v in routing.versions() if (model, v) not in self.backends]
            if missing:
                raise TargetFailed(f"{model} version(s) {', '.join(missing)} are not served here; release them first")

            def backend(version: str | None) -> Backend | None:
                return None if version is None else self.backends[(model, version)]

            route = Route(
                champion=backend(routing.champion),
                candidate=backend(routing.candidate),
                canary_percent=routing.canary_percent,
                shadow=routing.shadow,
                standby=tuple(self.backends[(model, v)] for v in routing.standby),
            )
        self.gateway.set_route(model, route)

    def retire(self, model: str, version: str) -> None:
        key = (model, version)
        with self._lock:
            route = self.gateway.routes.get(model)
            backend = self.backends.get(key)
            if (
                route is not None
                and backend is not None
                and backend in (route.champion, route.candidate, *route.standby)
            ):
                raise TargetFailed(f"{model} version {version} still gets traffic; route it away first")
            stopping = [s for s in (self.servers.pop(key, None), self._preparing.pop(key, None)) if s is not None]
            self.backends.pop(key, None)
            self._failures.pop(key, None)
        for server in stopping:  # no traffic reaches it any more: a promotion need not wait for its exit
            thread = threading.Thread(target=server.stop, name=f"stop-{model}-{version}", daemon=True)
            thread.start()
            self._stopping.append(thread)

    def status(self) -> dict[str, Any]:
        with self._lock:
            servers = [
                {
                    "model": m,
                    "version": v,
                    "url": s.url,
                    "pid": s.pid,
                    "alive": s.alive(),
                    "restarts": s.restarts,
                    "up": self.backends[(m, v)].up,
                }
                for (m, v), s in sorted(self.servers.items())
            ]
        return {"target": self.name, "servers": servers, "routes": self.gateway.status()}

    def server(self, model: str, version: str) -> ScoringServer | None:
        with self._lock:
            return self.servers.get((model, version))

    def close(self) -> None:
        self._stop.set()
        self._supervisor.join(timeout=5)
        with self._lock:
            servers = [*self.servers.values(), *self._preparing.values()]
            self.servers.clear()
            self._preparing.clear()
            self.backends.clear()
        for server in servers:
            server.stop(grace=5.0)
        for thread in self._stopping:
            thread.join(timeout=15)

    # -- supervision ---------------------------------------------------------------------------------
    def _supervise(self) -> None:
        while not self._stop.wait(self.check_interval):
            with self._lock:
                items = [(k, s) for k, s in self.servers.items() if k not in self._restarting]
            for key, server in items:
                if self._stop.is_set():
                    return
                healthy = server.healthy(timeout=2.0)
                backend = self.backends.get(key)
                if backend is None:  # retired while it was being checked
                    continue
                if healthy:
                    self._failures[key] = 0
                    backend.up = True
                    continue
                self._failures[key] = self._failures.get(key, 0) + 1
                if server.alive() and self._failures[key] < self.failures_before_restart:
                    continue
                backend.up = False
                with self._lock:
                    self._restarting.add(key)
                threading.Thread(target=self._restart, args=(key, server), daemon=True).start()

    def _restart(self, key: tuple[str, str], server: ScoringServer) -> None:
        try:
            server.restart(self.ready_timeout)
        except TargetFailed as exc:
            log.error("%s", exc.message)
        else:
            with self._lock:
                retired = self.servers.get(key) is not server
                if not retired:
                    self.backends[key].up = True
                    self._failures[key] = 0
            if retired:  # retired while it restarted
                server.stop()
        finally:
            with self._lock:
                self._restarting.discard(key)
