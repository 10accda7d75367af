"""The embedded engine (the default): one DuckDB file holds events, labels, references, windows, profiles,
indicator documents and alerts.

* ``store`` — :class:`DuckDBStore`, typed event tables per model and one group-commit writer;
* ``sql``, ``tables``, ``runner`` — transform plans compiled to SQL and run from checkpoints into window tables;
* ``sources`` — samples, history and joined labels for the indicators;
* ``documents``, ``alerts`` — indicator documents and alert episodes;
* ``engine`` — all of it wired into :class:`sustain.engine.Engine`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sustain.alerting.documents import AlertStore
    from sustain.engine import Engine
    from sustain.indicators.documents import IndicatorStore
    from sustain.settings import Settings


class DuckDBBackend:
    """``duckdb:///path/to/file.duckdb`` (or ``duckdb:///:memory:``)."""

    name = "duckdb"

    def __init__(self, uri: str) -> None:
        from sustain.backends.duckdb.store import DuckDBStore

        self.store = DuckDBStore(uri)

    def engine(self, **options: Any) -> Engine:
        from sustain.backends.duckdb.engine import embedded_engine

        return embedded_engine(self.store, **options)

    def indicators(self) -> IndicatorStore:
        from sustain.backends.duckdb.documents import DuckDBIndicators

        return DuckDBIndicators(self.store)

    def alert_store(self, settings: Settings) -> AlertStore:
        from sustain.backends.duckdb.alerts import DuckDBAlerts

        return DuckDBAlerts(self.store)

    def close(self) -> None:
        self.store.close()


__all__ = ["DuckDBBackend"]
