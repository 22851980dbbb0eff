"""`mnistlab export --onnx FILE` / `--web DIR`: a model (bundled, a run folder's or a .safetensors file's) for other
runtimes, or the drawing page as a static site that runs it in the browser."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mnistlab.errors import UserError
from mnistlab.infer.engine import is_onnx_file

HELP = "write a model as ONNX (or a torch.export program) for use outside mnistlab"
DESCRIPTION = (
    "Write the bundled model, or --model's, as an ONNX file (opset 17, any batch size): input 'image', "
    "N x 1 x 28 x 28 float pixels in [0, 1], white ink on black, as mnistlab prepares them (the normalisation is "
    "inside the graph); output 'log_probs', N x classes. Its metadata holds the model card, the class names, "
    "the normalisation and the 'not a digit' temperature and threshold. mnistlab predict --model FILE.onnx reads "
    "it back (needs the onnx extra: pip install 'mnistlab[onnx]'). --web DIR writes the drawing page as a static site "
    "that runs the model in the browser (onnxruntime-web, shipped inside it): serve DIR from any static host."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--onnx", metavar="FILE", help="write the model as ONNX to FILE (.onnx)")
    p.add_argument(
        "--torch-export",
        metavar="FILE",
        help="write the model as a torch.export program to FILE (.pt2; torch.export.load(FILE).module() runs it)",
    )
    p.add_argument(
        "--web",
        metavar="DIR",
        help="write the drawing page as a static site to DIR, the model run in the browser (see docs/export.md)",
    )
    p.add_argument("--force", action="store_true", help="with --web: write into DIR even if it is not empty")
    p.add_argument(
        "--model",
        metavar="RUN_OR_WEIGHTS",
        help="a run folder or a .safetensors weights file (default: the weights bundled with mnistlab)",
    )


def run(args: argparse.Namespace) -> int:
    if not (args.onnx or args.torch_export or args.web):
        raise UserError("say what to write: --onnx FILE, --torch-export FILE and/or --web DIR")
    if args.onnx and not is_onnx_file(args.onnx):
        raise UserError(f"--onnx must name a .onnx file (mnistlab.load reads it by that suffix), not {args.onnx!r}")
    if is_onnx_file(args.model):
        raise UserError("--model must be a run folder or a .safetensors file, not an ONNX file")
    from mnistlab.export import onnx_export, web_export
    from mnistlab.infer.classifier import load
    from mnistlab.infer.output import printable
    from mnistlab.store.atomic_write import check_space, write_bytes

    _check_destinations(args)  # every mistake told before the model loads, and before anything is written
    if args.onnx or args.web:
        onnx_export.require_onnx()
    classifier = load(args.model, device="cpu")
    model = onnx_export.onnx_bytes(classifier) if args.onnx or args.web else b""
    files = {Path(args.onnx): model} if args.onnx else {}
    if args.torch_export:
        files[Path(args.torch_export)] = onnx_export.program_bytes(classifier)
    site = web_export.site_contents(model) if args.web else {}
    sizes = {path: len(data) for path, data in files.items()}
    check_space(sizes | {Path(args.web) / name: len(data) for name, data in site.items()})  # before any write
    for path, data in files.items():
        print(f"wrote {printable(str(write_bytes(path, data)))}", file=sys.stderr)
    if args.web:
        where = printable(str(web_export.write_site(Path(args.web), site)))
        print(f"wrote {where}/ (serve it from any static host: python -m http.server -d {where})", file=sys.stderr)
    return 0


def _check_destinations(args: argparse.Namespace) -> None:
    """--onnx and --torch-export name files in existing folders one may write to, not the same file, and neither
    inside --web DIR (the site writes its own files there: its model is DIR/model.onnx); --web DIR is fit for a
    site (`web_export.check_target`)."""
    from mnistlab.export import web_export

    files = {flag: Path(path) for flag, path in (("--onnx", args.onnx), ("--torch-export", args.torch_export)) if path}
    for flag, path in files.items():
        if path.is_dir():
            raise UserError(f"{flag} {path} is a folder; name a file")
        if not path.parent.is_dir():
            raise UserError(f"{flag} {path}: the folder {path.parent} does not exist; create it or name another")
        if not os.access(path.parent, os.W_OK | os.X_OK):
            raise UserError(f"{flag} {path}: cannot write into {path.parent} (permission denied)")
    if len(files) == 2 and files["--onnx"].resolve() == files["--torch-export"].resolve():
        raise UserError("--onnx and --torch-export name the same file; name two")
    if args.web:
        web_export.check_target(args.web, args.force)
        site = Path(args.web).resolve()
        for flag, path in files.items():
            if site in path.resolve().parents:
                raise UserError(
                    f"{flag} {path} is inside --web {args.web}, where the site writes its own files (its model is "
                    f"{Path(args.web) / web_export.MODEL}); name a file outside {args.web}"
                )
