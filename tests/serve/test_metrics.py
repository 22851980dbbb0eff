"""mnistlab.serve.metrics and /metrics: one registry per app, parsed with prometheus_client's own parser; its
counters move as requests are made, batches are counted from the batcher, refused images by their reason."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason='mnistlab serve needs the serve extra: pip install "mnistlab[serve]"')
pytest.importorskip("prometheus_client", reason='/metrics needs the serve extra: pip install "mnistlab[serve]"')

from conftest import REPO  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from mnistlab.serve import create_app  # noqa: E402
from mnistlab.serve.metrics import Metrics, refusal_reason, route_label  # noqa: E402

SEVEN = (REPO / "examples" / "digits" / "seven_pen.png").read_bytes()
BLANK = (REPO / "examples" / "digits" / "blank.png").read_bytes()


def scrape(c) -> dict[tuple[str, frozenset], float]:
    r = c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    families = text_string_to_metric_families(r.text)
    return {(s.name, frozenset(s.labels.items())): s.value for f in families for s in f.samples}


def value(metrics: dict, name: str, **labels) -> float:
    return metrics.get((name, frozenset(labels.items())), 0.0)


def test_route_labels_and_reasons_are_bounded():
    routes = frozenset({"/v1/predict", "/healthz"})
    assert route_label("/v1/predict", routes) == "/v1/predict"
    assert route_label("/static/app.js", routes) == "/static"
    assert route_label("/wp-admin/x", routes) == "other"  # an unknown path does not make a label of its own
    assert refusal_reason(422, "no_ink") == "no_ink"
    assert (refusal_reason(413), refusal_reason(415), refusal_reason(408), refusal_reason(503)) == (
        "too_large", "not_an_image", "slow_body", "busy",
    )  # fmt: skip


def test_each_app_has_a_registry_of_its_own():
    a, b = Metrics(lambda: 1, lambda: 2), Metrics(lambda: 0, lambda: 0)  # twice the same names: no clash
    a.answered("/healthz", "GET", 200, 0.01)
    a.batch(3)
    text = a.text().decode()
    assert 'mnistlab_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
    assert "mnistlab_in_flight 1.0" in text and "mnistlab_queue_depth 2.0" in text
    assert "mnistlab_batch_size_sum 3.0" in text
    assert "mnistlab_requests_total{" not in b.text().decode()


def test_counters_move_as_requests_are_made(bundled):
    app = create_app(bundled)
    with TestClient(app) as c:
        before = scrape(c)
        for _ in range(3):
            assert c.post("/v1/predict", content=SEVEN).status_code == 200
        assert c.post("/v1/predict", content=BLANK).status_code == 422
        assert c.post("/v1/predict", content=b"not an image").status_code == 415
        assert c.post("/v1/predict?top_k=99", content=SEVEN).status_code == 400
        assert c.get("/nowhere").status_code == 404
        after = scrape(c)
    ok = {"route": "/v1/predict", "method": "POST", "status": "200"}
    name = "mnistlab_requests_total"
    assert value(after, name, **ok) - value(before, name, **ok) == 3
    assert value(after, name, route="/v1/predict", method="POST", status="422") == 1
    assert value(after, name, route="other", method="GET", status="404") == 1
    assert value(after, name, route="/metrics", method="GET", status="200") == 1  # the first scrape
    count = "mnistlab_request_duration_seconds_count"
    assert value(after, count, route="/v1/predict") - value(before, count, route="/v1/predict") == 6
    refused = "mnistlab_images_refused_total"
    assert value(after, refused, status="422", reason="no_ink") == 1
    assert value(after, refused, status="415", reason="not_an_image") == 1
    assert value(after, refused, status="400", reason="bad_request") == 1
    # batches from the batcher (the warm-up batch is left out, as it is of /v1/model's stats)
    stats = app.state.mnistlab.batcher.stats
    assert value(after, "mnistlab_batch_size_count") == stats.batches >= 1
    assert value(after, "mnistlab_batch_size_sum") == stats.items == 3
    assert value(after, "mnistlab_in_flight") == 0 and value(after, "mnistlab_queue_depth") == 0


def test_metrics_answer_while_the_model_loads(bundled):
    import threading

    loaded = threading.Event()
    with TestClient(create_app(lambda: (loaded.wait(30), bundled)[1])) as c:
        assert c.post("/v1/predict", content=SEVEN).status_code == 503
        m = scrape(c)
        loaded.set()
    assert value(m, "mnistlab_requests_total", route="/v1/predict", method="POST", status="503") == 1
    assert value(m, "mnistlab_images_refused_total", status="503", reason="loading") == 1


def test_images_too_large_are_counted_by_reason(bundled):
    with TestClient(create_app(bundled, max_body=1000)) as c:
        assert c.post("/v1/predict", content=SEVEN + b"\0" * 1000).status_code == 413
        assert c.post("/v1/explain", content=b"\0" * 2000).status_code == 413
        assert c.get("/v1/model").status_code == 200
        m = scrape(c)
    assert value(m, "mnistlab_images_refused_total", status="413", reason="too_large") == 2
    assert value(m, "mnistlab_requests_total", route="/v1/explain", method="POST", status="413") == 1


def test_label_values_stay_bounded_whatever_clients_send(bundled):
    """Issue 28 row 2: every request with a method and path of its own (and a long method) adds no label value:
    methods come from a closed set, unknown paths are `other`, statuses a closed set or their class."""
    from mnistlab.serve.metrics import METHODS, STATUSES, method_label, status_label

    assert method_label("GET") == "GET" and method_label("X" * 60_000) == "other"
    assert [status_label(s) for s in (404, 418, 299, 999)] == ["404", "4xx", "2xx", "other"]
    app = create_app(bundled)
    registry = app.state.mnistlab.metrics.registry

    def series() -> set:  # (metric, its labels) without the histograms' buckets
        return {(s.name, frozenset((k, v) for k, v in s.labels.items() if k != "le"))
                for f in registry.collect() for s in f.samples}  # fmt: skip

    def bogus(c, i: int) -> None:
        c.request(f"BOGUS{i}{'M' * (i * 50)}", f"/nowhere/{i}/{'p' * i}")
        c.get(f"/static/missing-{i}.js")

    with TestClient(app) as c:
        for i in range(5):
            bogus(c, i)
        after_5 = series()
        for i in range(5, 300):
            bogus(c, i)
        after_300 = series()
    assert after_300 == after_5  # 590 more distinct methods and paths: not one series more
    values = {k: {v for _, ls in after_300 for k2, v in ls if k2 == k} for k in ("method", "route", "status")}
    assert values["method"] <= METHODS | {"other"} and "other" in values["method"]
    assert values["status"] <= {str(s) for s in STATUSES} | {"1xx", "2xx", "3xx", "4xx", "5xx", "other"}
    assert not any(r.startswith("/nowhere") for r in values["route"])
