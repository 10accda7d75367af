"""Load monitor specs from YAML and report problems by path *and line*.

>>> text = "models:\\n  - name: churn\\n    features:\\n      age: {kind: numbr}\\n"
>>> try:
...     load_config_text(text, source="sustain.yaml")
... except SpecError as exc:
...     print(exc.details[0]["where"])
sustain.yaml:4: models[0].features.age.kind
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic
import yaml

from sustain.errors import SpecError
from sustain.spec import ModelSpec, MonitorConfig


def _format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _node_line(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the YAML node at ``loc``, or of its nearest ancestor."""
    node = root
    line = None if node is None else node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = None
            for index, (key, value) in enumerate(node.value):
                # A features mapping {name: ...} is validated as a list: an int index means the nth key.
                if (isinstance(part, int) and index == part) or (
                    isinstance(key, yaml.ScalarNode) and key.value == str(part)
                ):
                    found = value
                    break
            if found is None:
                break
            node = found
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
        line = node.start_mark.line + 1
    return line


def _readable_loc(data: Any, loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """Replace list indexes that stand for mapping keys (features given as a mapping) by the key."""
    out: list[int | str] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and isinstance(part, int):
            keys = list(node.keys())
            if part < len(keys):
                out.append(str(keys[part]))
                node = node[keys[part]]
                continue
        out.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            node = None
    return tuple(out)


def spec_error_from_pydantic(
    exc: pydantic.ValidationError, *, source: str, data: Any = None, root: yaml.Node | None = None
) -> SpecError:
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        readable = _readable_loc(data, loc)
        path = _format_loc(readable)
        line = _node_line(root, loc)
        message = err["msg"].removeprefix("Value error, ")
        where = f"{source}:{line}: {path}" if line else f"{source}: {path}"
        problems.append({"where": where, "path": path, "line": line, "message": message})
    summary = "; ".join(f"{p['where']}: {p['message']}" for p in problems[:5])
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return SpecError(f"invalid monitor spec: {summary}{more}", details=problems)


def load_config_text(text: str, *, source: str = "<spec>") -> MonitorConfig:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"{where}: not valid YAML: {problem}") from exc
    if data is None:
        raise SpecError(f"{source}: the file is empty; it needs a 'models:' list")
    if isinstance(data, dict) and "models" not in data and "name" in data:
        data = {"models": [data]}  # a file with a single model needs no 'models:' wrapper
        root = None
    try:
        return MonitorConfig.model_validate(data)
    except pydantic.ValidationError as exc:
        raise spec_error_from_pydantic(exc, source=source, data=data, root=root) from None


def load_config(path: str | Path) -> MonitorConfig:
    """Read and validate a ``sustain.yaml`` file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{p}: cannot read the file: {exc}") from exc
    return load_config_text(text, source=str(p))


def parse_model_spec(data: Any, *, source: str = "request body") -> ModelSpec:
    """Validate one model spec given as a JSON-like object (the REST API's path)."""
    try:
        return ModelSpec.model_validate(data)
    except pydantic.ValidationError as exc:
        raise spec_error_from_pydantic(exc, source=source, data=data) from None
