"""A toy model behind a real HTTP server speaking the three protocols units use: MLflow's ``/invocations``,
Seldon v1's ``/api/v1.0/predictions`` and the Open Inference Protocol's ``/v2/models/{m}/infer``.

The model: ``y = 2 * x``; a row with a true ``poison`` field makes the whole call fail with 400 (a bad item
in a batch). Every call is recorded (the rows' ``tag`` fields, the answer status, the caller), in memory or,
run as ``python -m tests.inference.model_server PORT CALLS.jsonl``, in a JSON-lines file.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO


@dataclass
class Call:
    number: int
    path: str
    tags: list[Any]
    status: int
    agent: str
    body: Any = None
    started: float = 0.0  # time.monotonic() when the call came and when it was answered
    ended: float = 0.0


@dataclass
class Behaviour:
    """Knobs a test turns: answer ``unavailable`` (e.g. 503) to the next N calls; sleep ``delay`` per call."""

    unavailable: int = 0
    unavailable_status: int = 503
    delay: float = 0.0
    keep_bodies: bool = False


def rows_of(path: str, body: Any) -> list[dict[str, Any]]:
    if path.endswith("/invocations"):
        split = body["dataframe_split"]
        return [dict(zip(split["columns"], row, strict=True)) for row in split["data"]]
    if path.endswith("/predictions"):
        data = body["data"]
        return [dict(zip(data["names"], row, strict=True)) for row in data["ndarray"]]
    inputs = body["inputs"]
    n = inputs[0]["shape"][0]
    return [{tensor["name"]: tensor["data"][i] for tensor in inputs} for i in range(n)]


def reply_of(path: str, predictions: list[Any]) -> Any:
    if path.endswith("/invocations"):
        return {"predictions": predictions}
    if path.endswith("/predictions"):
        return {"data": {"names": ["y"], "ndarray": [[p["y"]] for p in predictions]}, "meta": {}}
    model = path.split("/")[3]
    values = [p["y"] for p in predictions]
    return {
        "model_name": model,
        "outputs": [{"name": "y", "shape": [len(values), 1], "datatype": "FP64", "data": values}],
    }


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a unit killed in the middle of a call
            super().handle_error(request, client_address)


class ModelServer:
    def __init__(self, behaviour: Behaviour | None = None, log_file: TextIO | None = None, port: int = 0) -> None:
        self.behaviour = behaviour or Behaviour()
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._log_file = log_file
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                status, reply = server.handle(self.path, body, self.headers.get("user-agent", ""))
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = _QuietServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def handle(self, path: str, body: Any, agent: str) -> tuple[int, Any]:
        rows = rows_of(path, body)
        with self._lock:
            number = len(self.calls) + 1
            if self.behaviour.unavailable > 0:
                self.behaviour.unavailable -= 1
                status, reply = self.behaviour.unavailable_status, {"error": "try again later"}
            elif any(row.get("poison") for row in rows):
                status, reply = 400, {"error_code": "BAD_REQUEST", "message": "a poisoned row"}
            else:
                predictions = [{"y": 2 * row["x"], "call": number} for row in rows]
                status, reply = 200, reply_of(path, predictions)
            call = Call(number, path, [row.get("tag") for row in rows], status, agent, started=time.monotonic())
            if self.behaviour.keep_bodies:
                call.body = body
            self.calls.append(call)
            if self._log_file is not None:
                self._log_file.write(json.dumps(call.__dict__) + "\n")
                self._log_file.flush()
        if self.behaviour.delay:
            time.sleep(self.behaviour.delay)
        call.ended = time.monotonic()
        return status, reply

    def start(self) -> ModelServer:
        self.thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_calls(path: Path) -> list[Call]:
    return [Call(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


def main(argv: list[str]) -> None:
    port, log_path = int(argv[0]), Path(argv[1])
    with log_path.open("a") as log_file:
        server = ModelServer(log_file=log_file, port=port)
        try:
            server.server.serve_forever()
        finally:
            server.server.server_close()


if __name__ == "__main__":
    main(sys.argv[1:])
