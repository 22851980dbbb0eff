"""The server's limits, each declared once with its default and its meaning: `create_app`, `serve` and the flags of
`mnistlab serve` (its defaults and help) read them here (issue 30). Nothing but the standard library: --help needs
no FastAPI."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MB = 2**20  # a flag gives a size in MB (of 2**20 bytes); the limit holds bytes


def limit(default: Any, help: str, *, mb: bool = False, zero: bool = False) -> Any:
    """A limit's field: its default and its meaning in one line (its flag's help, before "(default: X)"); `mb`: held
    in bytes, given in MB by its flag (--NAME-mb); `zero`: its flag takes 0 too (else only numbers above 0)."""
    return field(default=default, metadata={"help": help, "mb": mb, "zero": zero})


@dataclass
class Limits:
    """What one server accepts and how it batches (the app's limits: `create_app`'s keyword arguments)."""

    max_batch: int = limit(32, "most images per forward pass (1: no batching)")
    max_wait_ms: float = limit(5.0, "most time a batch waits to fill", zero=True)
    max_queue: int = limit(256, "requests handled at once; more get 503")  # (admission)
    # a phone's JPEG fits, an upload that only wastes memory does not
    max_body: int = limit(8 * MB, "largest request body, in MB", mb=True)
    # an image's width x height, checked from its header. Below images.decode.MAX_PIXELS (50 M, what `mnistlab
    # predict` and the static page read): preparing takes about 12 bytes a pixel, and up to `prepare_workers`
    # images are prepared at once (4 x 16 MP: about 0.8 GB); a 12 MP photo fits
    max_pixels: int = limit(16_000_000, "largest uploaded image, width x height in pixels; larger ones get 413")
    # bodies are read before a request takes an admission place (issue 28: trickling bodies had held every place),
    # so max_queue no longer bounds their memory; this does: 32 bodies of max_body arriving at once fit, and a slow
    # client holds only the bytes it has sent
    max_reading: int = limit(256 * MB, "bodies being read, all together, in MB; past it 503", mb=True)
    # 8 MB at 2 Mbit/s arrives within it
    body_timeout_s: float = limit(30.0, "a request's body must arrive within this; slower ones get 408")
    # each image in a worker process of its own ...
    prepare_workers: int = limit(4, "images prepared at once; more get 503")
    # ... within this long (a 16 MP photo takes about 1 s), else the worker is killed
    prepare_timeout_s: float = limit(10.0, "an image that takes longer to prepare gets 422")


@dataclass
class HttpLimits:
    """What one client may hold of the server at the HTTP layer (issue 19: slow or half-open clients)."""

    # counted from when the connection opens
    header_timeout_s: float = limit(10.0, "a connection's request headers must arrive within this")
    keep_alive_s: float = limit(5.0, "idle kept-alive connections are closed after this")
    drain_s: float = limit(10.0, "on Ctrl-C or SIGTERM, requests in flight get this long to finish")
    # connections beyond it are closed as they arrive (serve.server.connection_cap keeps it below the fd limit)
    max_connections: int = limit(1000, "open connections at most, kept below the open-file limit")
