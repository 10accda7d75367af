"""Demo traffic for ``sustain serve --demo-traffic`` (``make run``): data flowing from the first minute.

Every registered model gets a synthetic reference (if it has none) and a
steady stream of events through the real client :class:`~sustain.Logger`,
with labels arriving some seconds later. Every ten minutes two features drift
for three minutes, so the dashboard has something to show.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from sustain.api.context import AppContext
from sustain.collector.logger import Logger
from sustain.synthetic import SyntheticModel

EVENTS_PER_SECOND = 20
DRIFT_EVERY = 600.0
DRIFT_FOR = 180.0
LABEL_DELAY = (5.0, 30.0)


def _seed_reference(ctx: AppContext, model: SyntheticModel) -> None:
    spec = model.spec
    version = spec.effective_default_version
    if any(info.version == version for info in ctx.store.reference_info(spec.name)):
        return
    ctx.collector.store_reference(spec, version, pa.table(model.reference(5000)))


def start_demo_traffic(ctx: AppContext) -> Callable[[], None]:
    stop = threading.Event()
    url = f"http://{'127.0.0.1' if ctx.settings.host in ('0.0.0.0', '::') else ctx.settings.host}:{ctx.settings.port}"
    token = ctx.settings.write_tokens[0] if ctx.settings.write_tokens else None

    def run() -> None:
        specs = ctx.store.list_specs()
        models = [SyntheticModel(s, seed=i) for i, s in enumerate(specs)]
        loggers = {m.spec.name: Logger(url, m.spec.name, token=token, flush_interval=0.5, spool=False) for m in models}
        for m in models:
            _seed_reference(ctx, m)
        pending: deque[tuple[float, str, str, Any]] = deque()
        started = time.time()
        n = 0
        try:
            while not stop.wait(1.0):
                elapsed = time.time() - started
                drifting = (elapsed % DRIFT_EVERY) > DRIFT_EVERY - DRIFT_FOR
                for m in models:
                    numeric = [f.name for f in m.spec.features if f.kind in ("numeric", "categorical")][:2]
                    events = m.events(EVENTS_PER_SECOND, {name: 1.5 for name in numeric} if drifting else None)
                    labels = m.labels_for(events)
                    for event, label in zip(events, labels, strict=True):
                        n += 1
                        rid = f"demo-{n}"
                        loggers[m.spec.name].log(
                            event["features"],
                            event["outputs"],
                            request_id=rid,
                            latency_ms=round(random.lognormvariate(2.5, 0.4), 2),
                        )
                        if label is not None and random.random() < 0.7:
                            pending.append((time.time() + random.uniform(*LABEL_DELAY), m.spec.name, rid, label))
                now = time.time()
                while pending and pending[0][0] <= now:
                    _, name, rid, label = pending.popleft()
                    loggers[name].label(rid, label)
        finally:
            for lg in loggers.values():
                lg.close(timeout=2.0)

    thread = threading.Thread(target=run, name="sustain-demo-traffic", daemon=True)
    thread.start()

    def halt() -> None:
        stop.set()
        thread.join(timeout=5.0)

    return halt
