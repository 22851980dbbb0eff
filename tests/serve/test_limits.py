"""mnistlab.serve.limits: each of the server's limits declared once, and what reads it (create_app, the flags of
`mnistlab serve`, the HTTP layer) holds the declared default; the upload pixel limit stays within the decoder's."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from mnistlab.images.decode import MAX_PIXELS
from mnistlab.serve.limits import HttpLimits, Limits


def test_every_limit_has_a_default_and_a_one_line_meaning():
    for f in (*dataclasses.fields(Limits), *dataclasses.fields(HttpLimits)):
        assert f.default is not dataclasses.MISSING, f.name
        help = f.metadata["help"]
        assert help and "\n" not in help and not help.endswith("."), f.name
    assert Limits().max_body == Limits.max_body == 8 * 2**20  # a class attribute holds the default (create_app's)


def test_create_app_takes_every_limit_with_its_declared_default():
    pytest.importorskip("fastapi", reason='mnistlab serve needs the serve extra: pip install "mnistlab[serve]"')
    from mnistlab.serve import create_app

    params = inspect.signature(create_app).parameters
    declared = [(f.name, f.default) for f in dataclasses.fields(Limits)]
    given = [(name, p.default) for name, p in params.items() if name not in ("classifier", "access_log")]
    assert given == declared  # the same names, in the same order, with the same defaults


def test_the_servers_pixel_limit_is_within_the_decoders():
    """open_image allows min(max_pixels, MAX_PIXELS): a server limit above the decoder's would be silently lower."""
    assert Limits.max_pixels <= MAX_PIXELS
