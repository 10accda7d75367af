"""A reference profile for the one-shot drift report, saved once and compared against many current files.

``sustain profile REFERENCE --out ref.profile.json`` keeps what ``sustain drift`` needs from a reference:
per column its kind and type, the quantile bin edges and the counts in them (numbers) or the category
counts, the missing values, and a bounded sample of numbers for the exact tests on small current files.
``sustain drift ref.profile.json CURRENT`` then reads only the current data. The report is the same as
from the reference file itself: the same bins, counts and sample. The raw reference is not needed again,
which is what Evidently users ask for (issue #506).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

FORMAT = 1
KINDS = ("numeric", "categorical", "boolean")


class ProfileError(ValueError):
    """A profile file that cannot be used; the message names the file, the field and the reason."""


@dataclass(frozen=True)
class ProfiledColumn:
    """One column: numbers keep ``edges`` and per-bin ``counts``; categories and booleans keep ``categories``,
    or only ``distinct`` when there are too many to be a category (an identifier)."""

    name: str
    kind: str
    type: str
    missing: int
    edges: list[float] | None = None
    counts: list[int] | None = None
    categories: dict[str, int] | None = None
    distinct: int | None = None
    sample: list[float] | None = None

    def problem(self) -> str | None:
        """What makes this column unusable, or None."""
        if self.kind not in KINDS:
            return f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}"
        if not _count(self.missing):
            return "missing must be a count"
        if self.kind == "numeric":
            if not isinstance(self.edges, list) or not isinstance(self.counts, list):
                return "a numeric column needs edges and counts"
            if not all(isinstance(e, int | float) and not isinstance(e, bool) for e in self.edges):
                return "edges must be numbers"
            if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
                return "edges must be strictly increasing"
            if len(self.counts) != len(self.edges) + 1:
                return f"{len(self.edges)} edges make {len(self.edges) + 1} bins, not {len(self.counts)}"
            if not all(_count(c) for c in self.counts):
                return "counts must be counts (whole numbers, not negative)"
        elif self.categories is None:
            if not _count(self.distinct):
                return "a categorical or boolean column needs categories (or distinct, for an identifier)"
        elif not isinstance(self.categories, dict) or not all(_count(c) for c in self.categories.values()):
            return "categories must map each category to a count"
        if self.sample is not None and not all(isinstance(v, int | float) for v in self.sample):
            return "sample must be a list of numbers"
        return None


@dataclass(frozen=True)
class ReferenceProfile:
    """Everything the one-shot report keeps of a reference."""

    source: str
    rows: int
    bins: int
    seed: int
    columns: list[ProfiledColumn]

    def column(self, name: str) -> ProfiledColumn:
        return next(c for c in self.columns if c.name == name)

    def save(self, path: Path) -> None:
        body = {"sustain_profile": FORMAT, **asdict(self)}
        body["columns"] = [{k: v for k, v in c.items() if v is not None} for c in body["columns"]]
        path.write_text(json.dumps(body), encoding="utf-8")


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def is_profile(path: Path) -> bool:
    """Whether ``path`` is a profile rather than data: a ``.profile.json`` file, or a JSON file that names
    ``sustain_profile`` early (``sustain profile`` writes that key first)."""
    if not path.is_file() or path.suffix.lower() != ".json":
        return False
    if path.name.lower().endswith(".profile.json"):
        return True
    with path.open("rb") as fh:
        return b'"sustain_profile"' in fh.read(4096)


def load_profile(path: Path) -> ReferenceProfile:
    """Read and check a profile file; :class:`ProfileError` names what is wrong.

    >>> import tempfile
    >>> bad = Path(tempfile.mkdtemp()) / "ref.profile.json"
    >>> _ = bad.write_text('{"sustain_profile": 1, "source": "r", "rows": 3, "bins": 5, "seed": 0, "columns": '
    ...     '[{"name": "x", "kind": "numeric", "type": "double", "missing": 0, "edges": [2, 1], "counts": [1, 1, 1]}]}')
    >>> load_profile(bad)
    Traceback (most recent call last):
    ...
    sustain.report.profile.ProfileError: ...: columns[0] (x): edges must be strictly increasing
    """
    try:
        body: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ProfileError(f"{path}: not a readable JSON profile ({exc})") from None

    def fail(where: str, message: str) -> ProfileError:
        return ProfileError(f"{path}: {where}: {message}")

    if not isinstance(body, dict) or body.get("sustain_profile") != FORMAT:
        raise fail("sustain_profile", f"this sustain reads profile format {FORMAT}")
    for key, check in (("rows", _count), ("bins", lambda v: _count(v) and v >= 2), ("seed", _count)):
        if not check(body.get(key)):
            raise fail(key, "must be a whole number" + (" of at least 2" if key == "bins" else ""))
    if not isinstance(body.get("source"), str) or not isinstance(body.get("columns"), list):
        raise fail("profile", "needs a source and a list of columns")
    known = {f.name for f in fields(ProfiledColumn)}
    columns = []
    for i, raw in enumerate(body["columns"]):
        if not isinstance(raw, dict) or not {"name", "kind", "type", "missing"} <= set(raw) or set(raw) - known:
            raise fail(f"columns[{i}]", f"needs name, kind, type and missing, and only fields among {sorted(known)}")
        column = ProfiledColumn(**raw)
        problem = column.problem()
        if problem is not None:
            raise fail(f"columns[{i}] ({column.name})", problem)
        columns.append(column)
    return ReferenceProfile(body["source"], body["rows"], body["bins"], body["seed"], columns)
