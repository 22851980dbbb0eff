"""The `mnistlab` command: train, evaluate, summary, predict, export, serve, datasets, tune; a mistake: one line."""

from __future__ import annotations

import argparse
import os
import signal
import sys

# Before anything imports NumPy: its OpenBLAS starts a thread pool at import, ~50 ms of `mnistlab predict`'s 0.6 s
# on 2 cores (measured, see docs/export.md), and the commands' NumPy work is elementwise, image-sized, never BLAS.
# Torch has its own threads. A value the user set wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from mnistlab.about import version
from mnistlab.cli import datasets, evaluate, export, predict, report, serve, summary, train, tune
from mnistlab.cli.args import Parser
from mnistlab.cli.recipe_flags import recipe_from_args
from mnistlab.errors import UserError

__all__ = ["COMMANDS", "build_parser", "main", "recipe_from_args"]

# each command's module: HELP and DESCRIPTION, add_arguments(parser) declares its options, run(args) does the work
# and returns the exit status
COMMANDS = {m.__name__.rsplit(".", 1)[1]: m for m in (train, evaluate, summary, predict, export, serve, datasets, tune)}


def build_parser() -> argparse.ArgumentParser:
    """`mnistlab`'s parser: the global options, then one sub-command per module in COMMANDS."""
    parser = Parser(prog="mnistlab", description="Train, explain and use the seed CNN on MNIST.")
    parser.add_argument("--version", action=_Version)
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    for name, command in COMMANDS.items():
        command.add_arguments(sub.add_parser(name, help=command.HELP, description=command.DESCRIPTION))
    return parser


class _Version(argparse.Action):
    """--version, looked up only when asked for: reading the installed package's metadata costs every other command
    about 50 ms (importlib.metadata), a tenth of `mnistlab predict` on onnxruntime."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="show the version and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"mnistlab {version()}")
        parser.exit()


def main(argv: list[str] | None = None) -> int:
    """Run `mnistlab ARGV` (default: this process's arguments) and return its exit status."""
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv  # before parsing: a parser's mistake shows its traceback too
    try:
        args = build_parser().parse_args(argv)
        if args.command == "train":
            signal.signal(signal.SIGTERM, report.on_sigterm)
        return COMMANDS[args.command].run(args)
    except BrokenPipeError:
        return report.broken_pipe()
    except (UserError, OSError) as e:  # OSError: disk full, permission denied, ...: the user's environment
        return report.user_error(e, debug)
    except KeyboardInterrupt as e:
        return report.interrupted(e, debug)
    except Exception as e:
        from mnistlab.train.distributed import launched

        if not launched() or debug:
            raise
        return report.peer_failed(e)  # one of several processes: one line, not a traceback
