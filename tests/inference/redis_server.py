"""A real Redis server (Debian's ``redis-server``) on a free loopback port, in a directory of its own, with the
durability settings units rely on (``appendonly yes``, ``appendfsync everysec``, ``noeviction``)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import cast

import pytest
import redis

from sustain.inference.durability import redis_server_args
from tests.helpers import free_port

REDIS_SERVER = os.environ.get("SUSTAIN_REDIS_SERVER", "/usr/bin/redis-server")


def redis_server_path() -> str:
    if not os.access(REDIS_SERVER, os.X_OK):
        pytest.fail(
            f"redis-server is missing at {REDIS_SERVER}: the inference unit tests run a real one. Install it with "
            "'apt-get update && apt-get install -y redis-server' (make test does), or point SUSTAIN_REDIS_SERVER "
            "at one.",
            pytrace=False,
        )
    return REDIS_SERVER


class RedisServer:
    def __init__(self, directory: Path, port: int | None = None, config: Path | None = None) -> None:
        self.directory = directory
        self.config = config  # a redis.conf read first (the options below override it)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, wait: float = 30.0) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            redis_server_path(),
            *([str(self.config)] if self.config else []),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--logfile", "redis.log",
            "--daemonize", "no",
            *redis_server_args(),
        ]  # fmt: skip
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (self.directory / "redis.log").read_text() if (self.directory / "redis.log").exists() else ""
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {log[-2000:]}")
            try:
                with redis.Redis(port=self.port, socket_connect_timeout=1) as client:
                    if client.ping():
                        return self
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not answer PING")

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def kill(self) -> None:
        """SIGKILL: what a crash of the Redis process does."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def dead_letters(server: RedisServer, model: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    from sustain.inference.keys import ModelKeys

    return cast(list[tuple[bytes, dict[bytes, bytes]]], server.client().xrange(ModelKeys(model).dead_letters))
