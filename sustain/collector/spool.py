"""The Logger's disk spool: batches the collector could not take yet, replayed in order later.

Each batch is one file, written to a temporary name, flushed to disk and
renamed, so a crash leaves either the whole batch or nothing. Events keep the
ids they were given before the first send, so replaying a batch the collector
had in fact stored is harmless: it stores each id once.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from pathlib import Path


def default_spool_dir(model: str) -> Path:
    base = os.environ.get("SUSTAIN_SPOOL_DIR")
    if base:
        return Path(base) / model
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "sustain" / "spool" / model


class Spool:
    """A directory of pending batch files, bounded in bytes."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._bytes = sum(p.stat().st_size for p in self._files())

    def _files(self) -> list[Path]:
        return sorted(self.directory.glob("*.json"))

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def pending(self) -> list[Path]:
        """Spooled batch files, oldest first."""
        return self._files()

    def __len__(self) -> int:
        return len(self._files())

    def write(self, kind: str, body: bytes) -> bool:
        """Persist one batch body; False when the spool is full (the caller counts the loss)."""
        with self._lock:
            if self._bytes + len(body) > self.max_bytes:
                return False
            name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._counter):06d}-{kind}"
            tmp = self.directory / f".{name}.tmp"
            final = self.directory / f"{name}.json"
            with open(tmp, "wb") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
            self._bytes += len(body)
            return True

    @staticmethod
    def kind_of(path: Path) -> str:
        return path.stem.rsplit("-", 1)[-1]

    def read(self, path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None  # another process replayed it

    def remove(self, path: Path) -> None:
        with self._lock:
            try:
                size = path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                return
            self._bytes = max(0, self._bytes - size)
