"""The listening socket and the uvicorn server that answers on it."""

from __future__ import annotations

import socket


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


def serve(app, sock: socket.socket) -> None:
    """Answer with `app` on `sock` until Ctrl-C or SIGTERM."""
    import uvicorn

    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
