"""mnistlab.serve.observe: X-Request-ID taken (when it is sane) or made, returned and written in error bodies and
the access log (text or one JSON object a line); and /readyz, which waits for the warm-up batch."""

from __future__ import annotations

import json
import threading
import time

import pytest

pytest.importorskip("fastapi", reason='mnistlab serve needs the serve extra: pip install "mnistlab[serve]"')

from conftest import REPO  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from mnistlab.serve import create_app  # noqa: E402
from mnistlab.serve.observe import MAX_ID, MAX_LOGGED, LogLines, access_line, escaped, request_id  # noqa: E402

SEVEN = (REPO / "examples" / "digits" / "seven_pen.png").read_bytes()
BLANK = (REPO / "examples" / "digits" / "blank.png").read_bytes()


def is_made(rid: str) -> bool:
    return len(rid) == 32 and all(ch in "0123456789abcdef" for ch in rid)


def test_a_sane_request_id_is_kept_and_anything_else_replaced():
    assert request_id("req-42/abc:1") == "req-42/abc:1"
    assert request_id("x" * MAX_ID) == "x" * MAX_ID
    forged = "forged POST /v1/predict 200 3.2ms"  # issue 28 row 8: an id with spaces forged its line's fields
    for bad in (None, "", "x" * (MAX_ID + 1), "a\tb", "caf\u00e9", " padded ", "a\x00b", forged, "a\x1b[31m"):
        assert is_made(request_id(bad)), bad
    assert request_id(None) != request_id(None)


def test_access_lines():
    line = json.loads(access_line("json", "r1", "POST", "/v1/predict", 200, 0.01234))
    assert set(line) == {"time", "request_id", "method", "path", "status", "duration_ms"}
    assert (line["request_id"], line["status"], line["duration_ms"]) == ("r1", 200, 12.34)
    assert access_line("text", "r1", "GET", "/healthz", 503, 0.001).endswith(" r1 GET /healthz 503 1.0ms")


def test_a_request_id_round_trip_and_a_made_one(bundled):
    with TestClient(create_app(bundled)) as c:
        r = c.post("/v1/predict", content=SEVEN, headers={"X-Request-ID": "trace-7"})
        assert r.status_code == 200 and r.headers["x-request-id"] == "trace-7"
        r = c.post("/v1/predict", content=BLANK, headers={"X-Request-ID": "trace-8"})
        assert r.status_code == 422 and r.json()["request_id"] == r.headers["x-request-id"] == "trace-8"
        r = c.get("/nowhere", headers={"X-Request-ID": "y" * 200})  # too long: replaced
        assert r.status_code == 404 and is_made(r.headers["x-request-id"])
        assert r.json()["request_id"] == r.headers["x-request-id"]
        made = {c.get("/healthz").headers["x-request-id"] for _ in range(3)}
        assert len(made) == 3 and all(map(is_made, made))


@pytest.mark.parametrize("kind", ["json", "text"])
def test_the_access_log_has_a_line_per_request_with_its_id(bundled, capsys, kind):
    with TestClient(create_app(bundled, access_log=kind)) as c:
        capsys.readouterr()
        c.post("/v1/predict", content=SEVEN, headers={"X-Request-ID": "log-1"})
        c.post("/v1/predict", content=BLANK, headers={"X-Request-ID": "log-2"})
        err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in err
    if kind == "json":
        rows = [json.loads(line) for line in lines]
        assert [(r["request_id"], r["path"], r["status"]) for r in rows] == [
            ("log-1", "/v1/predict", 200), ("log-2", "/v1/predict", 422),
        ]  # fmt: skip
        assert all(r["method"] == "POST" and r["duration_ms"] > 0 for r in rows)
    else:
        assert " log-1 POST /v1/predict 200 " in lines[0] and " log-2 POST /v1/predict 422 " in lines[1]


def test_no_access_log_by_default(bundled, capsys):
    with TestClient(create_app(bundled)) as c:
        c.get("/healthz")
    assert capsys.readouterr().err == ""


