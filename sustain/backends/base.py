"""What a storage backend provides: its store, the engine that runs monitor specs on it, and its stores of
derived documents.

A backend is registered by URI scheme (see :mod:`sustain.backends`). The service asks it for everything it
needs, so a backend from a plugin gets the same engine, alerting and dashboards as the built-in ones::

    class MyBackend:
        name = "mine"

        def __init__(self, uri: str) -> None:
            self.store = MyStore(uri)

        def engine(self, **options): ...        # an Engine built from this backend's parts, or None
        def indicators(self): ...               # where indicator documents are kept
        def alert_store(self, settings): ...    # where alert episodes and silences are kept
        def close(self) -> None: ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from sustain.alerting.documents import AlertStore
    from sustain.engine import Engine
    from sustain.indicators.documents import IndicatorStore
    from sustain.settings import Settings
    from sustain.store.base import Store


@runtime_checkable
class Backend(Protocol):
    """One storage engine, opened from a URI."""

    name: str

    @property
    def store(self) -> Store:
        """Events, labels, references and specs."""
        ...

    def engine(self, **options: Any) -> Engine:
        """The engine over this backend (options: ``transform_interval``, ``indicator_interval``, ``clock``...)."""
        ...

    def indicators(self) -> IndicatorStore:
        """Where indicator documents are read and written."""
        ...

    def alert_store(self, settings: Settings) -> AlertStore:
        """Where alert episodes and silences are kept."""
        ...

    def close(self) -> None: ...
