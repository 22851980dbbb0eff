"""`mnistlab serve`: an HTTP API (FastAPI, dynamic batching) and a page to draw digits on; needs `mnistlab[serve]`."""

from mnistlab.serve.app import create_app
from mnistlab.serve.batcher import Batcher, QueueFull

__all__ = ["Batcher", "QueueFull", "create_app"]