def test_readyz_waits_for_the_model_and_a_warm_up_batch(bundled):
    loaded, warmed = threading.Event(), threading.Event()
    real = bundled.probabilities

    def gated(seen):  # the warm-up batch waits until the test lets it through
        warmed.wait(30)
        return real(seen)

    def slow_load():
        loaded.wait(30)
        bundled.probabilities = gated
        return bundled

    try:
        app = create_app(slow_load)
        with TestClient(app) as c:
            r = c.get("/readyz")
            assert r.status_code == 503 and "loading" in r.json()["error"] and r.headers["retry-after"] == "1"
            loaded.set()
            for _ in range(300):  # loaded: /healthz says so, /readyz still waits for the warm-up
                if c.get("/healthz").status_code == 200:
                    break
                time.sleep(0.01)
            r = c.get("/readyz")
            assert r.status_code == 503 and "warming up" in r.json()["error"]
            warmed.set()
            for _ in range(300):
                if (r := c.get("/readyz")).status_code == 200:
                    break
                time.sleep(0.01)
            assert r.json() == {"status": "ready"}
            assert app.state.mnistlab.batcher.stats.batches == 0  # the warm-up is not counted as traffic
    finally:
        bundled.probabilities = real


def test_a_bug_is_a_500_with_the_request_id_and_the_server_goes_on():
    import mnistlab

    broken = mnistlab.load(device="cpu")
    real = broken.probabilities
    calls = []

    def flaky(seen):  # the warm-up batch passes, the first request's fails, then it works again
        calls.append(len(seen))
        if len(calls) == 2:
            raise RuntimeError("a bug\nover two lines")
        return real(seen)

    broken.probabilities = flaky
    app = create_app(broken)
    with TestClient(app, raise_server_exceptions=False) as c:
        for _ in range(300):
            if c.get("/readyz").status_code == 200:
                break
            time.sleep(0.01)
        r = c.post("/v1/predict", content=SEVEN, headers={"X-Request-ID": "bug-1"})
        assert r.status_code == 500 and r.headers["x-request-id"] == "bug-1"
        assert r.json() == {"error": "internal error: a bug over two lines", "request_id": "bug-1"}
        assert c.post("/v1/predict", content=SEVEN).json()["digit"] == 7


def test_an_unknown_access_log_kind_is_refused_at_once(bundled):
    with pytest.raises(ValueError, match="off, text, json"):
        create_app(bundled, access_log="xml")


def test_a_forged_path_is_one_escaped_line_of_the_text_log(bundled, capsys):
    """Issue 28 row 8: `GET /%0A<a forged log line>%0A%1B[31m` wrote a whole forged line and a raw terminal code;
    now one request is one line, its control characters (and spaces, which would forge fields) escaped."""
    forged = "/%0A2026-12-07T00:00:00.000Z%20x%20POST%20/v1/predict%20200%203.2ms%0A%1B[31m"
    with TestClient(create_app(bundled, access_log="text")) as c:
        capsys.readouterr()
        c.get(forged, headers={"X-Request-ID": "forged POST /v1/predict 200 3.2ms"})
        c.request("X" * 5000, "/healthz")
        err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 2 and "\x1b" not in err and "\r" not in err
    fields = lines[0].split(" ")
    assert len(fields) == 6 and is_made(fields[1]) and fields[2] == "GET" and fields[4] == "404"
    assert fields[3] == "/\\x0a2026-12-07T00:00:00.000Z\\x20x\\x20POST\\x20/v1/predict\\x20200\\x203.2ms\\x0a\\x1b[31m"
    assert len(lines[1].split(" ")[2]) == MAX_LOGGED + 3  # a 5,000-character method: its first MAX_LOGGED, "..."


def test_escaped_and_the_servers_own_log_records_in_the_access_logs_form():
    import logging
    import sys

    assert escaped("a b\\\n\x1b\u00e9") == "a\\x20b\\\\\\x0a\\x1b\\xe9"
    assert escaped("a b\n", spaces=True) == "a b\\x0a" and escaped("y" * 300, 10) == "y" * 10 + "..."
    try:
        raise ValueError("bad\nline")
    except ValueError:
        record = logging.LogRecord("uvicorn.error", logging.ERROR, "x", 1, "Invalid %s", ("\x1b[31m",), sys.exc_info())
    row = json.loads(LogLines("json").format(record))
    assert "\n" not in LogLines("json").format(record) and row["message"] == "Invalid \x1b[31m"
    assert row["level"] == "error" and row["logger"] == "uvicorn.error" and "ValueError: bad" in row["traceback"]
    text = LogLines("text").format(record)
    assert "\n" not in text and "\x1b" not in text and "uvicorn.error: Invalid \\x1b[31m\\x0aTraceback" in text
