"""`mnistlab serve`: an HTTP API (FastAPI, dynamic batching) and a page to draw digits on; needs `mnistlab[serve]`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mnistlab.serve.app import create_app
    from mnistlab.serve.batcher import Batcher, QueueFull

__all__ = ["Batcher", "QueueFull", "create_app"]


def __getattr__(name: str):
    """The package's names, imported on first use: a preparation worker imports `mnistlab.serve.reading` alone,
    without FastAPI (issue 28)."""
    if name == "create_app":
        from mnistlab.serve.app import create_app

        return create_app
    if name in ("Batcher", "QueueFull"):
        from mnistlab.serve import batcher

        return getattr(batcher, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
