"""`mnistlab serve`: options -> `load` -> `serve`: the HTTP API and the drawing page, within the limits given."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from typing import cast

from mnistlab.cli import args as types
from mnistlab.errors import UserError
from mnistlab.infer.engine import is_onnx_file
from mnistlab.serve.limits import MB, HttpLimits, Limits

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

# the limits given as flags, in the order of the help; each is declared, with its default and meaning, in serve.limits
FLAGS = (
    "max_batch", "max_wait_ms", "max_queue", "max_body", "header_timeout_s", "body_timeout_s", "max_reading",
    "keep_alive_s", "max_connections", "prepare_workers", "prepare_timeout_s", "drain_s",
)  # fmt: skip
DECLARED = {f.name: f for limits in (Limits, HttpLimits) for f in dataclasses.fields(limits)}


def limit_flag(name: str) -> tuple[str, Callable, float, str]:
    """The flag of the limit `name` as (option, type, default, help), from its declaration: in MB for a size held in
    bytes; an int a whole number above 0; a float a number above 0 (or 0 too where the limit allows it)."""
    f = DECLARED[name]
    mb, zero, help = f.metadata["mb"], f.metadata["zero"], f.metadata["help"]
    option = "--" + name.replace("_", "-") + ("-mb" if mb else "")
    if isinstance(f.default, int) and not mb:
        kind: Callable = types.positive_int
    else:
        kind = types.non_negative_float if zero else types.positive_float
    default = cast(float, f.default)  # (every limit has one)
    return option, kind, default / MB if mb else default, help


def given_limits(args: argparse.Namespace, limits: type) -> dict:
    """The fields of `limits` (Limits or HttpLimits) that flags give, as given (a size back in bytes)."""
    given = {}
    for f in dataclasses.fields(limits):
        if f.name in FLAGS:
            value = getattr(args, limit_flag(f.name)[0][2:].replace("-", "_"))
            given[f.name] = int(value * MB) if f.metadata["mb"] else value
    return given


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s, this machine only)")
    p.add_argument("--port", type=types.port, default=8000, help="0 picks a free port (default: %(default)s)")
    for option, kind, default, help in map(limit_flag, FLAGS):
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
    from mnistlab.serve.server import listen, serve, url

    sock = listen(args.host, args.port)  # OSError (port in use, ...): one line, exit 2
    try:
        classifier = load(args.model, device=args.device, engine=engine)
    except BaseException:
        sock.close()
        raise
    app = create_app(classifier, **given_limits(args, Limits), access_log=args.access_log)
    http = HttpLimits(**given_limits(args, HttpLimits))
    where = f"{classifier.source} on {classifier.engine}"
    print(f"mnistlab: serving {where} at {url(sock)} (Ctrl-C stops)", file=sys.stderr, flush=True)
    serve(app, sock, http, log=args.access_log)
    return 0
