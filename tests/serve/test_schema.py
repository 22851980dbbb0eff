"""Schemathesis against the OpenAPI schema `mnistlab serve` publishes: generated requests to every operation, valid
ones and invalid ones (negative mode: wrong types, out-of-range parameters, bodies that break the schema), get no
5xx; invalid ones are refused with a 4xx; every response (errors included) matches the schema's status codes,
content types and shapes."""

from __future__ import annotations

import itertools

import pytest

pytest.importorskip("fastapi", reason='mnistlab serve needs the serve extra: pip install "mnistlab[serve]"')
schemathesis = pytest.importorskip("schemathesis", reason="the schema test needs schemathesis (the test extra)")
from conftest import examples  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import positive_data_acceptance  # noqa: E402


def test_the_api_keeps_its_schema(served):
    served_schema = schemathesis.openapi.from_url(served + "openapi.json")
    # Each operation's cases are generated from the schema served (schemathesis's pytest plugin, from_fixture, is
    # not used: it breaks on this pytest). An image the schema allows may hold no digit (422): that check is off.
    operations = [result.ok() for result in served_schema.get_all_operations()]
    assert {op.path for op in operations} >= {
        "/v1/predict",
        "/v1/explain",
        "/v1/read",
        "/v1/model",
        "/healthz",
        "/readyz",
        "/metrics",
    }
    for op, mode in itertools.product(operations, GenerationMode):  # valid requests, then invalid ones
        if mode is GenerationMode.NEGATIVE and op.method.upper() == "GET":
            continue  # /healthz and /v1/model take nothing that could be invalid

        @given(case=op.as_strategy(generation_mode=mode))
        @settings(max_examples=examples(25), deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            case.call_and_validate(excluded_checks=[positive_data_acceptance])

        check()
