"""The Elasticsearch engine: events in data streams, windows as continuous pivot transforms, indicator
documents in an index; the same Python indicators on top. Everything Elasticsearch lives here:

* ``config``, ``client``, ``responses`` — connection settings, the official client wrapped, response parsing;
* ``store``, ``bodies``, ``mappings`` — the Store over data streams, index templates, ILM and mappings;
* ``transforms``, ``windows``, ``windows_bodies`` — transform plans compiled to pivot transforms, and their
  outputs read back as windows;
* ``sources``, ``documents`` — samples, history, labels and indicator documents;
* ``engine`` — all of it wired into :class:`sustain.engine.Engine`;
* ``elastalert``, ``kibana``, ``kibana_lens`` — the ElastAlert2 rules and Kibana saved objects exports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sustain.alerting.documents import AlertStore
    from sustain.engine import Engine
    from sustain.indicators.documents import IndicatorStore
    from sustain.settings import Settings


class ElasticsearchBackend:
    """``elasticsearch+http://host:9200`` or ``elasticsearch+https://user:pass@host:9200``."""

    name = "elasticsearch"

    def __init__(self, uri: str) -> None:
        from sustain.backends.elasticsearch.store import ElasticsearchStore

        self.store = ElasticsearchStore(uri)
        self._closers: list[Any] = []

    def engine(self, **options: Any) -> Engine:
        from sustain.backends.elasticsearch.engine import elasticsearch_engine

        return elasticsearch_engine(self.store, **options)

    def indicators(self) -> IndicatorStore:
        from sustain.backends.elasticsearch.documents import ESIndicators

        return ESIndicators(self.store)

    def alert_store(self, settings: Settings) -> AlertStore:
        """Alert episodes are few and local to one service: a small embedded file beside it (at scale,
        ElastAlert2 watches the indicator index and calls back through ``/v1/hooks``)."""
        from sustain.backends.duckdb.alerts import DuckDBAlerts
        from sustain.backends.duckdb.store import DuckDBStore

        local = DuckDBStore(settings.alert_store)
        self._closers.append(local)
        return DuckDBAlerts(local)

    def close(self) -> None:
        for closer in self._closers:
            closer.close()
        self._closers.clear()
        self.store.close()


__all__ = ["ElasticsearchBackend"]
