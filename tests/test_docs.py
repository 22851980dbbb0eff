"""The README and the docs site: the README stays short, its links and first commands work, and the generated
command reference covers every sub-command of the parser."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import re

from conftest import REPO, run_main

README = (REPO / "README.md").read_text(encoding="utf-8")
DOCS = REPO / "docs"


def _hook():
    """docs/hooks/mnistlab_docs.py, the MkDocs hook, imported by path (it needs no mkdocs for what is tested)."""
    spec = importlib.util.spec_from_file_location("mnistlab_docs", DOCS / "hooks" / "mnistlab_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _block(after: str, lang: str) -> list[str]:
    """The lines of the first ```lang block after the heading `after` in the README."""
    rest = README[README.index(after) :]
    return rest.split(f"```{lang}\n", 1)[1].split("```", 1)[0].splitlines()


def test_readme_is_at_most_250_lines():
    assert len(README.splitlines()) <= 250


def test_every_docs_page_the_readme_links_exists_and_is_in_the_site():
    linked = set(re.findall(r"\]\(docs/([^)#]+\.md)(?:#[^)]*)?\)", README))
    nav = set(re.findall(r":\s*(\S+\.md)\s*$", (REPO / "mkdocs.yml").read_text(encoding="utf-8"), re.M))
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert linked and all((DOCS / page).is_file() for page in linked), linked - pages
    assert linked <= nav and nav == pages, (linked - nav, nav ^ pages)
    for other in re.findall(r"\]\(([A-Z]+\.md)\)", README):
        assert (REPO / other).is_file(), other


def test_generated_command_reference_lists_every_subcommand():
    from mnistlab.cli import build_parser

    hook = _hook()
    assert hook.MARKER in (DOCS / "commands.md").read_text(encoding="utf-8")
    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    text = hook.reference(parser)
    assert sub.choices
    for name, command in sub.choices.items():
        assert f"### `mnistlab {name}`" in text and command.format_usage().split()[1:3] == ["mnistlab", name]
        assert f"usage: mnistlab {name}" in " ".join(text.split()), name


def test_module_list_names_every_module():
    text = _hook().modules()
    for path in (REPO / "src").rglob("*.py"):
        assert f"`{path.relative_to(REPO / 'src').as_posix()}`" in text


def test_the_readmes_first_command_ends_with_status_0():
    first = _block("## Three commands", "bash")[0].split("#")[0].split()
    assert first[:2] == ["mnistlab", "predict"], first
    r = run_main(*first[1:], cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 6 and not r.stderr


def test_the_readmes_test_command_is_what_ci_runs():
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert 'pip install -e ".[test]" && python -m pytest' in README
    assert 'pip install -q -e ".[test]"' in ci and ci.rstrip().endswith("python -m pytest")
    assert "mkdocs build --strict" in ci and ci.index("mkdocs build") < ci.index("python -m pytest")


def test_the_readmes_python_example_prints_what_it_says(monkeypatch):
    """Run in this process (a new one would spend most of its time importing torch), from the repository's root."""
    code = _block("## Use it from Python", "python")
    expected = [line[2:] for line in code if line.startswith("# ")]
    assert len(code) <= 10 and expected
    monkeypatch.chdir(REPO)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile("\n".join(code), "README.md", "exec"), {})
    assert out.getvalue().splitlines() == expected


def test_the_docs_give_the_limits_the_code_declares():
    """The limits the docs repeat are the declared ones (issue 30): each "`--flag` ... (default N)" in
    docs/server.md is the flag's default (serve.limits), the server's pixel limit is `Limits.max_pixels`, and the
    one of `mnistlab predict` and the static page is images.decode.MAX_PIXELS."""
    from mnistlab.cli import build_parser
    from mnistlab.images.decode import MAX_PIXELS
    from mnistlab.serve.limits import Limits

    server = (DOCS / "server.md").read_text(encoding="utf-8")
    defaults = vars(build_parser().parse_args(["serve"]))
    stated = re.findall(r"`--([\w-]+)`[^`(]{0,20}\(default\s+([\d.]+)", server)
    assert len({flag for flag, _ in stated}) >= 10, stated
    for flag, number in stated:
        assert float(number) == defaults[flag.replace("-", "_")], flag
    assert re.findall(r"over ([\d,]+) million pixels", server) == [f"{Limits.max_pixels / 10**6:g}"]
    for page in ("reliability.md", "your-digits.md"):
        said = re.findall(r"over \**([\d,]+) pixels", (DOCS / page).read_text(encoding="utf-8"))
        assert said == [f"{MAX_PIXELS:,}"], page


def test_the_layers_picture_is_drawn_from_the_imports(tmp_path):
    """docs/hooks/layers.py draws a box for every package, rows from its imports: every solid arrow points down
    (a package sits above all it imports), dashed ones for the named exceptions."""
    from test_layout import hook_layers

    layers = hook_layers()
    graph, crossing, _ = layers.package_graph()
    row = layers.rows(graph)
    assert set(graph) == set(layers.MAY_IMPORT) and all(row[p] > row[q] for p in graph for q in graph[p])
    svg = layers.svg()
    assert all(f">{p}/<" in svg for p in graph if p != layers.CORE) and ">mnistlab (top)<" in svg
    assert svg.count('stroke-dasharray="4 3"') == len(crossing) == 3
    assert "`infer/` | classifier, engine" in layers.table()
    page = (DOCS / "architecture.md").read_text()
    assert "](img/layers.svg)" in page and layers.TABLE in page
    assert "docs/hooks/layers.py" in (REPO / "mkdocs.yml").read_text()
