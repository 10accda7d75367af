"""Demo traffic for a running sustain: a reference, then predictions that drift, through the real Logger.

The smoke test runs it inside the sustain container (sustain is installed there)::

    docker compose -f compose/docker-compose.yml exec -T sustain \
        python - --token "$SUSTAIN_WRITE_TOKEN" --seconds 240 --drift-after 60 < compose/traffic.py

It reads the model's spec from the service, uploads a synthetic reference of the spec when the model
has none, then logs ``--rate`` events a second (labels follow a few seconds later) for ``--seconds``;
after ``--drift-after`` seconds two features drift, so the drift indicator and its alert rules fire.
The last line it prints is a JSON summary; it exits 1 when any event was dropped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq

from sustain import Logger
from sustain.spec import ModelSpec
from sustain.synthetic import SyntheticModel

LABEL_DELAY_SECONDS = 5.0


def _client(url: str, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=60.0)


def ensure_reference(client: httpx.Client, model: SyntheticModel, rows: int) -> bool:
    """Upload a reference for the spec's default version unless one is stored; True when uploaded."""
    spec = model.spec
    version = spec.effective_default_version
    listing = client.get(f"/v1/models/{spec.name}/reference")
    if listing.status_code == 200 and any(r.get("version") == version for r in listing.json().get("references", [])):
        return False
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(model.reference(rows)), sink)
    response = client.put(
        f"/v1/models/{spec.name}/reference",
        params={"version": version},
        content=sink.getvalue().to_pybytes(),
        headers={"Content-Type": "application/vnd.apache.parquet"},
    )
    response.raise_for_status()
    return True


def drifted_features(spec: ModelSpec) -> dict[str, float]:
    """Shift the first two numeric or categorical features (numeric ones by 1.5 standard deviations)."""
    names = [f.name for f in spec.features if f.kind in ("numeric", "categorical")][:2]
    return {name: 1.5 for name in names}


def send(
    url: str,
    token: str | None,
    model: SyntheticModel,
    *,
    seconds: float,
    rate: int,
    drift_after: float,
    seed: int,
) -> dict[str, Any]:
    """Log ``rate`` events a second for ``seconds``, drifting after ``drift_after``; labels follow."""
    spec = model.spec
    logger = Logger(url, spec.name, token=token, flush_interval=0.5, spool=False)
    drift = drifted_features(spec)
    pending: list[tuple[float, str, Any]] = []
    started = time.monotonic()
    sent = labelled = 0
    try:
        while (elapsed := time.monotonic() - started) < seconds:
            events = model.events(rate, drift if elapsed >= drift_after else None)
            labels = model.labels_for(events)
            for event, label in zip(events, labels, strict=True):
                sent += 1
                request_id = f"traffic-{seed}-{sent}"
                logger.log(event["features"], event["outputs"], request_id=request_id, latency_ms=5.0 + sent % 20)
                if label is not None:
                    pending.append((time.monotonic() + LABEL_DELAY_SECONDS, request_id, label))
            now = time.monotonic()
            while pending and pending[0][0] <= now:
                _, request_id, label = pending.pop(0)
                logger.label(request_id, label)
                labelled += 1
            time.sleep(max(0.0, 1.0 - (time.monotonic() - now)))
        for _, request_id, label in pending:
            logger.label(request_id, label)
            labelled += 1
        logger.flush(timeout=60.0)
    finally:
        logger.close(timeout=60.0)
    stats = logger.snapshot()
    return {"model": spec.name, "events": sent, "labels": labelled, "dropped": stats.dropped, "drift": sorted(drift)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Send demo traffic (with drift) to a running sustain.")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the sustain service")
    parser.add_argument("--token", default=None, help="a sustain write token")
    parser.add_argument("--model", default="churn", help="the model to send events for")
    parser.add_argument("--seconds", type=float, default=240.0, help="how long to send")
    parser.add_argument("--rate", type=int, default=40, help="events a second")
    parser.add_argument("--drift-after", type=float, default=60.0, help="seconds of normal traffic first")
    parser.add_argument("--reference-rows", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    with _client(args.url, args.token) as client:
        response = client.get(f"/v1/models/{args.model}")
        if response.status_code != 200:
            print(f"error: {args.url} answered {response.status_code} for model {args.model!r}", file=sys.stderr)
            return 2
        model = SyntheticModel(ModelSpec.model_validate(response.json()), seed=args.seed)
        uploaded = ensure_reference(client, model, args.reference_rows)
    print(f"reference for {args.model}: {'uploaded' if uploaded else 'already stored'}", flush=True)
    summary = send(
        args.url,
        args.token,
        model,
        seconds=args.seconds,
        rate=args.rate,
        drift_after=args.drift_after,
        seed=args.seed,
    )
    print(json.dumps(summary), flush=True)
    return 1 if summary["dropped"] else 0


if __name__ == "__main__":
    sys.exit(main())
