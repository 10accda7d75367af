"""Several unit processes on one machine (``sustain aiu serve --units N``), restarted when they die.

Each child is ``python -m sustain.inference.serve OPTIONS`` with a name of its own (``NAME-i``) and, when
metrics are on, the port ``metrics_port + i``. A child that dies is started again, after a pause that grows
while children keep dying young (up to 30 s). SIGTERM or SIGINT is passed on to every child, which answers
what it holds and releases its leases; a child still running after its grace period is killed.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from types import FrameType

from sustain.inference.serve import UnitOptions

log = logging.getLogger("sustain.inference")

YOUNG = 10.0  # a child that dies sooner than this after starting makes the next start wait longer
MAX_PAUSE = 30.0


class Supervisor:
    def __init__(self, options: UnitOptions, units: int) -> None:
        self.options = options
        self.units = units
        self.children: list[subprocess.Popen[bytes] | None] = [None] * units
        self.started = [0.0] * units
        self.pause = [0.0] * units
        self.restarts = 0
        self.stopping = threading.Event()

    def command(self, index: int) -> list[str]:
        return [sys.executable, "-m", "sustain.inference.serve", self.options.for_child(index).to_json()]

    def start(self, index: int) -> None:
        self.children[index] = subprocess.Popen(self.command(index))
        self.started[index] = time.monotonic()

    def check(self) -> None:
        """Start the children that are not running (again), honouring each one's pause."""
        now = time.monotonic()
        for i, child in enumerate(self.children):
            if child is not None and child.poll() is None:
                continue
            if child is not None:
                young = now - self.started[i] < YOUNG
                self.pause[i] = min(MAX_PAUSE, max(0.5, self.pause[i] * 2)) if young else 0.0
                log.warning("unit %d exited with %s; starting it again in %.1fs", i, child.returncode, self.pause[i])
                self.children[i] = None
                self.started[i] = now
                self.restarts += 1
            if now - self.started[i] >= self.pause[i]:
                self.start(i)

    def run(self) -> int:
        def on_signal(signum: int, frame: FrameType | None) -> None:
            self.stopping.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for i in range(self.units):
                self.start(i)
            while not self.stopping.wait(0.2):
                self.check()
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    def stop(self) -> None:
        running = [c for c in self.children if c is not None and c.poll() is None]
        for child in running:
            child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.options.grace + 10
        for child in running:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("unit pid %d did not stop in time; killing it", child.pid)
                child.kill()
                child.wait(10)
