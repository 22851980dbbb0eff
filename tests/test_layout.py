"""The shape of the code, checked so that it stays so (issue 20): every module in src/ at most 450 lines (one
concept whole, as the brief and issue 30 set it) with a one-line docstring of its role, every function at most 60
lines, and no import cycle between mnistlab's modules."""

from __future__ import annotations

import ast
import functools
import importlib.util
from pathlib import Path

import pytest
from conftest import REPO

SRC = REPO / "src" / "mnistlab"
MODULES = sorted(p for p in SRC.rglob("*.py") if "__pycache__" not in p.parts)
MAX_MODULE, MAX_FUNCTION = 450, 60


@functools.cache
def hook_layers():
    """docs/hooks/layers.py, where the layers are declared (MAY_IMPORT, CROSSING) and drawn; imported by path."""
    spec = importlib.util.spec_from_file_location("layers", REPO / "docs" / "hooks" / "layers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def name(path: Path) -> str:
    return hook_layers().module_name(path)


@pytest.mark.parametrize("path", MODULES, ids=name)
def test_module_is_short_and_says_what_it_is_for(path):
    text = path.read_text()
    lines = text.count("\n")
    assert lines <= MAX_MODULE, f"{name(path)} has {lines} lines; split it (the limit is {MAX_MODULE})"
    doc = ast.get_docstring(ast.parse(text))
    assert doc and doc.splitlines()[0].strip(), f"{name(path)} opens with no docstring saying what it is for"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(text))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION
    ]
    assert not long, f"{name(path)}: functions over {MAX_FUNCTION} lines: {', '.join(long)}"


def imports(path: Path) -> set[str]:
    """The mnistlab names `path` imports, at any depth in the file, TYPE_CHECKING imports too (the hook's reading)."""
    return hook_layers().imported(path)


def test_no_import_cycles():
    modules = {name(p): p for p in MODULES}
    graph = {m: {i for i in imports(p) if i in modules and i != m} for m, p in modules.items()}
    for m in graph:  # a package's __init__ re-exporting its modules is not a cycle through them
        if modules[m].name == "__init__.py":
            graph[m] = {i for i in graph[m] if not i.startswith(m + ".")}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            assert state.get(n) != 1, "import cycle: " + " -> ".join(
                [*path[path.index(n) :], n] if n in path else [*path, n]
            )
            if n not in state:
                visit(n, [*path, n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


TESTS = REPO / "tests"
# Modules whose tests live in another module's file, and why
TESTED_IN = {
    "train.run": "train/test_train.py",  # `Run` is tested by training with it
    "train.training": "train/test_train.py",  # and so is `fit`, the loop over it
    "tune.trial": "tune/test_tune.py",  # a trial and a study are tested by tuning with them
    "tune.study": "tune/test_tune.py",
}


def expected_test_file(path: Path) -> str | None:
    """The test file a module's tests live in: tests mirror the packages, mnistlab/PKG/NAME.py in
    tests/PKG/test_NAME.py (the modules at the top in tests/test_NAME.py), the commands' (cli/, each a thin module)
    in tests/cli/test_cli.py, or TESTED_IN's; None for a package's __init__ or __main__."""
    parts = path.relative_to(SRC).with_suffix("").parts
    if parts[-1] in ("__init__", "__main__"):
        return None
    if parts[0] == "cli":
        return "cli/test_cli.py"
    return TESTED_IN.get(".".join(parts)) or "/".join([*parts[:-1], f"test_{parts[-1]}.py"])


def test_every_module_has_a_test_file():
    missing = [
        f"{name(p)} (tests/{expected_test_file(p)})"
        for p in MODULES
        if expected_test_file(p) and not (TESTS / expected_test_file(p)).is_file()
    ]
    assert not missing, "modules without a test file of their own: " + ", ".join(missing)


def test_tests_mirror_the_packages():
    """Every test file sits in the folder of the package it tests: tests/PKG/ for mnistlab/PKG/."""
    packages = {p.name for p in SRC.iterdir() if (p / "__init__.py").is_file()}
    stray = [p.parent.name for p in TESTS.glob("*/test_*.py") if p.parent.name not in packages]
    assert not stray, f"test folders with no package of that name: {sorted(set(stray))}"


def test_layers_hold():
    """Each package imports only the packages its rule names (docs/hooks/layers.py's MAY_IMPORT), at any depth in a
    file, TYPE_CHECKING imports included; the package's __init__ (lazy public names) is not checked."""
    rules = hook_layers()
    modules = {name(p): p for p in MODULES}
    assert set(map(rules.package_of, modules)) == set(rules.MAY_IMPORT), "a package with no rule in MAY_IMPORT"
    broken = []
    for m, path in sorted(modules.items()):
        if m == rules.CORE:
            continue
        own = rules.package_of(m)
        for i in sorted(imports(path)):
            other = rules.package_of(i)
            if i not in modules or other == own or (m, other) in rules.CROSSING:
                continue
            if other not in rules.MAY_IMPORT[own]:
                broken.append(f"{m} ({own}) imports {i} ({other})")
    assert not broken, "imports across the layers:\n" + "\n".join(broken)
