"""A downloaded MLflow model folder, read without loading the model: ``MLmodel``, requirements, the example.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> _ = (folder / "MLmodel").write_text("flavors: {python_function: {}}\\nsignature:\\n  inputs: "
...     "'[{\\"type\\": \\"double\\", \\"name\\": \\"x\\"}]'\\n")
>>> model = ModelFolder(folder)
>>> model.signature_inputs(), model.serving_example_path() is None
([{'type': 'double', 'name': 'x'}], True)
>>> unpinned_requirements(["mlflow==3.17.2", "pandas>=2", "# a comment", "numpy"])
['pandas>=2', 'numpy']
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Any

import orjson
import yaml

from sustain.errors import NotFound, ValidationError

_PINNED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-\[\], ]*==\s*[^=*\s]+(\s*;.*)?$")


def unpinned_requirements(lines: list[str]) -> list[str]:
    """Requirement lines that do not pin one version with ``==`` (comments, blanks and ``-r`` includes aside)."""
    loose = []
    for raw in lines:
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-r ", "--")):
            continue
        if not _PINNED.match(line):
            loose.append(line)
    return loose


class ModelFolder:
    """The folder that holds ``MLmodel``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not (path / "MLmodel").is_file():
            raise NotFound(f"{path} holds no MLmodel file: the version's artifacts are missing or not an MLflow model")

    @cached_property
    def mlmodel(self) -> dict[str, Any]:
        try:
            body = yaml.safe_load((self.path / "MLmodel").read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ValidationError(f"the MLmodel file cannot be read: {exc}", field="MLmodel") from exc
        if not isinstance(body, dict):
            raise ValidationError("the MLmodel file is not a YAML mapping", field="MLmodel")
        return body

    @property
    def flavors(self) -> list[str]:
        return sorted((self.mlmodel.get("flavors") or {}).keys())

    def _signature_part(self, part: str) -> list[dict[str, Any]] | None:
        signature = self.mlmodel.get("signature") or {}
        text = signature.get(part)
        if not text:
            return None
        try:
            value = orjson.loads(text) if isinstance(text, str) else text
        except orjson.JSONDecodeError:
            return None
        return value if isinstance(value, list) else None

    def signature_inputs(self) -> list[dict[str, Any]] | None:
        """The signature's input columns (``[{"name", "type"}]``), None without a signature."""
        return self._signature_part("inputs")

    def signature_outputs(self) -> list[dict[str, Any]] | None:
        return self._signature_part("outputs")

    def serving_example_path(self) -> Path | None:
        info = self.mlmodel.get("saved_input_example_info") or {}
        name = info.get("serving_input_path")
        if not name:
            return None
        path = self.path / str(name)
        return path if path.is_file() else None

    def requirements(self) -> list[str] | None:
        path = self.path / "requirements.txt"
        if not path.is_file():
            return None
        return path.read_text(encoding="utf-8").splitlines()

    def size_bytes(self) -> int:
        """The size of every file of the model folder."""
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())

    def serving_example(self) -> dict[str, Any]:
        path = self.serving_example_path()
        if path is None:
            raise NotFound("the model has no serving input example")
        body = orjson.loads(path.read_bytes())
        if not isinstance(body, dict):
            raise ValidationError("the serving input example is not a JSON object", field="serving_input_example")
        return body
