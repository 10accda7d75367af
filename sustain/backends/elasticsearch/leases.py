"""One writer per model among sustain replicas that share a cluster: leases in ``<prefix>-leases``.

Every replica ingests, serves and answers hooks, but only the holder of a model's lease runs its transforms
and indicators (and so its alerting): stateful indicators keep one history, actions run once, and replicas
with different settings do not replace each other's transforms back and forth. A lease is one document
``_id`` = the model, ``{holder, expires_at}``, changed only with optimistic concurrency (``if_seq_no`` /
``if_primary_term``, or ``create`` for a new one), so two replicas can never both take it. The holder renews it
when half its time has passed; when a replica stops it releases its leases, and when it dies another replica
takes them over once they expire. Expiry compares the replicas' clocks: keep the lease well above any clock
skew (the default is three indicator intervals, at least a minute).

Indicator documents have ids derived from their key, so a takeover in the middle of a run rewrites documents
instead of duplicating them.

>>> lease_document("r1", 1_767_571_260_000)
{'holder': 'r1', 'expires_at': 1767571260000}
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from sustain.backends.elasticsearch.bodies import DATE, KEYWORD, small_index_body
from sustain.backends.elasticsearch.client import ALREADY_EXISTS, NOT_FOUND, ESClient

log = logging.getLogger("sustain.backends.elasticsearch.leases")

CONFLICT = 409


def leases_index_body() -> dict[str, Any]:
    """``PUT <prefix>-leases``: one document per model, ``_id`` = the model."""
    return small_index_body({"holder": KEYWORD, "expires_at": DATE}, "leases")


def lease_document(holder: str, expires_ms: int) -> dict[str, Any]:
    return {"holder": holder, "expires_at": expires_ms}


def replica_name() -> str:
    """This process among the replicas: host, pid and a random part (a restarted process is a new holder)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Leases:
    """The leases this replica holds (an :class:`~sustain.engine.Ownership`)."""

    def __init__(
        self,
        client: ESClient,
        index: str,
        *,
        seconds: float = 90.0,
        holder: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.index = index
        self.ttl_ms = round(seconds * 1000)
        self.holder = holder or replica_name()
        self.clock = clock
        self._held: dict[str, int] = {}  # model -> when our lease expires (ms)
        self._ready = False
        self._lock = threading.Lock()

    def _now(self) -> int:
        return round(self.clock() * 1000)

    def owns(self, model: str) -> bool:
        """Whether this replica holds ``model``'s lease now, taking or renewing it when it may."""
        with self._lock:
            now = self._now()
            expires = self._held.get(model)
            if expires is not None and now < expires - self.ttl_ms // 2:
                return True
            held = self._take(model, now)
            if held:
                self._held[model] = now + self.ttl_ms
            elif self._held.pop(model, None) is not None:
                log.warning("lost the lease of model %s to another replica", model)
            return held

    def _take(self, model: str, now: int) -> bool:
        if not self._ready:
            self.client.ensure_index(f"creating {self.index}", self.index, leases_index_body())
            self._ready = True
        what = f"taking the lease of model {model!r}"
        found = self.client.call(what, lambda es: es.get(index=self.index, id=model), allow=[NOT_FOUND])
        document = lease_document(self.holder, now + self.ttl_ms)
        if found is None or not found.get("found"):
            created = self.client.call(
                what,
                lambda es: es.index(index=self.index, id=model, document=document, op_type="create", refresh=True),
                allow=[CONFLICT, ALREADY_EXISTS],
            )
            return created is not None
        current = found["_source"]
        if current.get("holder") != self.holder and int(current.get("expires_at", 0)) > now:
            return False
        seq_no, term = found["_seq_no"], found["_primary_term"]
        renewed = self.client.call(
            what,
            lambda es: es.index(
                index=self.index, id=model, document=document, if_seq_no=seq_no, if_primary_term=term, refresh=True
            ),
            allow=[CONFLICT],
        )
        return renewed is not None

    def release(self) -> None:
        """Let every lease of this replica expire now (on a clean stop): another replica takes over at once."""
        with self._lock:
            for model in list(self._held):
                self._expire(model)
            self._held.clear()

    def _expire(self, model: str) -> None:
        what = f"releasing the lease of model {model!r}"
        found = self.client.call(what, lambda es: es.get(index=self.index, id=model), allow=[NOT_FOUND])
        if found is None or not found.get("found") or found["_source"].get("holder") != self.holder:
            return
        document, seq_no, term = lease_document(self.holder, 0), found["_seq_no"], found["_primary_term"]
        self.client.call(
            what,
            lambda es: es.index(index=self.index, id=model, document=document, if_seq_no=seq_no, if_primary_term=term),
            allow=[CONFLICT],
        )
