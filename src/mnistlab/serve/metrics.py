"""What /metrics reports: one app's Prometheus registry (requests, latencies, batches, queue, images refused)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
IMAGE_ROUTES = ("/v1/predict", "/v1/explain", "/v1/read")  # the routes that take an image
# seconds: a lone prediction takes a few ms on a CPU, a large photo about 1 s to prepare, a slow body up to 30 s
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
DEFAULT_REASONS = {400: "bad_request", 408: "slow_body", 413: "too_large", 415: "not_an_image"}
# Every label value comes from a closed set (issue 28: 5,000 requests, each with its own 60 KB method, had grown the
# registry by 291 MB for good): the methods HTTP defines (anything else is "other"), the app's routes (see
# `route_label`) and the status codes below (anything else by its class, "2xx" ... "5xx").
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"))
STATUSES = frozenset((200, 304, 400, 404, 405, 408, 413, 415, 422, 500, 501, 503))


def route_label(path: str, routes: Iterable[str]) -> str:
    """The route a request path belongs to, for a label: the path itself for the app's routes, `/static` for the
    page's files, `other` for anything else (a label per unknown path would let clients grow the registry)."""
    if path in routes:
        return path
    return "/static" if path.startswith("/static/") else "other"


def method_label(method: str) -> str:
    """The request's method for a label: one HTTP defines, else `other`."""
    return method if method in METHODS else "other"


def status_label(status: int) -> str:
    """The answer's status for a label: one the server gives, else its class (`4xx`, ...); `other` outside 100-599."""
    if status in STATUSES:
        return str(status)
    return f"{status // 100}xx" if 100 <= status < 600 else "other"


def refusal_reason(status: int, reason: str = "") -> str:
    """A refused image's reason label: the one the error gave, else one from its status."""
    return reason or DEFAULT_REASONS.get(status, "busy" if status == 503 else "other")


class Metrics:
    """The metrics of one app, in a registry of its own (several apps may live in one process, as in the tests).
    `in_flight`, `queue_depth` and `reading` are read when /metrics is scraped."""

    def __init__(
        self, in_flight: Callable[[], float], queue_depth: Callable[[], float], reading: Callable[[], float] = lambda: 0
    ):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "mnistlab_requests", "HTTP requests answered, by route, method and status", ["route", "method", "status"],
            registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "mnistlab_request_duration_seconds",
            "time from the request's arrival to the end of its answer, by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "mnistlab_batch_size", "requests answered by one forward pass of the batcher", buckets=BATCH_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.refused = Counter(
            "mnistlab_images_refused", "images refused by /v1/predict, /v1/explain and /v1/read, by status and reason",
            ["status", "reason"], registry=r,
        )  # fmt: skip
        self.in_flight = Gauge("mnistlab_in_flight", "requests admitted and not yet answered", registry=r)
        self.in_flight.set_function(in_flight)
        self.queue_depth = Gauge(
            "mnistlab_queue_depth", "requests waiting in the batcher for a forward pass", registry=r
        )
        self.queue_depth.set_function(queue_depth)
        self.reading = Gauge(
            "mnistlab_bodies_reading", "requests whose body is being read (before they are admitted)", registry=r
        )
        self.reading.set_function(reading)

    def answered(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method_label(method), status_label(status)).inc()
        self.latency.labels(route).observe(seconds)

    def refuse(self, status: int, reason: str = "") -> None:
        self.refused.labels(status_label(status), refusal_reason(status, reason)).inc()

    def batch(self, n: int) -> None:
        self.batch_size.observe(n)

    def text(self) -> bytes:
        return generate_latest(self.registry)
