"""Elasticsearch responses as the API documents them, for the tests of the backend's pure parsing functions.

Each one is also checked against the response types of Elastic's TypeScript API definitions
(``tests/test_store_es_bodies.py``), so its shape is the one a cluster sends.
"""

from __future__ import annotations

from typing import Any

SHARDS: dict[str, Any] = {"total": 1, "successful": 1, "skipped": 0, "failed": 0}


def search_response(hits: list[dict[str, Any]], aggregations: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "took": 3,
        "timed_out": False,
        "_shards": SHARDS,
        "hits": {"total": {"value": len(hits), "relation": "eq"}, "max_score": None, "hits": hits},
    }
    if aggregations is not None:
        body["aggregations"] = aggregations
    return body


EVENT_HITS: list[dict[str, Any]] = [
    {
        "_index": ".ds-sustain-events-labelled-2026.01.05-000001",
        "_id": "e1",
        "_score": None,
        "_source": {
            "@timestamp": "2026-01-05T10:30:00.250000Z",
            "event": {"id": "e1", "ingested": "2026-01-05T10:30:01.123456789Z"},
            "model": {"id": "labelled", "version": "1"},
            "request": {"id": "r1"},
            "buckets": {"1m": "2026-01-05T10:30:00.000Z", "1h": "2026-01-05T10:00:00.000Z"},
            "features": {"age": 41.0, "plan": "pro", "active": True, "vec": [1.0, 2.0, 2.0, 0.0]},
            "measures": {"vec": 3.0},
            "outputs": {"proba": {"stay": 0.2, "churn": 0.8}, "prediction": "churn"},
            "latency_ms": 12.5,
            "tags": {"region": "eu"},
            "invalid": ["income"],
        },
        "sort": [1767609000250, "e1"],
    },
    {
        "_index": ".ds-sustain-events-labelled-2026.01.05-000001",
        "_id": "e2",
        "_score": None,
        "_source": {
            "@timestamp": "2026-01-05T10:29:00Z",
            "event": {"id": "e2", "ingested": "2026-01-05T10:29:02.5Z"},
            "model": {"id": "labelled", "version": "1"},
            "request": {"id": "r2"},
            "features": {"age": 30.0},
            "error": "timeout",
        },
        "sort": [1767608940000, "e2"],
    },
    {
        "_index": ".ds-sustain-events-labelled-2026.01.05-000001",
        "_id": "e3",
        "_score": None,
        "_source": {
            "@timestamp": "2026-01-05T10:28:00Z",
            "event": {"id": "e3"},
            "model": {"id": "labelled", "version": "1"},
            "features": {},
        },
        "sort": [1767608880000, "e3"],
    },
]

LABEL_DOCS: dict[str, Any] = {
    "docs": [
        {
            "_index": "sustain-labels-labelled",
            "_id": "request_id:r1",
            "_version": 2,
            "_seq_no": 5,
            "_primary_term": 1,
            "found": True,
            "_source": {"key_kind": "request_id", "key": "r1", "label": "churn", "ts": "2026-01-06T00:00:00Z"},
        },
        {
            "_index": "sustain-labels-labelled",
            "_id": "event_id:e1",
            "_version": 1,
            "_seq_no": 3,
            "_primary_term": 1,
            "found": True,
            "_source": {"key_kind": "event_id", "key": "e1", "label": "stay", "ts": "2026-01-05T12:00:00Z"},
        },
        {"_index": "sustain-labels-labelled", "_id": "request_id:r2", "found": False},
        {
            "_index": "sustain-labels-labelled",
            "_id": "event_id:e2",
            "_version": 1,
            "_seq_no": 4,
            "_primary_term": 1,
            "found": True,
            "_source": {"key_kind": "event_id", "key": "e2", "label": "stay", "ts": "2026-01-05T13:00:00Z"},
        },
        {"_index": "sustain-labels-labelled", "_id": "event_id:e3", "found": False},
    ]
}

BULK_RESPONSE: dict[str, Any] = {
    "took": 30,
    "errors": True,
    "items": [
        {
            "create": {
                "_index": ".ds-sustain-events-labelled-2026.01.05-000001",
                "_id": "e1",
                "_version": 1,
                "result": "created",
                "_shards": {"total": 2, "successful": 1, "failed": 0},
                "_seq_no": 0,
                "_primary_term": 1,
                "status": 201,
            }
        },
        {
            "create": {
                "_index": ".ds-sustain-events-labelled-2026.01.05-000001",
                "_id": "e2",
                "status": 409,
                "error": {
                    "type": "version_conflict_engine_exception",
                    "reason": "[e2]: version conflict, document already exists (current version [1])",
                    "index_uuid": "aAsFqTI0Tc2W0LCWgPNrOA",
                    "shard": "0",
                    "index": ".ds-sustain-events-labelled-2026.01.05-000001",
                },
            }
        },
        {
            "create": {
                "_index": ".ds-sustain-events-labelled-2026.01.05-000001",
                "_id": "e3",
                "status": 400,
                "error": {
                    "type": "document_parsing_exception",
                    "reason": "[1:42] failed to parse field [features.age] of type [double]",
                    "caused_by": {"type": "illegal_argument_exception", "reason": 'For input string: "old"'},
                },
            }
        },
        {
            "create": {
                "_index": ".ds-sustain-events-labelled-2026.01.05-000001",
                "_id": "e4",
                "_version": 1,
                "result": "created",
                "_shards": {"total": 2, "successful": 1, "failed": 0},
                "_seq_no": 1,
                "_primary_term": 1,
                "status": 201,
            }
        },
    ],
}

TRANSFORM_STATS: dict[str, Any] = {
    "count": 1,
    "transforms": [
        {
            "id": "sustain-labelled-1h-0a1b2c3d",
            "state": "started",
            "stats": {
                "pages_processed": 4,
                "documents_processed": 400,
                "documents_indexed": 12,
                "documents_deleted": 0,
                "trigger_count": 3,
                "index_time_in_ms": 20,
                "index_total": 3,
                "index_failures": 0,
                "search_time_in_ms": 11,
                "search_total": 4,
                "search_failures": 0,
                "processing_time_in_ms": 8,
                "processing_total": 4,
                "delete_time_in_ms": 0,
                "exponential_avg_checkpoint_duration_ms": 77.0,
                "exponential_avg_documents_indexed": 12.0,
                "exponential_avg_documents_processed": 400.0,
            },
            "checkpointing": {
                "last": {
                    "checkpoint": 3,
                    "timestamp_millis": 1767610800000,
                    "time_upper_bound_millis": 1767610740000,
                },
                "changes_last_detected_at": 1767610800000,
            },
            "health": {"status": "green"},
        }
    ],
}
