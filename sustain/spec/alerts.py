"""The ``alerts:`` and ``actions:`` sections of a model's monitor spec.

::

    alerts:
      - name: drift-and-accuracy-drop
        severity: critical
        when:
          all:
            - {indicator: drift, feature: any, status: alert, for: 2}
            - {indicator: estimated_performance, metric: accuracy, below: 0.8}
        actions: [team-slack, retrain]
        cooldown: 6h          # notify again at most this often while firing
        resolve_after: 2      # healthy windows in a row before the alert resolves
      - name: silence-on-the-wire
        when: {flatline: {below: 10, for: 30m}}
        actions: [on-call]

    actions:
      team-slack: {type: slack, url: "${SUSTAIN_SECRET_SLACK_URL}"}
      retrain: {type: retrain, url: "http://trainer:8080/retrain", secret: "${SUSTAIN_SECRET_RETRAIN}"}
      on-call: {type: webhook, url: "https://pager.example/hook", secret: "${SUSTAIN_SECRET_PAGER}", retries: 5}

Values written ``${NAME}`` are read from the environment when the action runs,
so secrets never sit in the spec file or the store. Only names starting
``SUSTAIN_SECRET_`` and those the config file lists under ``action_env`` are
read (:mod:`sustain.spec.secrets`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sustain.durations import parse_duration

Severity = Literal["info", "warning", "critical"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _duration(value: str | None) -> str | None:
    if value is not None:
        parse_duration(value)
    return value


class Threshold(_Strict):
    """An indicator's value or status in the latest window(s).

    ``feature``: a feature or output name, ``any`` (some feature matches), ``all`` (every evaluated feature
    matches), or omitted for model-level values. ``share`` instead asks for at least that share of features.
    """

    indicator: str
    feature: str | None = None
    metric: str | None = None
    share: float | None = Field(default=None, gt=0, le=1)
    status: Literal["warn", "alert", "error"] | None = None
    above: float | None = None
    below: float | None = None
    clear: float | None = Field(default=None, description="value the series must cross back over to resolve")
    for_: int = Field(default=1, ge=1, le=1000, alias="for", description="consecutive windows")
    window: str | None = None

    @model_validator(mode="after")
    def _one_test(self) -> Threshold:
        tests = [self.status is not None, self.above is not None, self.below is not None]
        if sum(tests) != 1:
            raise ValueError("give exactly one of status, above or below")
        if self.share is not None and self.feature not in (None, "any"):
            raise ValueError("share applies across features: leave feature out (or 'any')")
        if self.clear is not None and self.status is not None:
            raise ValueError("clear applies to above/below conditions")
        if self.clear is not None and self.above is not None and self.clear > self.above:
            raise ValueError("clear must not be above 'above' (it is the lower value that resolves the alert)")
        if self.clear is not None and self.below is not None and self.clear < self.below:
            raise ValueError("clear must not be below 'below'")
        _duration(self.window)
        return self


class Spike(_Strict):
    """A value jumps: at least ``factor`` times (or at most 1/factor of) the mean of the ``baseline`` windows
    before it."""

    indicator: str
    feature: str | None = None
    metric: str | None = None
    factor: float = Field(default=3.0, gt=1)
    baseline: int = Field(default=10, ge=2, le=1000)
    direction: Literal["up", "down", "both"] = "up"
    window: str | None = None


class Flatline(_Strict):
    """Traffic stays below ``below`` events in total for ``for`` (no windows at all counts as zero)."""

    below: float = Field(gt=0)
    for_: str = Field(alias="for")

    @field_validator("for_")
    @classmethod
    def _for(cls, v: str) -> str:
        parse_duration(v)
        return v


class SpikeCondition(_Strict):
    spike: Spike


class FlatlineCondition(_Strict):
    flatline: Flatline


class AllOf(_Strict):
    all: list[Condition] = Field(min_length=1)


class AnyOf(_Strict):
    any: list[Condition] = Field(min_length=1)


Condition = Annotated[Threshold | SpikeCondition | FlatlineCondition | AllOf | AnyOf, "a rule condition"]


class AlertRule(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")
    description: str = ""
    severity: Severity = "warning"
    when: Condition
    actions: list[str] = Field(default_factory=list)
    window: str | None = Field(default=None, description="default window for the conditions (default: smallest)")
    cooldown: str = Field(default="1h", description="re-notify at most this often while firing")
    resolve_after: int = Field(default=1, ge=1, le=1000, description="healthy windows in a row to resolve")
    dedup: Literal["model_version_rule", "model_rule"] = "model_version_rule"
    notify_on_resolve: bool = True

    @field_validator("cooldown")
    @classmethod
    def _cooldown(cls, v: str) -> str:
        parse_duration(v)
        return v

    @field_validator("window")
    @classmethod
    def _window(cls, v: str | None) -> str | None:
        return _duration(v)


class _Options(BaseModel):
    """The options of one built-in action type (the keys of its entry besides ``type``, ``retries``...)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class WebhookOptions(_Options):
    url: str
    headers: dict[str, str] | None = None
    secret: str | None = None
    payload: Any = None  # a template: strings may hold {{ field }}


