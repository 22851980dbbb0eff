"""MkDocs hooks: the command reference rendered from `mnistlab.cli.build_parser` at build time, and the
repository's pictures (images/, examples/) published beside the pages that show them."""

from __future__ import annotations

import argparse
import ast
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MARKER = "<!-- mnistlab: command reference -->"  # where commands.md receives the generated reference
MODULES = "<!-- mnistlab: module list -->"  # where architecture.md receives the list of modules
PICTURES = ("images/*.png", "examples/digits/*.png", "examples/photos/*.png", "examples/photos/seen/*.png")
WIDTH = "100"  # argparse wraps help at $COLUMNS: fixed, so the page does not depend on the builder's terminal


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every sub-command of `parser`, by name, in the order they were added (aliases once, under their first name)."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                if all(sub is not seen for seen in found.values()):
                    found[name] = sub
    return found


def _help(parser: argparse.ArgumentParser) -> str:
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        return parser.format_help().rstrip()
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def reference(parser: argparse.ArgumentParser) -> str:
    """Markdown: the top-level help, then one section per sub-command holding its `--help`, verbatim."""
    parts = [f"### `{parser.prog}`", "", "```text", _help(parser), "```"]
    for name, sub in subcommands(parser).items():
        parts += ["", f"### `{parser.prog} {name}`", "", "```text", _help(sub), "```"]
    return "\n".join(parts) + "\n"


def build_parser() -> argparse.ArgumentParser:
    """The parser of this checkout's `mnistlab` (its src/ first, whatever else is installed)."""
    if str(REPO / "src") not in sys.path:
        sys.path.insert(0, str(REPO / "src"))
    from mnistlab.cli import build_parser as build

    return build()


def modules(root: Path = REPO / "src") -> str:
    """Markdown: a table of every module under `root`, with the first line of its docstring (read, not imported)."""
    rows = ["| module | role |", "|---|---|"]
    for path in sorted(root.rglob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        first = " ".join(doc.split("\n\n")[0].split()).replace("|", "\\|")
        rows.append(f"| `{path.relative_to(root).as_posix()}` | {first} |")
    return "\n".join(rows) + "\n"


def on_page_markdown(markdown, page, config, files):
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, reference(build_parser()))
    if MODULES in markdown:
        markdown = markdown.replace(MODULES, modules())
    return markdown


def on_files(files, config):
    """The pictures live outside docs/ (the README shows them too): publish each under its repository path."""
    from mkdocs.structure.files import File

    for pattern in PICTURES:
        for path in sorted(REPO.glob(pattern)):
            uri = path.relative_to(REPO).as_posix()
            if files.get_file_from_path(uri) is None:
                files.append(File(uri, str(REPO), config["site_dir"], config["use_directory_urls"]))
    return files
