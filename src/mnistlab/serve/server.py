"""The listening socket and the uvicorn server that answers on it, with the HTTP layer's time and connection limits."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import sys
import threading

from mnistlab.serve.limits import HttpLimits
from mnistlab.serve.observe import LogLines, error_body

RESERVED_FDS = 64  # open files kept back from the connection cap: the model, images, logs, the loop's own


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on (host, port), port 0 for a free one; OSError if it cannot (a port in use, ...).

    Made here rather than by uvicorn so that the port is known, and taken, before the model loads. Nagle's algorithm
    is turned off: asyncio does so only for sockets made with proto IPPROTO_TCP, and create_server's are proto 0,
    so each answer (headers, then body) would wait about 40 ms for the client's delayed ACK. Accepted connections
    inherit the option from the listening socket."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if sock.family == socket.AF_INET6 else f"http://{host}:{port}/"


def connection_cap(wanted: int) -> int:
    """`wanted`, lowered below the open-file limit (raised to its hard maximum first) less RESERVED_FDS: past the
    limit asyncio cannot accept, and logs a traceback for every try."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft < hard:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))
                soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            except (ValueError, OSError):
                pass
    except ImportError:  # (Windows)
        return wanted
    return max(1, min(wanted, soft - RESERVED_FDS))


def protocol(limits: HttpLimits, cap: int):
    """uvicorn's h11 protocol with three changes: headers must arrive within `header_timeout_s` (uvicorn times only
    idle kept-alive connections, so a client sending one header byte a second held a connection for ever); a
    connection past `cap` is closed at once; and uvicorn's own 400 (a request h11 cannot parse) is JSON. The header
    timer is cancelled when the connection goes: left armed, it kept each closed connection (its buffers, a 60 KB
    request line) in memory for `header_timeout_s` (issue 28: 1,000 such requests, +125 MB)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class Protocol(H11Protocol):
        def connection_made(self, transport) -> None:
            self.answered = 0  # responses sent on this connection
            self.header_timer: asyncio.TimerHandle | None = None
            if len(self.connections) >= cap:
                self.transport = transport  # (connection_lost closes it)
                transport.close()
                return
            super().connection_made(transport)
            self._arm_header_timer()

        def _arm_header_timer(self) -> None:
            self._cancel_header_timer()
            self.header_timer = self.loop.call_later(limits.header_timeout_s, self._header_timeout, self.answered)

        def _cancel_header_timer(self) -> None:
            if self.header_timer is not None:
                self.header_timer.cancel()
                self.header_timer = None

        def connection_lost(self, exc) -> None:
            self._cancel_header_timer()
            super().connection_lost(exc)

        def _header_timeout(self, answered: int) -> None:
            # still waiting for the headers of the request that follows the `answered` ones the timer was armed after
            waiting = self.conn.their_state is h11.IDLE and self.answered == answered
            if waiting and not self.transport.is_closing():
                self.transport.close()

        def on_response_complete(self) -> None:
            self.answered += 1
            super().on_response_complete()
            self._arm_header_timer()

        def send_400_response(self, msg: str) -> None:
            made = error_body(f"bad request: {msg}", None)  # a new id: the request's own could not be read
            body = json.dumps(made).encode()
            headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
            headers.append((b"x-request-id", made["request_id"].encode()))
            for event in (h11.Response(status_code=400, headers=headers), h11.Data(data=body), h11.EndOfMessage()):
                self.transport.write(self.conn.send(event))
            self.transport.close()

    return Protocol


class _CutShort(logging.Filter):
    """uvicorn cancels the requests still in flight when the drain time is up, and logs each with a traceback:
    one line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError):
            record.msg, record.args, record.exc_info = (
                "a request still in flight at the end of --drain-s was cut short",
                (),
                None,
            )
        return True


def own_log(kind: str) -> logging.Handler | None:
    """With an access log (`text` or `json`), uvicorn's own records and any other library's go to stderr in the same
    form (`LogLines`), so that a JSON log stays one object a line (issue 28: "Invalid HTTP request received" was
    plain text); the handler installed, to be removed with `logging.getLogger().removeHandler` after. None: off."""
    if kind == "off":
        return None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogLines(kind))
    logging.getLogger().addHandler(handler)
    return handler


def serve(app, sock: socket.socket, limits: HttpLimits | None = None, log: str = "off") -> None:
    """Answer with `app` on `sock` until Ctrl-C or SIGTERM, then give requests in flight `drain_s` to finish.
    `log`: the access log's kind (off, text, json), which the server's own log records follow."""
    import uvicorn

    limits = limits or HttpLimits()
    logging.getLogger("uvicorn.error").addFilter(_CutShort())
    handler = own_log(log)
    config = uvicorn.Config(
        app,
        log_config=None if handler else uvicorn.config.LOGGING_CONFIG,
        log_level="warning",
        http=protocol(limits, connection_cap(limits.max_connections)),
        timeout_keep_alive=max(1, round(limits.keep_alive_s)),
        timeout_graceful_shutdown=max(1, round(limits.drain_s)),
    )
    # uvicorn drains on SIGTERM, then raises the signal again for the handler it found in place: with Python's
    # default one the process died of SIGTERM (-15) after a clean stop. A handler that does nothing: it exits 0.
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _drained) if main else None
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        if handler is not None:
            logging.getLogger().removeHandler(handler)
        if main and previous is not None:  # (None: a handler set outside Python, which cannot be put back)
            signal.signal(signal.SIGTERM, previous)


def _drained(signum, frame) -> None:
    """What SIGTERM does once uvicorn has drained the server: nothing (serve returns, the command exits 0)."""