class SlackOptions(_Options):
    url: str
    text: str | None = None


class LogOptions(_Options):
    pass


class CommandOptions(_Options):
    command: str | list[str]


class EmailOptions(_Options):
    to: str | list[str]
    from_: str = Field(default="sustain@localhost", alias="from")
    subject: str | None = None
    host: str = "localhost"
    port: int | str = 25  # a number, or "${SMTP_PORT}"
    starttls: bool = False
    username: str | None = None
    password: str | None = None


class RetrainOptions(_Options):
    url: str | None = None
    payload: Any = None
    secret: str | None = None
    command: str | list[str] | None = None
    mlflow_project: str | None = None
    entry_point: str | None = None
    experiment: str | None = None
    parameters: dict[str, Any] | None = None
    log_dir: str | None = None

    @model_validator(mode="after")
    def _one_way(self) -> RetrainOptions:
        if not (self.url or self.command or self.mlflow_project):
            raise ValueError("a retrain action needs url, command or mlflow_project")
        return self


# The options of each built-in type; a plugin's action type checks its own when the service builds it.
BUILTIN_OPTIONS: dict[str, type[_Options]] = {
    "webhook": WebhookOptions,
    "slack": SlackOptions,
    "log": LogOptions,
    "command": CommandOptions,
    "email": EmailOptions,
    "retrain": RetrainOptions,
}


class ActionSpec(_Strict):
    """One action: ``type`` names a registered action; the other keys are its options.

    The options of a built-in type are checked here, when the spec loads:

    >>> ActionSpec.model_validate({"type": "webhook", "secret": "s"})
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for ActionSpec
      Value error, action type 'webhook' needs the option 'url' ...
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str
    retries: int = Field(default=3, ge=0, le=20)
    timeout: str = "10s"
    backoff: str = "1s"

    @field_validator("timeout", "backoff")
    @classmethod
    def _durations(cls, v: str) -> str:
        parse_duration(v)
        return v

    @model_validator(mode="after")
    def _options_of_the_type(self) -> ActionSpec:
        model = BUILTIN_OPTIONS.get(self.type)
        if model is not None:
            check_options(self.type, model, self.options)
        return self

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def check_options(kind: str, model: type[BaseModel], options: dict[str, Any]) -> BaseModel:
    """``options`` validated by ``model``; a ValueError naming the option and the reason otherwise."""
    try:
        return model.model_validate(options)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            name = ".".join(str(p) for p in err["loc"])
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "missing":
                problems.append(f"action type {kind!r} needs the option {name!r}")
            elif err["type"] == "extra_forbidden":
                known = ", ".join(sorted(f.alias or n for n, f in model.model_fields.items())) or "none"
                problems.append(f"action type {kind!r} has no option {name!r} (its options: {known})")
            elif name:
                problems.append(f"option {name!r} of action type {kind!r}: {message}")
            else:
                problems.append(message)
        raise ValueError("; ".join(problems)) from None


def conditions(condition: Condition) -> list[Threshold | Spike | Flatline]:
    """Every leaf condition of a (possibly nested) condition."""
    if isinstance(condition, AllOf):
        return [leaf for c in condition.all for leaf in conditions(c)]
    if isinstance(condition, AnyOf):
        return [leaf for c in condition.any for leaf in conditions(c)]
    if isinstance(condition, SpikeCondition):
        return [condition.spike]
    if isinstance(condition, FlatlineCondition):
        return [condition.flatline]
    return [condition]


AllOf.model_rebuild()
AnyOf.model_rebuild()
