"""The stages one release goes through, from ``registered`` to ``deployed`` (a release candidate).

Each stage is recorded before it starts and when it ends, with its outcome, a sentence, and the checks it ran;
the release is saved and its MLflow version tags are updated after every stage. A stage that finds the model at
fault ends the release ``rejected``; one that finds the registry or the target at fault ends it ``failed`` (run
it again later). Either way the champion is never touched: only ``deployed`` sets an alias, ``challenger``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from sustain.deploy_pipeline.release.datasets import evaluation_source, fetch, read_frame, training_source
from sustain.deploy_pipeline.release.errors import RegistryUnavailable, TargetFailed
from sustain.deploy_pipeline.release.gates import GateInputs, ProbeRunner, label_column, run_gates
from sustain.deploy_pipeline.release.mlflow_registry import MlflowRegistry, RunInfo, VersionInfo
from sustain.deploy_pipeline.release.model_folder import ModelFolder
from sustain.deploy_pipeline.release.monitoring import Monitoring, infer_spec, reference_table
from sustain.deploy_pipeline.release.package import Bundle, package
from sustain.deploy_pipeline.release.standards import check_standards
from sustain.deploy_pipeline.release.targets.base import Deployment, Target
from sustain.errors import NotFound, SustainError
from sustain.spec import ModelSpec
from sustain.spec.release import ReleaseSettings
from sustain.store.releases import Check, Release, ReleaseStore, StageRecord, State, Transition, now

log = logging.getLogger("sustain.release")
MAX_REFERENCE_ROWS = 50_000


class Rejected(SustainError):
    """The version broke a standard or a test."""

    code = "release_rejected"
    http_status = 422


@dataclass
class Work:
    """What a run gathers on its way, for the stages after the one that found it."""

    release: Release
    settings: ReleaseSettings
    spec: ModelSpec | None
    bundle: Bundle
    info: VersionInfo | None = None
    run: RunInfo | None = None
    folder: ModelFolder | None = None
    training: Path | None = None
    holdout: Path | None = None
    reference_predictions: Path | None = None
    champion: str | None = None
    deployment: Deployment | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Stage:
    """Records one stage around its work: ``with Stage(pipeline, work, State.CHECKED) as stage: ...``."""

    def __init__(self, pipeline: ReleasePipeline, work: Work, state: State) -> None:
        self.pipeline = pipeline
        self.work = work
        self.state = state
        self.record = StageRecord(state, now())
        self.reason = ""
        self.checks: list[Check] = []

    def __enter__(self) -> Stage:
        self.work.release.stages.append(self.record)
        self.pipeline.save(self.work.release)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        """Record the outcome; an error ends the release (rejected or failed) and goes no further."""
        record, release = self.record, self.work.release
        record.ended_at, record.checks = now(), self.checks
        if exc is None:
            record.outcome, record.reason = "passed", self.reason
            release.move(self.state, self.reason)
            self.pipeline.save(release, transition=True)
            return False
        if not isinstance(exc, Exception):
            return False  # KeyboardInterrupt and the like go on
        if not isinstance(exc, SustainError):
            log.exception("the %s stage of %s %s failed unexpectedly", self.state, release.model, release.version)
        end = State.REJECTED if isinstance(exc, Rejected | NotFound) else State.FAILED
        message = exc.message if isinstance(exc, SustainError) else f"unexpected error: {type(exc).__name__}: {exc}"
        record.outcome, record.reason = "failed", message
        release.move(end, f"{self.state.value} stage: {message}")
        self.pipeline.save(release, transition=True)
        return True


class ReleasePipeline:
    """Runs the stages of one release with the parts it is given."""

    def __init__(
        self,
        store: ReleaseStore,
        registry: MlflowRegistry,
        monitoring: Monitoring,
        target_of: Callable[[str], Target],
        workdir: Path,
        *,
        base_dir: Path | None = None,
        gateway_url: str | None = None,
        make_candidate: Callable[[Work], Check] | None = None,
        warm_probe: bool = True,
    ) -> None:
        self.store = store
        self.registry = registry
        self.monitoring = monitoring
        self.target_of = target_of
        self.workdir = workdir
        self.base_dir = base_dir or Path.cwd()
        self.gateway_url = gateway_url
        self.make_candidate = make_candidate
        self._tagger = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sustain-release-tags")
        self.probe = ProbeRunner(warm=warm_probe)
        self._tags_sent: dict[tuple[str, str], dict[str, str]] = {}

    def bundle(self, model: str, version: str) -> Bundle:
        return Bundle(self.workdir / model / version)

    def save(self, release: Release, transition: bool = False) -> None:
        change = (
            Transition(release.model, release.version, release.state, release.updated_at, release.reason)
            if transition
            else None
        )
        self.store.save(release, change)
        if transition:
            self.mirror(release)

    def mirror(self, release: Release) -> None:
        """Copy the state and the checks to the version's MLflow tags, in order, from a thread of its own (a
        promotion does not wait for tags, and a tag that cannot be set is not worth a failure)."""
        tags = {"sustain.stage": release.state.value, "sustain.reason": release.reason[:500]}
        for stage in release.stages:
            for check in stage.checks:
                tags[f"sustain.check.{check.name}"] = check.tag()
        key = (release.registered_model, release.version)
        sent = self._tags_sent.setdefault(key, {})
        changed = {k: v for k, v in tags.items() if sent.get(k) != v}
        if changed:
            sent.update(changed)
            self._tagger.submit(self._set_tags, key, changed)

    def _set_tags(self, key: tuple[str, str], tags: dict[str, str]) -> None:
        try:
            self.registry.set_tags(key[0], key[1], tags)
        except (SustainError, OSError) as exc:
            log.warning("could not tag %s version %s in MLflow: %s", key[0], key[1], exc)
            self._tags_sent.pop(key, None)

    def flush_tags(self, timeout: float = 30.0) -> None:
        """Wait until every tag asked for so far is set (tests, and before closing)."""
        self._tagger.submit(lambda: None).result(timeout)

    def close(self) -> None:
        self._tagger.shutdown(wait=True, cancel_futures=False)
        self.probe.close()

    # -- the stages --------------------------------------------------------------------------------
    def run(self, work: Work) -> Release:
        """Take ``work.release`` (registered) as far as it goes: deployed, rejected or failed.

        Once the standards are met, the target prepares the version (the local target starts its scoring server)
        while the tests and the packaging run; a version that goes no further is retired again."""
        release = work.release
        for step in (self._checked, self._tested, self._packaged, self._deployed):
            step(work)
            if release.state in (State.REJECTED, State.FAILED):
                break
            if release.state == State.CHECKED:
                self._prepare(work)
        if release.state != State.DEPLOYED and work.extra.get("prepared"):
            try:
                self.target_of(release.target).retire(release.model, release.version)
            except SustainError as exc:
                log.error("could not stop %s version %s: %s", release.model, release.version, exc.message)
        return release

    def _prepare(self, work: Work) -> None:
        release = work.release
        try:
            self.target_of(release.target).prepare(release.model, release.version, work.bundle)
            work.extra["prepared"] = True
        except SustainError as exc:  # the deployed stage will say it again, in its place
            log.warning("preparing %s %s failed: %s", release.model, release.version, exc.message)

    def _checked(self, work: Work) -> None:
        release = work.release
        with Stage(self, work, State.CHECKED) as stage:
            self.registry.ping()
            work.info = self.registry.version(release.registered_model, release.version)
            release.run_id = work.info.run_id
            work.run = self.registry.run(work.info.run_id) if work.info.run_id else None
            model_dir = self.registry.download_model(release.registered_model, release.version, work.bundle.model)
            work.folder = ModelFolder(model_dir)
            training = training_source(work.run, work.settings)
            stage.checks = check_standards(work.folder, work.run, work.settings, training)
            work.extra["training_source"] = training
            _verdict(stage, "standard")
            stage.reason = f"{len(stage.checks)} standards met"

    def _tested(self, work: Work) -> None:
        release, settings = work.release, work.settings
        with Stage(self, work, State.TESTED) as stage:
            assert work.folder is not None
            data = work.bundle.root / "data"
            training = work.extra.get("training_source")
            if training is not None:
                work.training = self._reference_sample(fetch(self.registry, training, data / "training"), data)
            holdout = evaluation_source(work.run, settings)
            if holdout is not None:
                work.holdout = fetch(self.registry, holdout, data / "holdout")
            champion_folder = None
            if work.champion is not None and work.champion != release.version:
                champion_folder = self._champion_folder(release, work.champion)
            inputs = GateInputs(
                folder=work.folder,
                settings=settings,
                workdir=work.bundle.root / "tests",
                spec=work.spec,
                champion=champion_folder,
                champion_version=work.champion,
                holdout=work.holdout,
                training=work.training,
                tests=self._test_paths(work),
            )
            results = run_gates(inputs, self.probe)
            stage.checks = results.checks
            work.reference_predictions = results.reference_predictions
            _verdict(stage, "test")
            ran = [c.name for c in stage.checks if not c.skipped]
            stage.reason = f"passed {', '.join(ran)}"

    def _packaged(self, work: Work) -> None:
        release = work.release
        with Stage(self, work, State.PACKAGED) as stage:
            assert work.folder is not None
            if work.spec is None:
                work.spec = infer_spec(
                    release.model, work.folder.signature_inputs() or [], work.folder.signature_outputs()
                )
                work.extra["inferred_spec"] = True
            uri = self.registry.call(
                "locating the model",
                lambda: self.registry.client.get_model_version_download_uri(release.registered_model, release.version),
            )
            stage.checks = package(work.bundle, release.registered_model, release.version, work.spec, uri)
            failed = [c for c in stage.checks if not c.ok]
            if failed:
                raise TargetFailed("; ".join(c.sentence() for c in failed))
            release.bundle = str(work.bundle.root)
            stage.reason = f"bundle in {work.bundle.root}"

    def _deployed(self, work: Work) -> None:
        release = work.release
        with Stage(self, work, State.DEPLOYED) as stage:
            assert work.spec is not None
            target = self.target_of(release.target)
            work.deployment = target.deploy(release.model, release.version, work.bundle)
            release.endpoint = work.deployment.endpoint
            try:
                stage.checks.append(Check("serving", True, f"{work.deployment.endpoint} ({work.deployment.detail})"))
                stage.checks.append(self._attach_monitoring(work))
                if self.make_candidate is not None:
                    stage.checks.append(self.make_candidate(work))
            except BaseException:
                target.retire(release.model, release.version)
                raise
            stage.reason = stage.checks[-1].reason

    # -- helpers ----------------------------------------------------------------------------------
    def _reference_sample(self, path: Path, data: Path) -> Path:
        """The training data, sampled (seeded) to at most MAX_REFERENCE_ROWS rows, as Parquet."""
        table = read_frame(path)
        if table.num_rows > MAX_REFERENCE_ROWS:
            rows = sorted(random.Random(0).sample(range(table.num_rows), MAX_REFERENCE_ROWS))
            table = table.take(pa.array(rows))
        out = data / "reference.parquet"
        pq.write_table(table, out)
        return out

    def _champion_folder(self, release: Release, champion: str) -> ModelFolder:
        local = self.bundle(release.model, champion).model
        if (local / "MLmodel").is_file():
            return ModelFolder(local)
        into = self.workdir / release.model / "_champion" / champion
        try:
            return ModelFolder(self.registry.download_model(release.registered_model, champion, into))
        except NotFound as exc:
            raise RegistryUnavailable(f"the champion (version {champion}) cannot be downloaded: {exc.message}") from exc

    def _test_paths(self, work: Work) -> list[Path]:
        paths = []
        for entry in work.settings.tests:
            if entry.startswith("artifact:"):
                if work.release.run_id is None:
                    raise Rejected(f"release.tests names {entry} but the version has no run")
                name = entry.removeprefix("artifact:").strip("/")
                into = work.bundle.root / "model_tests" / Path(name).name
                uri = f"runs:/{work.release.run_id}/{name}"
                paths.append(self.registry.download(uri, into, f"the model's tests {entry}"))
            else:
                path = Path(entry)
                paths.append(path if path.is_absolute() else self.base_dir / path)
        return paths

    def _attach_monitoring(self, work: Work) -> Check:
        release, spec = work.release, work.spec
        assert spec is not None
        if work.extra.get("inferred_spec") and self.monitoring.spec(spec.name) is None:
            self.monitoring.register(spec)
        if work.training is None:
            return Check(
                "monitoring",
                True,
                "monitoring registered without a reference (no training data): upload one to measure drift",
            )
        predictions = None
        if work.reference_predictions is not None:
            predictions = orjson.loads(work.reference_predictions.read_bytes())
        table = reference_table(spec, read_frame(work.training), predictions, label_column(work.settings))
        rows = self.monitoring.attach_reference(spec.name, release.version, table)
        return Check("monitoring", True, f"monitoring attached with a reference of {rows:,} training rows")


def _verdict(stage: Stage, what: str) -> None:
    failed = [c for c in stage.checks if not c.ok]
    if failed:
        names = ", ".join(c.name for c in failed)
        detail = "; ".join(c.sentence() for c in failed)
        raise Rejected(f"failed {what}{'s' if len(failed) > 1 else ''} {names}: {detail}")
