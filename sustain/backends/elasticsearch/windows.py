"""The Elasticsearch engine's windows: reference profiles, continuous transforms and their output.

:class:`ESWindowStore` keeps reference profiles in ``<p>-profiles`` (the profile's
JSON in a field that is stored, not indexed) and reads windows from each plan's
transform destination index. :class:`ESTransformer` keeps one continuous pivot
transform per plan running (:func:`sustain.backends.elasticsearch.transforms.transform_body`), replaces
the transform of an older plan of the same model and window (its destination index
stays, as Elasticsearch leaves it), and reports which windows changed:

* the transform writes through the ingest pipeline ``<p>-windows-updated``, which sets
  ``updated_at`` on every destination document it (re)writes;
* when ``_transform/<id>/_stats`` shows a new ``checkpointing.last.checkpoint``, the
  documents with ``updated_at`` at or after the time the previously seen checkpoint
  started (less a margin for clock skew between nodes) are the changed windows.
  Documents of checkpoint ``n + 1`` are written after it starts, which is after
  checkpoint ``n`` started, so none is missed; some are reported twice, which only
  recomputes their indicators;
* labels do not change window aggregates but do change label metrics: the windows of
  the events that got a label since the last run (by the label's ``received_at``, with
  the same margin, each label reported once) are reported too, as the embedded runner does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import orjson

from sustain.backends.elasticsearch.client import ALREADY_EXISTS, NOT_FOUND
from sustain.backends.elasticsearch.responses import parse_time
from sustain.backends.elasticsearch.store import ElasticsearchStore
from sustain.backends.elasticsearch.transforms import (
    bucket_field,
    dest_index,
    dest_index_body,
    transform_body,
    transform_id,
    windows_alias,
    windows_from_docs,
)
from sustain.backends.elasticsearch.windows_bodies import (
    CLOCK_SKEW_MS,
    TransformState,
    changed_windows_search,
    events_by_key_search,
    labels_since_search,
    max_buckets_of,
    move_alias,
    profile_document,
    profile_id,
    profiles_index_body,
    profiles_search,
    stale_transforms,
    transform_state,
    updated_pipeline_body,
    windows_search,
)
from sustain.durations import parse_duration
from sustain.spec import ModelSpec
from sustain.transforms.plan import TransformPlan, plan_for
from sustain.transforms.profile import ReferenceProfile, binning_profile
from sustain.transforms.runner_report import PlanFailure, RunBatch, RunReport
from sustain.transforms.window import WindowAggregates

log = logging.getLogger("sustain.backends.elasticsearch.transforms")

ID_CHUNK = 10_000  # ids per terms query (index.max_terms_count is 65536)


class ESWindowStore:
    """Reference profiles and transform output in Elasticsearch (a :class:`.protocols.WindowStore`)."""

    def __init__(self, store: ElasticsearchStore) -> None:
        self.store = store
        self.client = store.client
        self.names = store.names
        self._index_ready = False

    # -- profiles ---------------------------------------------------------------------------------
    def put_profile(self, profile: ReferenceProfile) -> None:
        if not self._index_ready:
            self.client.ensure_index("creating the profiles index", self.names.profiles, profiles_index_body())
            self._index_ready = True
        document = profile_document(profile)
        doc_id = profile_id(profile.model, profile.version)
        self.client.call(
            f"storing the profile of {profile.model!r} version {profile.version!r}",
            lambda es: es.index(index=self.names.profiles, id=doc_id, document=document, refresh="wait_for"),
        )

    def get_profile(self, model: str, version: str) -> ReferenceProfile | None:
        what = f"reading the profile of {model!r} version {version!r}"
        source = self.client.get_source(what, self.names.profiles, profile_id(model, version))
        return None if source is None else _profile(source)

    def list_profiles(self, model: str) -> list[ReferenceProfile]:
        hits = self.client.search_all(
            f"reading the profiles of {model!r}", self.names.profiles, lambda after: profiles_search(model, after)
        )
        return [_profile(hit["_source"]) for hit in hits]

    def binning_profile(self, spec: ModelSpec) -> ReferenceProfile | None:
        """The spec's reference version, else the first reference uploaded."""
        return binning_profile(self.list_profiles(spec.name), spec.reference.version)

    # -- windows ------------------------------------------------------------------------------------
    def read_windows(
        self,
        plan: TransformPlan,
        *,
        version: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[WindowAggregates]:
        """The windows of ``plan`` in its destination index, oldest first (none before its first checkpoint)."""
        hits = self.client.search_all(
            f"reading the windows of {plan.id}",
            dest_index(plan, self.store.prefix),
            lambda after: windows_search(after, version=version, since=since, until=until),
        )
        return windows_from_docs(plan, [hit["_source"] for hit in hits])

    def read_many(
        self, wanted: Sequence[tuple[TransformPlan, Collection[tuple[str, datetime]]]]
    ) -> list[list[WindowAggregates]]:
        """For each plan, its windows among the (version, start) keys asked, oldest first (a search per plan)."""
        out = []
        for plan, keys in wanted:
            asked = set(keys)
            since = min((start for _, start in asked), default=None)
            out.append([w for w in self.read_windows(plan, since=since) if (w.version, w.start) in asked])
        return out

    def window_buckets(self, plan: TransformPlan, since: datetime | None = None) -> list[tuple[str, datetime]]:
        hits = self.client.search_all(
            f"listing the windows of {plan.id}",
            dest_index(plan, self.store.prefix),
            lambda after: windows_search(after, since=since, fields=["version", "bucket"]),
        )
        return [(w.version, w.start) for w in windows_from_docs(plan, [hit["_source"] for hit in hits])]


def _profile(source: dict[str, Any]) -> ReferenceProfile:
    return ReferenceProfile.from_json(orjson.dumps(source["profile"]))


@dataclass
class _LabelMark:
    """Labels of one plan already reported: those stored at ``since_ms`` or later, by ``_id``."""

    since_ms: int
    reported: dict[str, int]  # label _id -> received_at in epoch millis


@dataclass
class _Seen:
    """What the transformer last saw of one transform."""

    checkpoint: int
    since_ms: int  # changed documents have updated_at at or after this
    processed: int


class ESTransformer:
    """Keeps one continuous transform per plan running (a :class:`~sustain.transforms.protocols.Transformer`)."""

    def __init__(
        self, store: ElasticsearchStore, windows: ESWindowStore, *, delay: str = "60s", frequency: str | None = None
    ) -> None:
        self.store = store
        self.windows = windows
        self.client = store.client
        self.prefix = store.prefix
        self.delay = delay
        self.lag_seconds = parse_duration(delay)  # events newer than this are not in a checkpoint yet
        self.frequency = frequency
        self._seen: dict[str, _Seen] = {}
        self._labels: dict[str, _LabelMark] = {}
        self._pipeline_ready = False
        self._max_buckets: int | None = None
        self._bodies: dict[str, dict[str, Any]] = {}

    def plans(self, spec: ModelSpec) -> list[TransformPlan]:
        binning = self.windows.binning_profile(spec)
        return [plan_for(spec, window, binning) for window in spec.windows]

    def body(self, plan: TransformPlan) -> dict[str, Any]:
        """The transform body of ``plan`` with this engine's settings (compiled once per plan)."""
        key = f"{plan.id}|{plan.fingerprint}"
        if key not in self._bodies:
            self._bodies[key] = transform_body(
                plan,
                frequency=self.frequency,
                delay=self.delay,
                prefix=self.prefix,
                dest_pipeline=self.store.names.windows_pipeline,
                max_buckets=self.max_buckets(),
                retention=self.store.config.retention,
            )
        return self._bodies[key]

    def transform_id(self, plan: TransformPlan) -> str:
        return transform_id(plan, self.prefix, self.body(plan))

    def max_buckets(self) -> int:
        """The cluster's ``search.max_buckets`` (the default when the credentials may not read cluster settings)."""
        if self._max_buckets is None:
            response = self.client.call(
                "reading the cluster's search.max_buckets",
                lambda es: es.cluster.get_settings(include_defaults=True, flat_settings=True),
                allow=[401, 403],
            )
            self._max_buckets = max_buckets_of(response)
        return self._max_buckets

    def run_plans(self, plans: Sequence[TransformPlan]) -> RunBatch:
        """Each plan in turn (the cluster runs the transforms themselves); a plan that fails is reported apart."""
        batch = RunBatch()
        for plan in plans:
            try:
                batch.reports.append(self.run_plan(plan))
            except Exception as exc:
                batch.failures.append(PlanFailure(plan, exc))
        return batch

    def run_plan(self, plan: TransformPlan) -> RunReport:
        started = time.perf_counter()
        tid = self.transform_id(plan)
        rebuilt = False
        if tid not in self._seen:
            created, rebuilt = self._ensure_running(plan, tid)
            if created:
                self._seen[tid] = _Seen(checkpoint=0, since_ms=0, processed=0)
        state = self._state(tid)
        if state is None:
            return RunReport(plan.id, 0, 0, time.perf_counter() - started, rebuilt, 0)
        if state.state == "failed":
            log.error("transform %s failed: %s; stop it with force and start it again once fixed", tid, state.reason)
        seen = self._seen.get(tid)
        if seen is None:  # first look in this process: the engine recomputes recent windows anyway
            self._seen[tid] = _Seen(state.checkpoint, state.checkpoint_ms - CLOCK_SKEW_MS, state.processed)
            return RunReport(plan.id, 0, 0, time.perf_counter() - started, rebuilt, state.checkpoint)
        touched: set[tuple[str, datetime]] = set()
        if state.checkpoint > seen.checkpoint:
            touched = self._changed(plan, seen.since_ms)
            self._seen[tid] = _Seen(state.checkpoint, state.checkpoint_ms - CLOCK_SKEW_MS, state.processed)
        touched |= self._labelled_windows(plan)
        events = max(0, state.processed - seen.processed)
        seconds = time.perf_counter() - started
        return RunReport(plan.id, events, len(touched), seconds, rebuilt, state.checkpoint, frozenset(touched))

    def _ensure_running(self, plan: TransformPlan, tid: str) -> tuple[bool, bool]:
        """Create and start the transform of ``plan`` if needed; (created, replaced an older plan's)."""
        call = self.client.call
        found = call(
            f"looking up transform {tid}", lambda es: es.transform.get_transform(transform_id=tid), allow=[NOT_FOUND]
        )
        created = not found or not found.get("transforms")
        if created:
            self._ensure_pipeline()
            index, index_body, body = dest_index(plan, self.prefix), dest_index_body(plan), self.body(plan)
            call(
                f"creating the destination index of {tid}",
                lambda es: es.indices.create(index=index, body=index_body),
                allow=[ALREADY_EXISTS],
            )
            alias = windows_alias(plan.model, plan.window, self.prefix)
            actions = move_alias(alias, index, f"{self.prefix}-windows-*")
            call(f"pointing {alias} at {index}", lambda es: es.indices.update_aliases(actions=actions))
            call(
                f"creating transform {tid}",
                lambda es: es.transform.put_transform(transform_id=tid, body=body),
                allow=[409],
            )
            log.info("created transform %s for %s", tid, plan.id)
        call(f"starting transform {tid}", lambda es: es.transform.start_transform(transform_id=tid), allow=[409])
        return created, self._remove_stale(plan, tid) > 0

    def _ensure_pipeline(self) -> None:
        if not self._pipeline_ready:
            name, body = self.store.names.windows_pipeline, updated_pipeline_body()
            self.client.call("installing the windows pipeline", lambda es: es.ingest.put_pipeline(id=name, body=body))
            self._pipeline_ready = True

    def _remove_stale(self, plan: TransformPlan, keep: str) -> int:
        """Stop and delete the transforms of older plans of the same model and window; their indices stay."""
        pattern = f"{self.prefix}-*"
        listing = self.client.call(
            "listing transforms",
            lambda es: es.transform.get_transform(transform_id=pattern, size=1000),
            allow=[NOT_FOUND],
        )
        stale = stale_transforms(listing, plan, keep, self.prefix)
        for old in stale:
            log.info("plan of %s changed: removing transform %s (its destination index stays)", plan.id, old)
            self.client.request(
                f"stopping transform {old}",
                "transform.stop_transform",
                transform_id=old,
                force=True,
                wait_for_completion=True,
                allow=[NOT_FOUND],
            )
            self.client.request(
                f"deleting transform {old}",
                "transform.delete_transform",
                transform_id=old,
                force=True,
                allow=[NOT_FOUND],
            )
            self._seen.pop(old, None)
        return len(stale)

    def _state(self, tid: str) -> TransformState | None:
        stats = self.client.call(
            f"reading the stats of transform {tid}",
            lambda es: es.transform.get_transform_stats(transform_id=tid),
            allow=[NOT_FOUND],
        )
        state = transform_state(stats)
        if state is None:
            self._seen.pop(tid, None)  # deleted behind our back: recreate on the next run
        return state

    def _changed(self, plan: TransformPlan, since_ms: int) -> set[tuple[str, datetime]]:
        index = dest_index(plan, self.prefix)
        self.client.call(f"refreshing {index}", lambda es: es.indices.refresh(index=index), allow=[NOT_FOUND])
        hits = self.client.search_all(
            f"finding changed windows of {plan.id}", index, lambda after: changed_windows_search(since_ms, after)
        )
        return {(w.version, w.start) for w in windows_from_docs(plan, [hit["_source"] for hit in hits])}

    def _labelled_windows(self, plan: TransformPlan) -> set[tuple[str, datetime]]:
        """Windows whose events got a label since the last run (their label metrics must be recomputed)."""
        mark = self._labels.get(plan.id)
        if mark is None:  # first run in this process: the engine recomputes recent windows anyway
            self._labels[plan.id] = _LabelMark(now_ms() - CLOCK_SKEW_MS, {})
            return set()
        labels = self.store.names.labels(plan.model)
        fresh: dict[str, int] = {}
        request_ids: list[str] = []
        event_ids: list[str] = []
        for hit in self.client.search_all(
            f"finding new labels of {plan.model!r}", labels, lambda after: labels_since_search(mark.since_ms, after)
        ):
            received = int(hit["sort"][0])
            if mark.reported.get(hit["_id"]) == received:
                continue  # reported already; a label replaced since has a later received_at
            source = hit["_source"]
            fresh[hit["_id"]] = received
            (request_ids if source["key_kind"] == "request_id" else event_ids).append(str(source["key"]))
        if not fresh:
            return set()
        touched = self._windows_of(plan, request_ids, event_ids)
        reported = {**mark.reported, **fresh}
        since = max(reported.values()) - CLOCK_SKEW_MS
        self._labels[plan.id] = _LabelMark(since, {k: v for k, v in reported.items() if v >= since})
        return touched

    def _windows_of(
        self, plan: TransformPlan, request_ids: list[str], event_ids: list[str]
    ) -> set[tuple[str, datetime]]:
        stream = self.store.names.events(plan.model)
        segment = bucket_field(plan.window).split(".", 1)[1]
        touched: set[tuple[str, datetime]] = set()
        for start in range(0, max(len(request_ids), len(event_ids)), ID_CHUNK):
            requests, events = request_ids[start : start + ID_CHUNK], event_ids[start : start + ID_CHUNK]
            for hit in self.client.search_all(
                f"finding the windows of new labels of {plan.model!r}",
                stream,
                partial(events_by_key_search, requests, events, plan.window),
            ):
                source = hit["_source"]
                bucket = parse_time((source.get("buckets") or {}).get(segment))
                if bucket is not None:
                    touched.add((str(source["model"]["version"]), bucket))
        return touched


def now_ms() -> int:
    return int(time.time() * 1000)
