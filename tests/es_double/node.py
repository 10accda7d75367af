"""The Elasticsearch double behind the official client: a transport node class that answers from a :class:`Cluster`.

``elasticsearch.Elasticsearch(hosts, node_class=cluster.node_class("replica-1"))`` sends every request through
:class:`DoubleNode.perform_request`, which routes it to the cluster and answers with the status, headers
(``X-Elastic-Product: Elasticsearch``, as the client checks) and body a one-node 8.19 cluster sends. Every
exchange is recorded in ``cluster.requests`` (:class:`Recorded`), so tests can check request bodies and
responses against Elastic's TypeScript types and see which client sent what.

>>> from tests.es_double.cluster import Cluster
>>> cluster = Cluster()
>>> status, body = cluster_call(cluster, "GET", "/")
>>> status, body["version"]["number"]
(200, '8.19.2')
>>> cluster_call(cluster, "GET", "/nope/_doc/1")[1]["error"]["type"]
'index_not_found_exception'
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from elastic_transport import ApiResponseMeta, BaseNode, HttpHeaders, NodeConfig
from elastic_transport._node._base import NodeApiResponse

from tests.es_double import api
from tests.es_double.cluster import Cluster
from tests.es_double.search import RequestError, Unsupported

Handler = Callable[[Cluster, dict[str, str], dict[str, str], Any], Any]


@dataclass
class Recorded:
    """One request the double answered."""

    client: str
    method: str
    path: str
    params: dict[str, str]
    body: Any
    status: int
    response: Any
    api: str


ROUTES: list[tuple[str, re.Pattern[str], str, Handler]] = []


def route(methods: str, pattern: str, name: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        for method in methods.split("|"):
            ROUTES.append((method, re.compile(f"^{pattern}$"), name, handler))
        return handler

    return register


_T = r"(?P<target>[^/_][^/]*)"

route("GET", "/", "info")(api.info)
route("PUT", r"/_ilm/policy/(?P<name>[^/]+)", "ilm.put_lifecycle")(api.put_lifecycle)
route("PUT", r"/_ingest/pipeline/(?P<name>[^/]+)", "ingest.put_pipeline")(api.put_pipeline)
route("PUT|POST", r"/_index_template/(?P<name>[^/]+)", "indices.put_index_template")(api.put_template)
route("PUT", r"/_data_stream/(?P<name>[^/]+)", "indices.create_data_stream")(api.create_data_stream)
route("GET", r"/_data_stream/(?P<name>[^/]+)", "indices.get_data_stream")(api.get_data_stream)
route("GET", r"/_cluster/settings", "cluster.get_settings")(api.get_cluster_settings)
route("PUT", r"/_cluster/settings", "cluster.put_settings")(api.put_cluster_settings)
route("POST", r"/_aliases", "indices.update_aliases")(api.update_aliases)
route("PUT|POST", r"/_bulk", "bulk")(api.bulk)
route("PUT|POST", rf"/{_T}/_bulk", "bulk")(api.bulk)
route("PUT", r"/_transform/(?P<name>[^/]+)", "transform.put_transform")(api.put_transform)
route("GET", r"/_transform/(?P<name>[^/]+)", "transform.get_transform")(api.get_transform)
route("GET", r"/_transform/(?P<name>[^/]+)/_stats", "transform.get_transform_stats")(api.transform_stats)
route("POST", r"/_transform/(?P<name>[^/]+)/_start", "transform.start_transform")(api.start_transform)
route("POST", r"/_transform/(?P<name>[^/]+)/_stop", "transform.stop_transform")(api.stop_transform)
route("POST", r"/_transform/(?P<name>[^/]+)/_schedule_now", "transform.schedule_now_transform")(api.schedule_now)
route("DELETE", r"/_transform/(?P<name>[^/]+)", "transform.delete_transform")(api.delete_transform)
route("POST|GET", r"/_search", "search")(api.search)
route("POST|GET", rf"/{_T}/_search", "search")(api.search)
route("POST|GET", rf"/{_T}/_count", "count")(api.count)
route("POST|GET", rf"/{_T}/_mget", "mget")(api.mget)
route("POST", rf"/{_T}/_refresh", "indices.refresh")(api.refresh)
route("POST", rf"/{_T}/_rollover", "indices.rollover")(api.rollover)
route("POST", rf"/{_T}/_update_by_query", "update_by_query")(api.update_by_query)
route("POST", rf"/{_T}/_delete_by_query", "delete_by_query")(api.delete_by_query)
route("PUT", rf"/{_T}/_mapping", "indices.put_mapping")(api.put_mapping)
route("PUT|POST", rf"/{_T}/_doc/(?P<id>[^/]+)", "index")(api.index_doc)
route("POST", rf"/{_T}/_doc", "index")(api.index_doc)
route("PUT|POST", rf"/{_T}/_create/(?P<id>[^/]+)", "create")(api.create_doc)
route("GET", rf"/{_T}/_doc/(?P<id>[^/]+)", "get")(api.get_doc)
route("DELETE", rf"/{_T}/_doc/(?P<id>[^/]+)", "delete")(api.delete_doc)
route("PUT", rf"/{_T}", "indices.create")(api.create_index)
route("DELETE", rf"/{_T}", "indices.delete")(api.delete_index)
route("GET", rf"/{_T}", "indices.get")(api.get_index)


def error_body(exc: RequestError) -> dict[str, Any]:
    cause = {"type": exc.kind, "reason": exc.reason, **exc.extra}
    return {"error": {"root_cause": [cause], **cause}, "status": exc.status}


def _parse(body: bytes | None, content_type: str) -> Any:
    if not body:
        return None
    text = body.decode()
    if "ndjson" in content_type:
        return text
    return json.loads(text)


def cluster_call(
    cluster: Cluster, method: str, target: str, body: bytes | None = None, content_type: str = "", client: str = ""
) -> tuple[int, Any]:
    """Route one HTTP request to the cluster: (status, response body)."""
    parts = urlsplit(target)
    path = parts.path
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    parsed = _parse(body, content_type)
    name = "unknown"
    with cluster.lock:
        for hook in list(cluster.before_request):
            hook(method, path)
        try:
            for route_method, pattern, route_name, handler in ROUTES:
                match = pattern.match(path)
                if route_method == method and match is not None:
                    name = route_name
                    captured = {k: unquote(v) for k, v in match.groupdict().items()}
                    status, response = 200, handler(cluster, captured, params, parsed)
                    if isinstance(response, tuple):
                        status, response = response
                    break
            else:
                raise Unsupported(f"{method} {path}")
        except RequestError as exc:
            status, response = exc.status, error_body(exc)
        except Unsupported as exc:
            status = 501
            response = error_body(RequestError(501, "unsupported_by_double", f"the double does not implement {exc}"))
        cluster.requests.append(Recorded(client, method, unquote(path), params, parsed, status, response, name))
    return status, response


class DoubleNode(BaseNode):
    """A transport node answering from :attr:`cluster` (subclassed per cluster by :meth:`Cluster.node_class`)."""

    cluster: Cluster
    client_name = "client"
    _CLIENT_META_HTTP_CLIENT = ("dbl", "1")

    def perform_request(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: HttpHeaders | None = None,
        request_timeout: Any = None,
    ) -> NodeApiResponse:
        started = time.perf_counter()
        content_type = str(headers.get("content-type", "")) if headers is not None else ""
        status, response = cluster_call(self.cluster, method, target, body, content_type, self.client_name)
        payload = b"" if method == "HEAD" else json.dumps(response).encode()
        meta = ApiResponseMeta(
            status=status,
            http_version="1.1",
            headers=HttpHeaders({"content-type": "application/json", "x-elastic-product": "Elasticsearch"}),
            duration=time.perf_counter() - started,
            node=self.config,
        )
        return NodeApiResponse(meta, payload)


def node_class(cluster: Cluster, client: str) -> type[DoubleNode]:
    """A node class bound to ``cluster`` whose requests are recorded as sent by ``client``."""
    return type(
        f"DoubleNode_{re.sub(r'[^A-Za-z0-9]', '_', client)}", (DoubleNode,), {"cluster": cluster, "client_name": client}
    )


def client_options(cluster: Cluster, client: str = "client") -> dict[str, Any]:
    """Keyword arguments for ``elasticsearch.Elasticsearch`` that connect it to ``cluster``."""
    return {"node_class": node_class(cluster, client)}


__all__ = ["DoubleNode", "NodeConfig", "Recorded", "client_options", "cluster_call", "error_body", "node_class"]
