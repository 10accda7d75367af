"""The Elasticsearch double's own behaviour, through the official client: what sustain's tests rely on it for.

Paging (``search_after`` with missing values, ``collapse``, composite ``after_key``), terms aggregations
reduced over backing indices with ``sum_other_doc_count``, ``search.max_buckets``, transform validation as the
server does it, and a loud answer to what it does not implement.
"""

from __future__ import annotations

from typing import Any

import pytest
from elasticsearch import ApiError, BadRequestError, Elasticsearch

from tests.es_double import Cluster


@pytest.fixture
def es() -> tuple[Cluster, Elasticsearch]:
    cluster = Cluster()
    client = Elasticsearch("http://double:9200", **cluster.client_options("test"))
    client.indices.create(
        index="docs",
        mappings={"properties": {"k": {"type": "keyword"}, "n": {"type": "long"}, "t": {"type": "date"}}},
    )
    for i in range(25):
        doc: dict[str, Any] = {"k": f"k{i % 7}", "t": f"2026-01-05T00:{i:02d}:00Z"}
        if i % 5:
            doc["n"] = i
        client.index(index="docs", id=str(i), document=doc)
    return cluster, client


def test_search_after_pages_through_every_hit_once_with_missing_values_last(es: tuple[Cluster, Elasticsearch]) -> None:
    _, client = es
    sort = [{"n": {"order": "desc"}}, {"t": {"order": "asc"}}]
    seen, after = [], None
    while True:
        body: dict[str, Any] = {"size": 4, "sort": sort, "query": {"match_all": {}}}
        if after is not None:
            body["search_after"] = after
        hits = client.search(index="docs", body=body)["hits"]["hits"]
        if not hits:
            break
        seen += [h["_id"] for h in hits]
        after = hits[-1]["sort"]
    assert len(seen) == len(set(seen)) == 25
    assert seen[:2] == ["24", "23"] and set(seen[-5:]) == {"0", "5", "10", "15", "20"}  # no n: last, by time


def test_collapse_keeps_the_first_hit_of_each_value(es: tuple[Cluster, Elasticsearch]) -> None:
    _, client = es
    body = {"collapse": {"field": "k"}, "sort": [{"t": {"order": "desc"}}], "size": 100}
    hits = client.search(index="docs", body=body)["hits"]["hits"]
    assert [h["fields"]["k"] for h in hits] == [[f"k{i % 7}"] for i in (24, 23, 22, 21, 20, 19, 18)]


def test_composite_pages_follow_the_after_key(es: tuple[Cluster, Elasticsearch]) -> None:
    _, client = es
    keys, after = [], None
    while True:
        composite: dict[str, Any] = {"size": 3, "sources": [{"k": {"terms": {"field": "k"}}}]}
        if after is not None:
            composite["after"] = after
        aggs = {"by": {"composite": composite, "aggs": {"top": {"top_hits": {"size": 1, "sort": [{"t": "desc"}]}}}}}
        result = client.search(index="docs", body={"size": 0, "aggs": aggs})["aggregations"]["by"]
        if not result["buckets"]:
            break
        keys += [b["key"]["k"] for b in result["buckets"]]
        after = result["after_key"]
    assert keys == [f"k{i}" for i in range(7)]


def test_terms_reduce_over_backing_indices_and_count_the_rest() -> None:
    cluster = Cluster()
    client = Elasticsearch("http://double:9200", **cluster.client_options())
    template = {"properties": {"@timestamp": {"type": "date"}, "c": {"type": "keyword"}}}
    client.indices.put_index_template(name="s", index_patterns=["s"], data_stream={}, template={"mappings": template})
    client.indices.create_data_stream(name="s")
    for i in range(40):
        if i == 20:
            cluster.rollover("s")
        client.create(index="s", id=str(i), document={"@timestamp": "2026-01-05T00:00:00Z", "c": f"v{i % 8}"})
    terms = client.search(index="s", body={"size": 0, "aggs": {"c": {"terms": {"field": "c", "size": 3}}}})
    result = terms["aggregations"]["c"]
    assert [(b["key"], b["doc_count"]) for b in result["buckets"]] == [("v0", 5), ("v1", 5), ("v2", 5)]
    assert result["sum_other_doc_count"] == 25
    assert len(cluster.data_streams["s"].indices) == 2


def test_too_many_buckets_is_refused_as_a_cluster_refuses_it() -> None:
    cluster = Cluster(max_buckets=5)
    client = Elasticsearch("http://double:9200", **cluster.client_options())
    for i in range(10):
        client.index(index="x", id=str(i), document={"k": f"v{i}"})
    with pytest.raises(BadRequestError, match="too_many_buckets_exception"):
        client.search(index="x", body={"size": 0, "aggs": {"k": {"terms": {"field": "k", "size": 10}}}})


@pytest.mark.parametrize(
    ("transform_id", "change", "message"),
    [
        ("Bad-Id", {}, "must consist of lowercase"),
        (
            "ok",
            {"pivot": {"group_by": {"k": {"terms": {"field": "k"}}}, "aggregations": {"r": {"range": {}}}}},
            "Unsupported aggregation type [range]",
        ),
        ("ok", {"settings": {"max_page_search_size": 5}}, "max_page_search_size [5] is out of range"),
        ("ok", {"frequency": "2h"}, "frequency must be between 1s and 1h"),
        ("ok", {"source": {"index": ["missing"]}}, "Source index [missing] does not exist"),
    ],
)
def test_transforms_are_validated_like_the_server(
    es: tuple[Cluster, Elasticsearch], transform_id: str, change: dict[str, Any], message: str
) -> None:
    _, client = es
    body: dict[str, Any] = {
        "source": {"index": ["docs"]},
        "dest": {"index": "out"},
        "sync": {"time": {"field": "t", "delay": "60s"}},
        "pivot": {"group_by": {"k": {"terms": {"field": "k"}}}, "aggregations": {"n": {"sum": {"field": "n"}}}},
        **change,
    }
    with pytest.raises(BadRequestError, match=message.replace("[", r"\[").replace("]", r"\]")):
        client.transform.put_transform(transform_id=transform_id, **body)


def test_what_it_does_not_implement_fails_loudly(es: tuple[Cluster, Elasticsearch]) -> None:
    _, client = es
    with pytest.raises(ApiError, match="does not implement") as raised:
        client.search(index="docs", body={"query": {"match": {"k": "k1"}}})
    assert raised.value.meta.status == 501
