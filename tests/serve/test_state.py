"""mnistlab.serve.state: what one server holds (the classifier, admission, preparation) and answers while loading."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

pytest.importorskip("fastapi", reason='mnistlab serve needs the serve extra: pip install "mnistlab[serve]"')

from mnistlab.serve.state import Limits, State  # noqa: E402
from mnistlab.serve.uploads import ApiError  # noqa: E402


def test_while_loading_every_request_is_a_503_saying_why():
    s = State(Limits())
    with pytest.raises(ApiError) as e:
        s.model()
    assert (e.value.status, e.value.message, e.value.headers) == (
        503,
        "the model is still loading",
        {"Retry-After": "1"},
    )
    s.load_error = "the model could not be loaded: boom"
    with pytest.raises(ApiError, match="boom"):
        s.model()


def test_ready_gives_the_classifier_and_its_layers(bundled):
    s = State(Limits())
    s.ready(bundled)
    assert s.model() is bundled
    assert [d["layer"] for d in s.layers][:2] == ["conv1", "conv2"]


def test_forward_answers_each_stack_of_a_batch(bundled):
    s = State(Limits())
    s.ready(bundled)
    stacks = [np.zeros((2, 28, 28), np.float32), np.zeros((3, 28, 28), np.float32)]
    a, b = s.forward(stacks)
    assert a.shape == (2, 10) and b.shape == (3, 10) and np.allclose(a.sum(1).numpy(), 1, atol=1e-4)


def test_admission_holds_a_place_per_request_and_refuses_past_max_queue(bundled):
    async def main():
        s = State(Limits(max_queue=1))
        s.start()
        s.ready(bundled)
        try:
            gate = asyncio.Event()

            async def held():
                await gate.wait()
                return s.in_flight

            first = asyncio.ensure_future(s.admitted(held))
            await asyncio.sleep(0)
            with pytest.raises(ApiError) as e:
                await s.admitted(held)
            gate.set()
            return e.value.status, e.value.message, await first, s.in_flight
        finally:
            await s.batcher.stop()

    status, message, inside, after = asyncio.run(main())
    assert (status, message, inside, after) == (503, "busy: 1 requests in hand", 1, 0)
