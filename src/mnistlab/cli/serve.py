"""`mnistlab serve`: options -> `load` -> `serve`: the HTTP API and the drawing page, within the limits given."""

from __future__ import annotations

import argparse
import sys

from mnistlab.cli import args as types
from mnistlab.errors import UserError
from mnistlab.infer.engine import is_onnx_file

HELP = 'an HTTP API and a page to draw digits on (needs: pip install "mnistlab[serve]")'
DESCRIPTION = (
    "Serve the model over HTTP: POST /v1/predict, /v1/read (every digit in a picture, the number whole) and "
    "/v1/explain, GET /v1/model, /healthz, /readyz and "
    "/metrics (Prometheus) (the schema at /openapi.json), and at / a page to draw digits on. Concurrent "
    "predictions are batched into one forward pass. Every answer carries an X-Request-ID."
)


# torch unless asked otherwise: the page's explanations need it, and on onnxruntime the first one waits while torch
# is imported; --engine onnx (or auto) runs the batches on onnxruntime, in about a fifth of the memory
ENGINE = "torch"

# (option, type, default, help): the server's limits; each help ends in its default
LIMITS = (
    ("--max-batch", types.positive_int, 32, "most images per forward pass (1: no batching)"),
    ("--max-wait-ms", types.non_negative_float, 5.0, "most time a batch waits to fill"),
    ("--max-queue", types.positive_int, 256, "requests handled at once; more get 503"),
    ("--max-body-mb", types.positive_float, 8.0, "largest request body, in MB"),
    ("--header-timeout-s", types.positive_float, 10.0, "a connection's request headers must arrive within this"),
    ("--body-timeout-s", types.positive_float, 30.0, "a request's body must arrive within this; slower ones get 408"),
    ("--max-reading-mb", types.positive_float, 256.0, "bodies being read, all together, in MB; past it 503"),
    ("--keep-alive-s", types.positive_float, 5.0, "idle kept-alive connections are closed after this"),
    ("--max-connections", types.positive_int, 1000, "open connections at most, kept below the open-file limit"),
    ("--prepare-workers", types.positive_int, 4, "images prepared at once; more get 503"),
    ("--prepare-timeout-s", types.positive_float, 10.0, "an image that takes longer to prepare gets 422"),
    ("--drain-s", types.positive_float, 10.0, "on Ctrl-C or SIGTERM, requests in flight get this long to finish"),
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s, this machine only)")
    p.add_argument("--port", type=types.port, default=8000, help="0 picks a free port (default: %(default)s)")
    for option, kind, default, help in LIMITS:
        p.add_argument(option, type=kind, default=default, help=f"{help} (default: %(default)g)")
    p.add_argument(
        "--access-log",
        choices=("off", "text", "json"),
        default="off",
        help="a line per request on stderr: text, or json (one object a line) (default: %(default)s)",
    )
    types.add_model_args(p, engine_fallback=ENGINE)


def run(args: argparse.Namespace) -> int:
    if is_onnx_file(args.model):  # its Explain needs the torch network's gradients
        raise UserError(
            "mnistlab serve needs torch weights (a run folder or a .safetensors file), not an ONNX file; "
            "--engine onnx runs the bundled model's batches on onnxruntime"
        )
    engine = types.chosen_engine(args, ENGINE)
    try:
        import fastapi  # noqa: F401
        import prometheus_client  # noqa: F401
        import python_multipart  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        missing = e.name or "FastAPI"
        raise UserError(f'mnistlab serve needs {missing}: install it with pip install "mnistlab[serve]"') from None
    from mnistlab.infer.classifier import load
    from mnistlab.serve import create_app
    from mnistlab.serve.server import HttpLimits, listen, serve, url

    sock = listen(args.host, args.port)  # OSError (port in use, ...): one line, exit 2
    try:
        classifier = load(args.model, device=args.device, engine=engine)
    except BaseException:
        sock.close()
        raise
    app = create_app(
        classifier,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        max_queue=args.max_queue,
        max_body=int(args.max_body_mb * 2**20),
        max_reading=int(args.max_reading_mb * 2**20),
        body_timeout_s=args.body_timeout_s,
        prepare_workers=args.prepare_workers,
        prepare_timeout_s=args.prepare_timeout_s,
        access_log=args.access_log,
    )
    http = HttpLimits(args.header_timeout_s, args.keep_alive_s, args.drain_s, args.max_connections)
    where = f"{classifier.source} on {classifier.engine}"
    print(f"mnistlab: serving {where} at {url(sock)} (Ctrl-C stops)", file=sys.stderr, flush=True)
    serve(app, sock, http, log=args.access_log)
    return 0
