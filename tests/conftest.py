from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sustain.api.app import create_app
from sustain.backends.duckdb.store import DuckDBStore
from sustain.settings import Settings
from sustain.spec import ModelSpec
from sustain.spec.loader import load_config_text
from tests.graph_models import Registry, register_models, start_registry
from tests.helpers import CHURN_YAML, ServerProcess, write_spec
from tests.release_support import MlflowServer


@pytest.fixture
def churn_spec() -> ModelSpec:
    spec = load_config_text(CHURN_YAML).model("churn")
    assert spec is not None
    return spec


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    return write_spec(tmp_path)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    s = DuckDBStore(f"duckdb:///{tmp_path / 'test.duckdb'}")
    for spec in load_config_text(CHURN_YAML).models:
        s.put_spec(spec)
    yield s
    s.close()


def make_client(tmp_path: Path, **settings: object) -> TestClient:
    config = write_spec(tmp_path)
    app = create_app(Settings(store=f"duckdb:///{tmp_path / 'api.duckdb'}", config=str(config), **settings))  # type: ignore[arg-type]
    return TestClient(app)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with make_client(tmp_path) as c:
        yield c


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path, write_spec(tmp_path)) as s:
        yield s


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One real MLflow tracking server (sqlite, proxied artifacts, webhooks to loopback) for the whole session;
    its start (20-60 s on a busy machine) is paid once."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def graph_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A real MLflow server holding the inference-graph tests' three churn models (about a minute to set up)."""
    registry = start_registry(tmp_path_factory.mktemp("mlflow"))
    try:
        register_models(registry.url)
        yield registry
    finally:
        registry.stop()
