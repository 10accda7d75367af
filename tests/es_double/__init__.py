"""An Elasticsearch 8.19 double for offline tests: the official client over an in-memory cluster.

``Cluster()`` holds indices, data streams, templates, pipelines and continuous pivot transforms;
``Elasticsearch(hosts, **cluster.client_options("replica-1"))`` talks to it through a custom transport node
class (no patching). See :mod:`tests.es_double.cluster` for what it models and where it is simpler.
"""

from __future__ import annotations

from tests.es_double.cluster import Cluster
from tests.es_double.node import Recorded

__all__ = ["Cluster", "Recorded"]
