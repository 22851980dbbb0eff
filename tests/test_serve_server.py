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
