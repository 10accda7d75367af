"""Try an indicator on two files before deploying it: ``sustain indicators try TARGET REFERENCE CURRENT``.

The files go through the pipeline the conformance kit runs (:func:`sustain.indicators.checks.embedded_context`):
REFERENCE is profiled as an uploaded reference, CURRENT's rows become the events of one closed window (labels
joined from its ``label`` column), the transforms aggregate them in an in-memory embedded store, and the
indicator computes on that window exactly as the service would. The conformance checks then run on the
indicator, and the values on the files must be well formed too.

TARGET is ``package.module:Class``, ``path/to/file.py:Class`` (the current directory is importable, as with
``python -m``), or the name of a registered indicator (``drift``, or a plugin's entry point).

Without ``--spec`` the spec is read off REFERENCE's columns (:func:`infer_spec`): ``label`` is the label,
``prediction`` an output, numeric columns ``<output>.<class>`` sharing a prefix are class scores, every other
column a feature of its type.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from sustain.collector.reference import read_table as parse_table
from sustain.collector.reference import sniff_format, to_layout
from sustain.errors import ConfigError, PluginError, SustainError, ValidationError
from sustain.indicators.base import Indicator, IndicatorValue
from sustain.indicators.checks import assert_well_formed, embedded_context, yield_checks
from sustain.indicators.context import WindowContext
from sustain.indicators.registry import construct, indicators
from sustain.report.drift import kind_of
from sustain.report.read import DataReadError, open_source
from sustain.spec import ModelSpec
from sustain.spec.loader import load_config
from sustain.store.layout import Layout

TRIAL_MODEL = "try"
Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    message: str = ""


@dataclass
class Trial:
    """What trying an indicator on two files found."""

    indicator: Indicator
    spec: ModelSpec
    spec_source: str  # the spec file, or "inferred from <reference>"
    context: WindowContext
    values: list[IndicatorValue]
    checks: list[CheckResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


# -- the indicator ---------------------------------------------------------------------------------------------


def load_indicator(target: str, params: dict[str, Any]) -> Indicator:
    """The indicator ``target`` names, built with ``params``; :class:`ConfigError` says why one cannot be had."""
    if ":" not in target:
        try:
            cls = indicators.get(target)
        except SustainError as exc:
            raise ConfigError(f"{exc.message}; or name a class as package.module:Class or file.py:Class") from None
        return construct(cls, params, type_name=target, spec_id=target)
    where, _, attribute = target.rpartition(":")
    module = _import(where)
    found = getattr(module, attribute, None)
    if found is None:
        classes = [n for n, c in inspect.getmembers(module, inspect.isclass) if _is_plugin(c, module)]
        listed = ", ".join(classes) or "none"
        raise ConfigError(f"{where} has no {attribute!r}; the indicator classes it defines: {listed}")
    if not (isinstance(found, type) and issubclass(found, Indicator)):
        raise ConfigError(
            f"{target} is {_describe(found)}, not an Indicator: subclass sustain.indicators.Indicator and give it"
            " a compute(ctx) method"
        )
    if inspect.isabstract(found):
        missing = ", ".join(sorted(getattr(found, "__abstractmethods__", ()))) or "compute"
        raise ConfigError(f"{target} cannot be built: it does not define {missing}")
    return construct(found, params, type_name=getattr(found, "name", attribute), spec_id=attribute)


def _import(where: str) -> Any:
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise ConfigError(f"{where}: no such file")
        spec = importlib.util.spec_from_file_location(f"sustain_try_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"{where}: cannot be imported as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses and pickling look their module up by name
        _run_plugin_code(lambda: spec.loader.exec_module(module), f"importing {where}")  # type: ignore[union-attr]
        return module
    if str(Path.cwd()) not in sys.path and "" not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # like `python -m`: a module in the current directory is found
    try:
        return _run_plugin_code(lambda: importlib.import_module(where), f"importing {where}")
    except PluginError as exc:
        if isinstance(exc.__cause__, ModuleNotFoundError) and exc.__cause__.name in _parents(where):
            raise ConfigError(
                f"no module named {where!r} (looked in the current directory and the installed packages); "
                "install the plugin (pip install -e PATH) or name its file: path/to/file.py:Class"
            ) from None
        raise


def _parents(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[: i + 1]) for i in range(len(parts))}


def _is_plugin(cls: type, module: Any) -> bool:
    return issubclass(cls, Indicator) and cls is not Indicator and cls.__module__ == module.__name__


def _describe(obj: object) -> str:
    if isinstance(obj, type):
        return f"the class {obj.__qualname__}"
    return f"a {type(obj).__name__}"


def _run_plugin_code(work: Callable[[], Any], doing: str) -> Any:
    """``work()``, with whatever the plugin raises turned into a sentence naming the line it came from."""
    try:
        return work()
    except SustainError:
        raise
    except Exception as exc:
        raise PluginError(f"{doing}: {type(exc).__name__}: {exc}{_where(exc)}") from exc


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    mine = str(Path(__file__).resolve().parent.parent)
    outside = [f for f in frames if not f.filename.startswith(mine) and "importlib" not in f.filename]
    if not outside:
        return ""
    last = outside[-1]
    return f" (at {last.filename}:{last.lineno}, in {last.name})"


# -- the data ------------------------------------------------------------------------------------------------


def read_table(path: Path) -> pa.Table:
    """A whole data file, read as ``sustain reference upload`` reads it (Parquet, CSV or JSON); a glob or a
    folder of Parquet files as ``sustain drift`` reads it."""
    if path.is_file():
        try:
            body = path.read_bytes()
        except OSError as exc:
            raise ValidationError(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            return parse_table(body, sniff_format(body[:4], None, path.name))
        except SustainError as exc:
            raise ValidationError(f"{path}: {exc.message}") from None
    try:
        table = open_source(path).read()
    except DataReadError as exc:
        raise ValidationError(f"cannot read {path}: {exc}") from None
    decoded = [pa.field(f.name, f.type.value_type) if pa.types.is_dictionary(f.type) else f for f in table.schema]
    return table.cast(pa.schema(decoded))


def infer_spec(table: pa.Table, name: str = TRIAL_MODEL) -> ModelSpec:
    """A spec for a file's columns, when none is given.

    ``label`` is the label (a number with decimals: regression; otherwise classes); ``prediction`` an output of
    the same rule; two or more numeric columns ``<output>.<class>`` with one prefix are an output of class
    scores; every other column is a feature by its type (number, category, boolean); other types are left out.

    >>> t = pa.table({"age": [30.5], "plan": ["pro"], "proba.no": [0.2], "proba.yes": [0.8], "label": ["yes"]})
    >>> spec = infer_spec(t)
    >>> [(f.name, f.kind) for f in spec.features], [(o.name, o.kind, o.classes) for o in spec.outputs]
    ([('age', 'numeric'), ('plan', 'categorical')], [('proba', 'class_scores', ['no', 'yes'])])
    >>> spec.label.kind
    'class_label'
    """
    kinds = {f.name: kind_of(f.type) for f in table.schema}
    prefixes: dict[str, list[str]] = {}
    for column, kind in kinds.items():
        prefix, dot, cls = column.rpartition(".")
        if dot and prefix and cls and kind == "numeric":
            prefixes.setdefault(prefix, []).append(cls)
    scores = {p: classes for p, classes in prefixes.items() if len(classes) >= 2}
    in_scores = {f"{p}.{c}" for p, classes in scores.items() for c in classes}
    features: dict[str, Any] = {}
    outputs: dict[str, Any] = {p: {"kind": "class_scores", "classes": classes} for p, classes in scores.items()}
    label: dict[str, Any] | None = None
    for column, kind in kinds.items():
        if column in in_scores or kind is None:
            continue
        if column in ("label", "prediction"):
            regression = pa.types.is_floating(table.schema.field(column).type)
            described = {"kind": "regression" if regression else "class_label"}
            if column == "label":
                label = described
            else:
                outputs[column] = described
            continue
        features[column] = kind
    if not features:
        raise ValidationError(
            "the reference has no column to use as a feature (numbers, categories or booleans); "
            "pass --spec FILE to say what its columns are"
        )
    return ModelSpec.model_validate({"name": name, "features": features, "outputs": outputs, "label": label})


def load_spec(path: Path, model: str | None) -> ModelSpec:
    """The model ``model`` of a spec file (or its only model)."""
    models = load_config(path).models
    if model is None:
        if len(models) != 1:
            names = ", ".join(m.name for m in models)
            raise ConfigError(f"{path} holds {len(models)} models ({names}); choose one with --model")
        return models[0]
    for m in models:
        if m.name == model:
            return m
    raise ConfigError(f"{path} has no model {model!r}; it has {', '.join(m.name for m in models)}")


def events_of(spec: ModelSpec, table: pa.Table) -> tuple[list[dict[str, Any]], list[Any] | None]:
    """The rows of a file in the model's stored layout as logged events, and their labels (None: no label)."""
    layout = Layout.of(spec)
    values = {c.name: table.column(c.name).to_pylist() for c in layout.value_columns}
    events: list[dict[str, Any]] = []
    for i in range(table.num_rows):
        features = {c.key: values[c.name][i] for c in layout.feature_columns()}
        outputs: dict[str, Any] = {}
        for c in layout.output_columns():
            v = values[c.name][i]
            if c.cls is None:
                if v is not None:
                    outputs[c.key] = v
            elif v is not None:
                outputs.setdefault(c.key, {})[c.cls] = v
        events.append({"features": features, "outputs": outputs})
    labels = table.column("label").to_pylist() if "label" in table.column_names else None
    return events, labels


