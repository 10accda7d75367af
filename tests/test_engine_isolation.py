"""One model's trouble stays that model's (issue 11, item 4): infinity is refused at upload naming the column, a
profile stored with a null edge (what infinity used to become) no longer stops the engine across restarts, a
clean re-upload works, and a model whose transforms or indicators fail is listed on /readyz and the dashboard
overview while the other models' indicators keep flowing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pyarrow as pa
import pytest
import yaml
from fastapi.testclient import TestClient

from sustain.api.app import create_app
from sustain.settings import Settings
from sustain.spec.loader import load_config_text
from sustain.synthetic import SyntheticModel
from tests.helpers import CHURN_YAML, put_parquet_reference, wait_for


def config(tmp_path: Path) -> Path:
    data = yaml.safe_load(CHURN_YAML)
    data["models"].append({"name": "broken", "features": {"x": "numeric"}, "plugins": ["sustain_no_such_plugin"]})
    path = tmp_path / "sustain.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


class Client(TestClient):
    """A test client whose engine runs only when the test steps it (after its first run at start-up)."""

    def __enter__(self) -> Client:
        super().__enter__()
        engine = self.app.state.sustain.engine  # type: ignore[attr-defined]
        wait_for(lambda: engine.stats.indicator_runs >= 1, what="the engine's first run at start-up")
        return self


def app(tmp_path: Path) -> Client:
    settings = Settings(
        store=f"duckdb:///{tmp_path / 'iso.duckdb'}",
        config=str(config(tmp_path)),
        transform_interval=3600,  # the next run is an hour away: the test steps the engine itself
        indicator_interval=3600,
    )
    return Client(create_app(settings))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    with app(tmp_path) as c:
        yield c


def churn_model() -> SyntheticModel:
    spec = load_config_text(CHURN_YAML).model("churn")
    assert spec is not None
    return SyntheticModel(spec, seed=3)


def csv(rows: list[str]) -> bytes:
    return ("age,income,plan\n" + "\n".join(rows) + "\n").encode()


def docs_of(client: TestClient, model: str) -> list[dict]:
    body = client.get(f"/v1/models/{model}/indicators", params={"limit": 10_000}).json()
    return list(body["indicators"])


def step(client: TestClient) -> None:
    client.app.state.sustain.engine.step()  # type: ignore[attr-defined]


def test_infinity_is_refused_at_upload_naming_the_column(client: TestClient) -> None:
    rows = [f"{20 + i % 50},{i % 3},pro" for i in range(200)] + ["30,-inf,pro"]
    r = client.put("/v1/models/churn/reference", params={"version": "1"}, content=csv(rows))
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["field"] == "income" and "infinite" in error["message"] and "row 201" in error["message"]
    assert client.get("/v1/models/churn/reference").json()["references"] == []  # nothing stored
    clean = client.put("/v1/models/churn/reference", params={"version": "1"}, content=csv(rows[:-1]))
    assert clean.status_code == 200, clean.text
    parquet = pa.table({"age": [1.0, float("inf")], "income": [1.0, 2.0]})
    refused = put_parquet_reference(client, "churn", "2", parquet)
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "age"


def test_a_profile_with_a_null_edge_no_longer_stops_the_engine(tmp_path: Path) -> None:
    """The state the bug left behind: a stored profile whose edge JSON wrote as null. Before, every transform run
    of every model failed on it (float(None)), across restarts; now the column is read as unbinned."""
    model = churn_model()
    with app(tmp_path) as c:
        rows = [f"{20 + i % 50},{i % 3},pro" for i in range(300)]
        assert c.put("/v1/models/churn/reference", params={"version": "1"}, content=csv(rows)).status_code == 200
        price = pa.table({"size": [float(i) for i in range(300)], "rooms": [float(i % 5) for i in range(300)]})
        assert put_parquet_reference(c, "price", "1", price).status_code == 200
        ctx = c.app.state.sustain  # type: ignore[attr-defined]
        windows = ctx.engine.windows
        profile = windows.get_profile("churn", "1")
        raw = orjson.loads(profile.to_json())
        raw["columns"]["f:income"]["edges"][0] = None  # what -inf became
        with ctx.store.transaction() as con:
            con.execute("UPDATE _profiles SET profile = ? WHERE model = 'churn'", [orjson.dumps(raw).decode()])
    with app(tmp_path) as c:  # a restart on the same store
        events = model.events(500)
        assert c.post("/v1/models/churn/events", json=events).status_code == 200
        assert c.post("/v1/models/price/events", json=[{"features": {"size": 3, "rooms": 2}}] * 50).status_code == 200
        step(c)
        failing = c.get("/readyz").json()["failing_models"]
        assert "churn" not in failing and "price" not in failing
        assert any(d["feature"] == "age" and d["indicator"] == "drift" for d in docs_of(c, "churn"))
        assert any(d["indicator"] == "drift" for d in docs_of(c, "price"))
        rows = [f"{20 + i % 50},{i % 7},basic" for i in range(300)]
        again = c.put("/v1/models/churn/reference", params={"version": "1"}, content=csv(rows))
        assert again.status_code == 200, again.text  # a clean re-upload works
        step(c)
        assert "churn" not in c.get("/readyz").json()["failing_models"]


def test_one_models_failure_is_recorded_on_it_and_the_others_carry_on(client: TestClient) -> None:
    model = churn_model()
    ref = model.reference(2000)
    assert put_parquet_reference(client, "churn", "1", pa.table(ref)).status_code == 200
    price = pa.table({"size": [float(i) for i in range(300)], "rooms": [float(i % 5) for i in range(300)]})
    assert put_parquet_reference(client, "price", "1", price).status_code == 200
    assert client.post("/v1/models/broken/events", json=[{"features": {"x": 1.0}}] * 10).status_code == 200
    assert client.post("/v1/models/churn/events", json=model.events(300)).status_code == 200
    step(client)

    ready = client.get("/readyz")
    assert ready.status_code == 200  # the service still collects for every model
    failing = ready.json()["failing_models"]
    assert list(failing) == ["broken"]
    (failure,) = failing["broken"]
    assert failure["stage"] == "indicators" and "sustain_no_such_plugin" in failure["error"]
    assert docs_of(client, "churn") and not docs_of(client, "broken")

    overview = {m["model"]: m for m in client.get("/v1/dashboard/overview").json()["models"]}
    assert overview["broken"]["failures"][0]["stage"] == "indicators"
    assert overview["churn"]["failures"] == [] and overview["churn"]["versions"]

    # Transforms that fail for one model (here its events table is gone) leave the others' running.
    ctx = client.app.state.sustain  # type: ignore[attr-defined]
    assert client.post("/v1/models/price/events", json=[{"features": {"size": 3, "rooms": 2}}] * 50).status_code == 200
    with ctx.store.transaction() as con:
        con.execute('DROP TABLE "ev:price"')
    before = len(docs_of(client, "churn"))
    assert client.post("/v1/models/churn/events", json=model.events(300)).status_code == 200
    step(client)
    failing = client.get("/readyz").json()["failing_models"]
    assert [f["stage"] for f in failing["price"]] == ["transforms"] and "ev:price" in failing["price"][0]["error"]
    assert len(docs_of(client, "churn")) >= before and "churn" not in failing
    step(client)
    assert client.get("/readyz").json()["failing_models"]["price"][0]["count"] == 2
