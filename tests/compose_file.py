"""Reading ``compose/docker-compose.yml`` and the ``Dockerfile`` as Docker would, for the checks that run without it.

* :func:`interpolate` resolves ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}`` and ``$$`` the way Compose
  does, against a given environment (empty: every default);
* :func:`command_line` is a service's argv (entrypoint + command), and :func:`sustain_invocations` the
  ``sustain ...`` command lines in it, also inside ``sh -c`` scripts;
* :func:`container_path` maps a path inside a service's container to the host file or volume behind it;
* :func:`dockerfile_instructions` splits a Dockerfile into (instruction, arguments), continuations joined.

>>> interpolate("${A:-x}-${B-y}-$${C}-${D}", {"B": "", "D": "d"})
'x--${C}-d'
>>> dockerfile_instructions("FROM a AS b\\nRUN x \\\\\\n    && y\\n")
[('FROM', 'a AS b'), ('RUN', 'x && y')]
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE_DIR = REPO / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
COMPOSE_SCHEMA = REPO.parent / "shared" / "schemas" / "compose" / "compose-spec.json"

_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<default>[^}]*))?\}")


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """``value`` with every variable substituted, recursively through lists and mappings."""
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, op, default = match.group("name"), match.group("op"), match.group("default") or ""
            found = env.get(name)
            unset = not found if op in (":-", ":?") else found is None
            if op is not None and op.endswith("?") and unset:
                raise ValueError(f"${{{name}}} must be set: {default}")
            return default if unset and op is not None else (found or "")

        return _VARIABLE.sub(substitute, value)
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    return value


def load_raw() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return data


def load(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The compose file as Compose sees it with ``env`` (default: no variables set, so every default)."""
    resolved: dict[str, Any] = interpolate(load_raw(), env or {})
    return resolved


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(v) for v in value]


def command_line(service: Mapping[str, Any]) -> list[str]:
    """The argv a service runs: its entrypoint then its command (an image's defaults are not known here)."""
    return _as_list(service.get("entrypoint")) + _as_list(service.get("command"))


def sustain_invocations(service: Mapping[str, Any], entrypoint: str = "sustain") -> list[list[str]]:
    """Every ``sustain ...`` argv a service of the sustain image runs (without the leading ``sustain``).

    A service without an entrypoint runs the image's (``sustain``); one with ``/bin/sh -c SCRIPT``
    runs the ``sustain`` commands of SCRIPT, which are split on ``;`` and ``&&``.
    """
    argv = command_line(service)
    if "entrypoint" not in service:
        return [argv]
    if argv[:2] in (["/bin/sh", "-c"], ["sh", "-c"], ["/bin/bash", "-c"]):
        lines = []
        for part in re.split(r";|&&", " ".join(argv[2:])):
            words = shlex.split(part)
            if words and words[0] == entrypoint:
                lines.append(words[1:])
        return lines
    return [argv[1:]] if argv and argv[0] == entrypoint else []


@dataclass(frozen=True)
class Mount:
    source: str  # a host path (bind) or a volume name
    target: PurePosixPath
    kind: str  # "bind" or "volume"


def mounts(service: Mapping[str, Any]) -> list[Mount]:
    """The service's volumes (short syntax ``source:target[:mode]``, or the long syntax)."""
    found = []
    for entry in service.get("volumes", []):
        if isinstance(entry, str):
            source, target = entry.split(":")[:2]
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        else:
            source, target, kind = entry["source"], entry["target"], entry["type"]
        found.append(Mount(source, PurePosixPath(target), kind))
    return found


def container_path(service: Mapping[str, Any], path: str) -> tuple[Mount, PurePosixPath]:
    """The mount holding ``path`` in the service's container, and ``path`` relative to the mount's target."""
    wanted = PurePosixPath(path)
    best: tuple[Mount, PurePosixPath] | None = None
    for mount in mounts(service):
        if wanted == mount.target or mount.target in wanted.parents:
            rest = wanted.relative_to(mount.target)
            if best is None or len(mount.target.parts) > len(best[0].target.parts):
                best = (mount, rest)
    if best is None:
        raise KeyError(f"{path} is on no volume or bind mount of the service")
    return best


def host_path(mount: Mount, rest: PurePosixPath) -> Path:
    """The host file behind a bind mount (relative sources are relative to the compose file's directory)."""
    assert mount.kind == "bind", mount
    return (COMPOSE_DIR / mount.source / rest).resolve()


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, comments dropped and line continuations joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, rest = full.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    return instructions


def image_tag(image: str) -> str | None:
    """The tag of an image reference (None without one; a digest-only reference has none either).

    >>> image_tag("docker.elastic.co/kibana/kibana:8.19.2"), image_tag("localhost:5000/x"), image_tag("redis")
    ('8.19.2', None, None)
    """
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None
