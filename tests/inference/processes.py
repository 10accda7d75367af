"""Unit processes for the tests: the real command line, and the children of a supervisor."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SUSTAIN = [sys.executable, "-m", "sustain.cli"]


def sustain_aiu(*args: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen([*SUSTAIN, "aiu", *args], stdout=out, stderr=subprocess.STDOUT, env=env)


def children_of(pid: int) -> list[int]:
    """Live child processes of ``pid`` (from /proc; the kernel here has no /proc/PID/task/TID/children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return sorted(found)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
