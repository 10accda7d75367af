"""The monitor spec: the single source of truth for what a model sees and says.

A spec file (``sustain.yaml``) holds one or more models::

    models:
      - name: churn
        features:
          age: {kind: numeric, range: [18, 100]}
          plan: {kind: categorical, categories: [basic, pro]}
          active: boolean
        outputs:
          prediction: {kind: class_label, classes: [stay, churn]}
          proba: {kind: class_scores, classes: [stay, churn]}
        label: {kind: class_label, classes: [stay, churn]}
        windows: [1m, 1h]

Both engines (embedded DuckDB and Elasticsearch) compile the same spec. Load a
file with :func:`sustain.spec.loader.load_config`, which names the line of every
problem.

>>> spec = ModelSpec.model_validate({"name": "churn", "features": {"age": "numeric"}})
>>> spec.features[0].kind, spec.window_seconds()
('numeric', [3600.0])
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from sustain.durations import format_duration, parse_duration
from sustain.spec.alerts import ActionSpec, AlertRule, Threshold, conditions
from sustain.spec.release import ReleaseSettings
from sustain.spec.secrets import EnvPolicy, env_references

FeatureKind = Literal["numeric", "categorical", "boolean", "text", "embedding"]
OutputKind = Literal["class_label", "class_scores", "probability", "regression"]
LabelKind = Literal["class_label", "regression"]

GRAPH_NODE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
MODEL_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")  # always fullmatch: "$" lets a trailing newline in
COLUMN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_ .:/()\[\]-]{0,127}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RESERVED_COLUMNS = frozenset({"prediction", "label"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_column_name(name: str, what: str) -> str:
    if not COLUMN_NAME.fullmatch(name) or name != name.strip():
        raise ValueError(
            f"{what} name {name!r} must be 1-128 characters: letters, digits, and _ . : / ( ) [ ] - or space, "
            "not starting with a symbol or space"
        )
    return name


def _check_classes(classes: list[str] | None) -> list[str] | None:
    if classes is None:
        return None
    if len(classes) < 2:
        raise ValueError("classes must list at least two classes")
    if len(set(classes)) != len(classes):
        duplicates = sorted({c for c in classes if classes.count(c) > 1})
        raise ValueError(f"classes must be unique; repeated: {', '.join(duplicates)}")
    return classes


def _as_str_list(value: Any) -> Any:
    """Category and class lists may be written with numbers or booleans in YAML."""
    if isinstance(value, list):
        return [str(v).lower() if isinstance(v, bool) else str(v) for v in value]
    return value


StrList = Annotated[list[str], BeforeValidator(_as_str_list)]


class Feature(_Strict):
    """One model input."""

    name: str
    kind: FeatureKind
    description: str = ""
    range: tuple[float, float] | None = None
    categories: StrList | None = None
    dim: int | None = Field(default=None, ge=1, le=4096, description="embedding dimension")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_column_name(v, "feature")

    @model_validator(mode="after")
    def _kind_options(self) -> Feature:
        if self.range is not None:
            if self.kind != "numeric":
                raise ValueError(f"range applies to numeric features, not {self.kind}")
            low, high = self.range
            if not (math.isfinite(low) and math.isfinite(high)) or low > high:
                raise ValueError(f"range must be [low, high] with finite low <= high, got [{low}, {high}]")
        if self.categories is not None:
            if self.kind != "categorical":
                raise ValueError(f"categories apply to categorical features, not {self.kind}")
            if not self.categories:
                raise ValueError("categories, when given, must not be empty")
            if len(set(self.categories)) != len(self.categories):
                raise ValueError("categories must be unique")
        if self.kind == "embedding" and self.dim is None:
            raise ValueError("an embedding feature needs dim (its length)")
        if self.kind != "embedding" and self.dim is not None:
            raise ValueError(f"dim applies to embedding features, not {self.kind}")
        return self


class Output(_Strict):
    """One thing the model says.

    ``class_label`` is the predicted class; ``class_scores`` one score per class
    (sent as a list in class order or a {class: score} object; matched to the
    label's classes by name); ``probability`` the score of the label's
    ``positive_class`` (the last class when none is named); ``regression`` a number.
    """

    name: str
    kind: OutputKind
    classes: StrList | None = None
    description: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_column_name(v, "output")

    @field_validator("classes")
    @classmethod
    def _classes(cls, v: list[str] | None) -> list[str] | None:
        return _check_classes(v)

    @model_validator(mode="after")
    def _needs_classes(self) -> Output:
        if self.kind == "class_scores" and not self.classes:
            raise ValueError("class_scores needs classes (the order scores are sent in)")
        if self.kind in ("regression", "probability") and self.classes:
            raise ValueError(f"classes do not apply to a {self.kind} output")
        return self


class Label(_Strict):
    """The ground truth that arrives later, joined to events by request or event id."""

    kind: LabelKind
    classes: StrList | None = None
    positive_class: str | None = Field(
        default=None,
        description="the positive class of binary metrics and estimates, and the class a probability output is "
        "the score of (default: the last class)",
    )

    @field_validator("positive_class", mode="before")
    @classmethod
    def _positive_as_str(cls, v: Any) -> Any:
        return _as_str_list([v])[0] if v is not None else None

    @field_validator("classes")
    @classmethod
    def _classes(cls, v: list[str] | None) -> list[str] | None:
        return _check_classes(v)

    @model_validator(mode="after")
    def _positive(self) -> Label:
        if self.kind == "regression" and (self.classes or self.positive_class):
            raise ValueError("classes and positive_class do not apply to a regression label")
        if self.positive_class is not None and self.classes and self.positive_class not in self.classes:
            raise ValueError(f"positive_class {self.positive_class!r} is not one of classes")
        return self


class ReferenceSettings(_Strict):
    """How reference profiles are built when reference data is uploaded."""

    bins: int = Field(default=20, ge=2, le=1000, description="quantile bins per numeric feature")
    max_categories: int = Field(default=100, ge=2, le=10_000)
    sample_size: int = Field(default=5000, ge=100, le=1_000_000, description="bounded sample kept")
    labelled_sample_size: int = Field(
        default=50_000,
        ge=0,
        le=1_000_000,
        description="labelled reference rows kept (outputs and label only) to recalibrate scores for "
        "estimated_performance",
    )
    path: str | None = Field(default=None, description="file loaded at start-up if no reference is stored")
    version: str | None = None


class Retention(_Strict):
    """How long the embedded engine keeps what grows with traffic.

    ``events``: raw events (and labels) whose time is older than this are deleted once every transform has
    folded them into the window aggregates; aggregates, indicator documents and alerts are kept. ``dedup``: an
    event id that arrives again within this long of its first arrival is stored once (the dedup index holds
    the ids of this long of traffic, about 100 bytes each, and no more).

    >>> Retention().events, Retention().dedup
    ('30d', '1h')
    """

    events: str = Field(default="30d", description="raw events and labels older than this are deleted")
    dedup: str = Field(default="1h", description="a repeated event id is recognised for this long after it arrived")

    @field_validator("events", "dedup")
    @classmethod
    def _duration(cls, v: str) -> str:
        if parse_duration(v) < 1:
            raise ValueError(f"{v!r} is shorter than one second")
        return format_duration(parse_duration(v))

    @model_validator(mode="after")
    def _dedup_within_events(self) -> Retention:
        if parse_duration(self.dedup) > parse_duration(self.events):
            raise ValueError("dedup may not be longer than events: deleted events cannot be told apart from new ones")
        return self

    @property
    def events_seconds(self) -> float:
        return parse_duration(self.events)

    @property
    def dedup_seconds(self) -> float:
        return parse_duration(self.dedup)


class IndicatorSpec(_Strict):
    """One indicator to compute; ``type`` names a registered indicator."""

    type: str
    name: str | None = Field(default=None, description="defaults to type; must be unique per model")
    features: list[str] | None = Field(default=None, description="default: every feature it applies to")
    windows: list[str] | None = Field(default=None, description="default: every window of the model")
    params: dict[str, Any] = Field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.name or self.type


class CloudEventsMapping(_Strict):
    """How CloudEvents from Seldon or KServe map onto this model.

    In a Seldon graph every node with a logger sends its own request/response pair, all under the deployment's
    ``Ce-Inferenceservicename``; ``node`` names the one this model follows (its ``Ce-Modelid``). Each node is
    then monitored as its own model::

        - name: churn-prep
          cloudevents: {inference_service: churn, node: prep}
        - name: churn
          cloudevents: {inference_service: churn, node: score}

    Without ``node`` the model takes every node of its service, which suits a single-model deployment.
    """

    inference_service: str | None = Field(
        default=None, description="Ce-Inferenceservicename that belongs to this model (default: model name)"
    )
    node: str | None = Field(
        default=None, description="the graph node (Ce-Modelid) this model follows (default: every node)"
    )
    version_from: Literal["endpoint", "modelid", "default"] = "endpoint"
    join_timeout: str = "30s"

    @field_validator("join_timeout")
    @classmethod
    def _timeout(cls, v: str) -> str:
        parse_duration(v)
        return v

    @field_validator("node")
    @classmethod
    def _node(cls, v: str | None) -> str | None:
        if v is not None and not GRAPH_NODE.fullmatch(v):
            raise ValueError(f"node {v!r} must be a graph node name: lowercase letters, digits and '-', at most 63")
        return v

    @model_validator(mode="after")
    def _version_source(self) -> CloudEventsMapping:
        if self.node is not None and self.version_from == "modelid":
            raise ValueError(
                f"version_from: modelid would make every version {self.node!r}, the node this model follows; "
                "use endpoint (the predictor) or default"
            )
        return self

    def follows(self, model: str) -> tuple[str, str | None]:
        """(inference service, node) of the CloudEvents this model takes."""
        return self.inference_service or model, self.node


def _mapping_to_list(value: Any) -> Any:
    """Accept ``{name: kind}`` or ``{name: {kind: ...}}`` as well as a list of objects."""
    if isinstance(value, dict):
        items = []
        for name, body in value.items():
            if isinstance(body, str):
                items.append({"name": name, "kind": body})
            elif isinstance(body, dict):
                items.append({"name": name, **body})
            else:
                items.append({"name": name, "kind": body})
        return items
    return value


class ModelSpec(_Strict):
    """Everything sustain needs to know about one model."""

    name: str
    description: str = ""
    versions: list[str] = Field(default_factory=list)
    default_version: str | None = None
    features: Annotated[list[Feature], BeforeValidator(_mapping_to_list)] = Field(min_length=1)
    outputs: Annotated[list[Output], BeforeValidator(_mapping_to_list)] = Field(default_factory=list)
    label: Label | None = None
    windows: list[str] = Field(default_factory=lambda: ["1h"])
    late_arrival: str = Field(
        default="5s",
        description="how long after a window ends its events may still arrive: the window is final, and alert "
        "rules judge it, once its end plus this delay has passed",
    )
    reference: ReferenceSettings = Field(default_factory=ReferenceSettings)
    indicators: list[IndicatorSpec] | None = Field(
        default=None, description="default: the built-in set that fits the model"
    )
    plugins: list[str] = Field(default_factory=list, description="modules that register indicator plugins")
    alerts: list[AlertRule] = Field(default_factory=list)
    actions: dict[str, ActionSpec] = Field(default_factory=dict)
    unknown_features: Literal["keep", "reject"] = Field(
        default="keep", description="keep undeclared features in the event's extra field, or reject the event"
    )
    cloudevents: CloudEventsMapping = Field(default_factory=CloudEventsMapping)
    release: ReleaseSettings = Field(default_factory=ReleaseSettings)
    retention: Retention = Field(default_factory=Retention)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not MODEL_NAME.fullmatch(v):
            raise ValueError(
                f"model name {v!r} must be 1-63 lowercase letters, digits, '_' or '-', starting with a letter "
                "or digit (it names indices and URLs)"
            )
        return v

    @field_validator("versions", mode="before")
    @classmethod
    def _versions(cls, v: Any) -> Any:
        return _as_str_list(v)

    @field_validator("default_version", mode="before")
    @classmethod
    def _default_version(cls, v: Any) -> Any:
        return None if v is None else str(v)

    @field_validator("late_arrival")
    @classmethod
    def _late_arrival(cls, v: str) -> str:
        parse_duration(v)
        return v

    @field_validator("windows")
    @classmethod
    def _windows(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one window is needed, e.g. [1h]")
        seconds = []
        for w in v:
            s = parse_duration(w)
            if s < 1:
                raise ValueError(f"window {w!r} is shorter than one second")
            if 86400 % s != 0 and s % 86400 != 0:
                raise ValueError(f"window {w!r} must divide a day evenly (or be whole days)")
            seconds.append(s)
        if len(set(seconds)) != len(seconds):
            raise ValueError("windows must be distinct")
        return [format_duration(s) for s in seconds]

    @model_validator(mode="after")
    def _cross_checks(self) -> ModelSpec:
        names = [f.name for f in self.features] + [o.name for o in self.outputs]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"feature and output names must be unique; repeated: {', '.join(repeated)}")
        if self.default_version is not None and self.versions and self.default_version not in self.versions:
            raise ValueError(f"default_version {self.default_version!r} is not one of versions")
        ids = [i.id for i in self.indicators or []]
        clashes = sorted({i for i in ids if ids.count(i) > 1})
        if clashes:
            raise ValueError(f"indicator names must be unique; give each a name: {', '.join(clashes)}")
        rules = [r.name for r in self.alerts]
        repeated_rules = sorted({r for r in rules if rules.count(r) > 1})
        if repeated_rules:
            raise ValueError(f"alert rule names must be unique; repeated: {', '.join(repeated_rules)}")
        for rule in self.alerts:
            for action in rule.actions:
                if action not in self.actions:
                    known_actions = ", ".join(sorted(self.actions)) or "none"
                    raise ValueError(
                        f"alert {rule.name!r} uses action {action!r}, which is not under actions: "
                        f"(known: {known_actions})"
                    )
            windows = [rule.window] + [c.window for c in conditions(rule.when) if isinstance(c, Threshold)]
            for w in windows:
                if w is not None and format_duration(parse_duration(w)) not in self.windows:
                    raise ValueError(f"alert {rule.name!r} names window {w!r}, not one of {self.windows}")
        known = set(names)
        for ind in self.indicators or []:
            for feature in ind.features or []:
                if feature not in known:
                    raise ValueError(f"indicator {ind.id!r} names unknown feature or output {feature!r}")
            for window in ind.windows or []:
                if format_duration(parse_duration(window)) not in self.windows:
                    raise ValueError(f"indicator {ind.id!r} names window {window!r}, not one of {self.windows}")
        return self

    # -- convenience -------------------------------------------------------------------------
    @property
    def effective_default_version(self) -> str:
        return self.default_version or (self.versions[0] if self.versions else "1")

    def window_seconds(self) -> list[float]:
        return [parse_duration(w) for w in self.windows]

    @property
    def late_arrival_seconds(self) -> float:
        return parse_duration(self.late_arrival)

    def feature(self, name: str) -> Feature | None:
        for f in self.features:
            if f.name == name:
                return f
        return None

    def output(self, name: str) -> Output | None:
        for o in self.outputs:
            if o.name == name:
                return o
        return None


def check_env_references(spec: ModelSpec, policy: EnvPolicy) -> None:
    """ValueError naming the first action option that reads an environment variable ``policy`` does not allow."""
    for name, action in spec.actions.items():
        for variable in env_references(action.options):
            if not policy.allows(variable):
                raise ValueError(
                    f"action {name!r} of model {spec.name!r} reads ${{{variable}}}, which actions may not read; "
                    f"use {policy.describe()}"
                )


class MonitorConfig(_Strict):
    """The contents of a ``sustain.yaml`` file."""

    models: list[ModelSpec] = Field(min_length=1)
    action_env: list[str] = Field(
        default_factory=list,
        description="environment variables action options may read as ${NAME}, besides SUSTAIN_SECRET_*",
    )

    @field_validator("action_env")
    @classmethod
    def _action_env(cls, v: list[str]) -> list[str]:
        bad = [n for n in v if not ENV_NAME.fullmatch(n)]
        if bad:
            raise ValueError(f"action_env lists {bad[0]!r}, which is not an environment variable name")
        EnvPolicy(frozenset(v))  # refuses the service's own credentials
        return v

    @property
    def env_policy(self) -> EnvPolicy:
        return EnvPolicy(frozenset(self.action_env))

    @model_validator(mode="after")
    def _unique_models(self) -> MonitorConfig:
        names = [m.name for m in self.models]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"model names must be unique; repeated: {', '.join(repeated)}")
        clash = cloudevents_clash(self.models)
        if clash:
            raise ValueError(clash)
        for model in self.models:
            check_env_references(model, self.env_policy)
        return self

    def model(self, name: str) -> ModelSpec | None:
        for m in self.models:
            if m.name == name:
                return m
        return None


def cloudevents_clash(models: list[ModelSpec]) -> str | None:
    """Why two models would take the same CloudEvents (one service and node), or None."""
    seen: dict[tuple[str, str | None], str] = {}
    for m in models:
        key = m.cloudevents.follows(m.name)
        if key[1] is not None and key in seen:
            return (
                f"models {seen[key]} and {m.name} both follow node {key[1]!r} of inference service {key[0]!r}; "
                "each node's CloudEvents go to one model"
            )
        seen.setdefault(key, m.name)
    return None
