"""mnistlab.serve.server: the listening socket, the connection cap and the HTTP protocol's limits."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

pytest.importorskip("fastapi", reason='mnistlab serve needs the serve extra: pip install "mnistlab[serve]"')

from mnistlab.serve.server import HttpLimits, _CutShort, connection_cap, listen, protocol, url  # noqa: E402


def test_listen_takes_a_free_port_with_nagle_off():
    sock = listen("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        assert port > 0 and url(sock) == f"http://127.0.0.1:{port}/"
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # it listens
    finally:
        sock.close()


def test_connection_cap_stays_under_the_open_file_limit():
    import resource

    assert connection_cap(10) == 10
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert 1 <= connection_cap(10**9) <= soft - 64


def test_the_protocol_is_uvicorns_h11_with_limits():
    from uvicorn.protocols.http.h11_impl import H11Protocol

    cls = protocol(HttpLimits(header_timeout_s=1), cap=5)
    assert issubclass(cls, H11Protocol) and cls is not H11Protocol


def test_a_request_cut_short_is_logged_on_one_line():
    try:
        raise asyncio.CancelledError()
    except asyncio.CancelledError as e:
        record = logging.LogRecord(
            "uvicorn.error", logging.ERROR, "", 0, "Exception in ASGI app", (), (type(e), e, None)
        )
    assert _CutShort().filter(record) and record.exc_info is None and "cut short" in record.getMessage()
    plain = logging.LogRecord("uvicorn.error", logging.INFO, "", 0, "started", (), None)
    assert _CutShort().filter(plain) and plain.getMessage() == "started"


def test_a_closed_connection_is_not_kept_by_its_header_timer():
    """Issue 28 row 2: the header timer held every closed connection (with its buffers: a 60 KB request line) for
    `header_timeout_s`; 1,000 such requests grew the server by 125 MB. Counted: the protocol objects still alive
    after 20 requests on connections that closed, with a header timeout far longer than the test."""
    import gc

    from uvicorn.config import Config
    from uvicorn.server import ServerState

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    cls = protocol(HttpLimits(header_timeout_s=600), cap=100)
    config, state = Config(app, log_level="warning"), ServerState()

    async def main() -> int:
        server = await asyncio.get_running_loop().create_server(lambda: cls(config, state, {}), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        for i in range(20):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET /{'x' * 60_000}{i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            assert (await reader.read()).startswith(b"HTTP/1.1 404")
            writer.close()
            await writer.wait_closed()
        for _ in range(10):  # the server's side of the last connection sees it closed
            await asyncio.sleep(0)
        gc.collect()
        live = sum(type(o) is cls for o in gc.get_objects())
        server.close()
        await server.wait_closed()
        return live

    assert asyncio.run(main()) <= 1