# -- the trial -----------------------------------------------------------------------------------------------


def try_indicator(
    indicator: Indicator,
    reference: Path,
    current: Path,
    *,
    spec: ModelSpec | None = None,
    spec_source: str | None = None,
    checks: bool = True,
    progress: Progress | None = None,
) -> Trial:
    """Compute ``indicator`` on the window CURRENT makes against REFERENCE, then run the conformance checks."""
    step = progress or (lambda label, done: None)
    step("reading the files", 0.0)
    ref_table, cur_table = read_table(reference), read_table(current)
    notes: list[str] = []
    if spec is None:
        spec, spec_source = infer_spec(ref_table), f"inferred from {reference}"
    _layout(spec, ref_table, reference, notes)  # its problems named after the file; the pipeline stores it as is
    events, labels = events_of(spec, _layout(spec, cur_table, current, notes))
    step("reading the files", 1.0)
    step("building the window", 0.0)
    ctx = embedded_context(spec, events, reference=ref_table, labels=labels)
    step("building the window", 1.0)
    values = _run_plugin_code(lambda: list(indicator.compute(ctx)), f"{type(indicator).__name__}.compute")
    bad = [v for v in values if not isinstance(v, IndicatorValue)]
    if bad:
        raise PluginError(f"{type(indicator).__name__}.compute yielded {type(bad[0]).__name__}, not IndicatorValue")
    results = [_check("values on these files are well formed", lambda: assert_well_formed(values))]
    if checks:
        chosen = list(yield_checks(indicator))
        for i, check in enumerate(chosen):
            step("conformance checks", i / len(chosen))
            results.append(_check(check.__name__, functools.partial(check, indicator)))
        step("conformance checks", 1.0)
    return Trial(indicator, spec, spec_source or "", ctx, values, results, notes)


def _layout(spec: ModelSpec, table: pa.Table, path: Path, notes: list[str]) -> pa.Table:
    try:
        parsed = to_layout(spec, table)
    except ValidationError as exc:
        raise ValidationError(f"{path}: {exc.message}", field=exc.field) from None
    if parsed.ignored_columns:
        notes.append(f"{path}: columns not in the spec, left out: {', '.join(parsed.ignored_columns)}")
    if parsed.missing_features:
        notes.append(f"{path}: features missing (all values missing): {', '.join(parsed.missing_features)}")
    return parsed.table


def _check(name: str, run: Callable[[], None]) -> CheckResult:
    try:
        run()
    except AssertionError as exc:
        return CheckResult(name, False, str(exc) or "failed")
    except Exception as exc:
        return CheckResult(name, False, f"raised {type(exc).__name__}: {exc}{_where(exc)}")
    return CheckResult(name, True)
