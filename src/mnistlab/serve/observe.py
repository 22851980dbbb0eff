"""What an operator sees of each request: its X-Request-ID, its line in the access log and its count in /metrics."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from datetime import datetime, timezone

from mnistlab.errors import one_line
from mnistlab.serve.metrics import Metrics, route_label

ACCESS_LOGS = ("off", "text", "json")
MAX_ID = 128  # characters: a request id longer than this, or holding others than SAFE_ID's, is replaced
# a request id's characters: no space or control character, so that a client's id cannot forge its line's fields
SAFE_ID = re.compile(r"[A-Za-z0-9._:/@+=-]+")
# characters of a method or path (each) written in the access log, escaped: a client's 60 KB method made 60 KB lines
MAX_LOGGED = 256


def request_id(given: str | None) -> str:
    """The client's request id when it is 1 to MAX_ID of SAFE_ID's characters, else a new one (uuid4, hex)."""
    if given and len(given) <= MAX_ID and SAFE_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


def escaped(text: str, limit: int | None = MAX_LOGGED, spaces: bool = False) -> str:
    """`text` as one field of a log line: anything but printable ASCII (a line break, a terminal code, a non-ASCII
    character), the backslash and, unless `spaces`, the space written as Python escapes; at most `limit` characters
    of `text` kept (then "...")."""
    cut = limit is not None and len(text) > limit
    kept = text[:limit] if cut else text
    low = " " if spaces else "!"
    out = "".join(ch if low <= ch <= "~" and ch != "\\" else _escape(ch) for ch in kept)
    return out + "..." if cut else out


def _escape(ch: str) -> str:
    if ch == "\\":
        return "\\\\"
    n = ord(ch)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def error_body(message: str, rid: str | None) -> dict:
    """The JSON body of every answer other than 200: the error on one line, and the request's id."""
    return {"error": message, "request_id": rid or uuid.uuid4().hex}


def access_line(kind: str, rid: str, method: str, path: str, status: int, seconds: float) -> str:
    """One line of the access log: `text` (space-separated) or `json` (one object)."""
    when = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    ms = round(seconds * 1000, 2)
    if kind == "json":  # (json.dumps escapes control characters itself)
        method, path = (v[:MAX_LOGGED] + "..." if len(v) > MAX_LOGGED else v for v in (method, path))
        fields = {"time": when, "request_id": rid, "method": method, "path": path, "status": status}
        return json.dumps(fields | {"duration_ms": ms})
    return f"{when} {escaped(rid)} {escaped(method)} {escaped(path)} {status} {ms}ms"


class LogLines(logging.Formatter):
    """The server's own log records (uvicorn's "Invalid HTTP request received", a request cut short, a traceback)
    in the access log's form: `json`, one object a line (a traceback in its "traceback" field), or `text`, one line
    with everything escaped."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
        message = record.getMessage()
        trace = self.formatException(record.exc_info) if record.exc_info else ""
        if self.kind == "json":
            fields = {"time": when, "level": record.levelname.lower(), "logger": record.name, "message": message}
            return json.dumps(fields | ({"traceback": trace} if trace else {}))
        text = f"{message}\n{trace}" if trace else message
        return f"{when} {record.levelname.lower()} {record.name}: {escaped(text, None, spaces=True)}"


class Observed:
    """ASGI middleware around the app: gives each HTTP request its id (in `scope["state"]["request_id"]`, for the
    error bodies, and in the X-Request-ID answer header), counts and times it in `metrics`, and writes its access
    log line (`access_log`: off, text or json) to `stream()` (stderr by default: read when written, so that a
    test's capture sees it)."""

    def __init__(self, app, metrics: Metrics, routes: frozenset[str], access_log: str = "off", stream=None) -> None:
        self.app, self.metrics, self.routes, self.access_log = app, metrics, routes, access_log
        self.stream = stream or (lambda: sys.stderr)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        headers = dict(scope.get("headers") or ())
        rid = request_id(headers.get(b"x-request-id", b"").decode("latin-1"))
        scope.setdefault("state", {})["request_id"] = rid
        status, started = 500, False

        async def send_with_id(message):
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                message = message | {"headers": [*message.get("headers", ()), (b"x-request-id", rid.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as e:  # a bug: answered here, so that the 500 carries the id too; raised on for the log
            if not started:
                body = json.dumps(error_body(f"internal error: {one_line(e)}"[:300], rid)).encode()
                head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
                await send_with_id({"type": "http.response.start", "status": 500, "headers": head})
                await send({"type": "http.response.body", "body": body})
            raise
        finally:
            self.record(scope, rid, status, time.perf_counter() - t0)

    def record(self, scope, rid: str, status: int, seconds: float) -> None:
        method, path = scope["method"], scope["path"]
        self.metrics.answered(route_label(path, self.routes), method, status, seconds)
        if self.access_log != "off":
            print(access_line(self.access_log, rid, method, path, status, seconds), file=self.stream(), flush=True)
