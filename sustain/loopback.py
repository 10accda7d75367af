"""Loopback ports for the child servers sustain starts (MLflow scoring servers, the demo's registry).

A free port is only free until someone binds it: between ``free_port()`` and the child's ``bind`` another process
can take it, and the child then fails to start while whoever holds the port answers its health check. So a
caller that waits for a child also asks :func:`group_listens` whether the listener is the child's, and treats a
port held by a stranger as a collision to retry on a fresh port, not as its server being ready.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable
from pathlib import Path

PROC = Path("/proc")
LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp
ADDRESS_IN_USE = "address already in use"


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports: the sockets stay bound until all are chosen, so none repeats."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            s = stack.enter_context(socket.socket())
            s.bind(("127.0.0.1", 0))
            ports.append(int(s.getsockname()[1]))
        return ports


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in (PROC / "net" / table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[3] == LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    return inodes


def _process_group(pid: str) -> int | None:
    try:
        stat = (PROC / pid / "stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[2])  # after "pid (comm)": state, ppid, pgrp


def group_listens(port: int, group: int) -> bool | None:
    """Whether a process of process group ``group`` listens on ``port``; None where ``/proc`` cannot tell."""
    return _listens(port, lambda pid: _process_group(pid) == group)


def process_listens(port: int, pid: int) -> bool | None:
    """Whether process ``pid`` itself listens on ``port``; None where ``/proc`` cannot tell."""
    return _listens(port, lambda candidate: candidate == str(pid))


def _listens(port: int, chosen: Callable[[str], bool]) -> bool | None:
    if not (PROC / "net" / "tcp").exists():
        return None
    inodes = _listening_inodes(port)
    if not inodes:
        return False
    sockets = {f"socket:[{inode}]" for inode in inodes}
    for pid in os.listdir(PROC):
        if pid.isdigit() and chosen(pid):
            with contextlib.suppress(OSError):
                fds = PROC / pid / "fd"
                if any(os.readlink(fds / fd) in sockets for fd in os.listdir(fds)):
                    return True
    return False
