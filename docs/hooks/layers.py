"""mnistlab's layers: the rules (which package may import which; tests/test_layout.py holds the code to them) and,
as a MkDocs hook, their picture (img/layers.svg), drawn from the package's own imports at build time.

Each package of src/mnistlab/ is a box (the modules at the top of the package are "mnistlab"); an arrow goes from
a package to each package it imports (read from the source with ast, lazy imports and TYPE_CHECKING ones too, not
imported). A package sits one row above the highest package it imports, so every arrow points down; an import
that pointed up or sideways would be a cycle, and tests/test_layout.py refuses those.
"""

from __future__ import annotations

import ast
import html
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src" / "mnistlab"
PICTURE = "img/layers.svg"  # where the site gets the picture; architecture.md shows it
TABLE = "<!-- mnistlab: layers -->"  # where architecture.md receives the table of packages and their imports
CORE = "mnistlab"  # the modules at the top: the network, the recipe and its ranges, pixels, calibration, errors
# What each package may import besides itself, lowest first (cli, the top, may import all of them). Reading and
# inference import nothing of data/ or train/; serve imports no training; train imports no inference API.
MAY_IMPORT = {
    CORE: set(),
    "store": {CORE},
    "images": {CORE},
    "infer": {CORE, "store", "images"},
    "data": {CORE, "store", "images"},
    "explain": {CORE, "data"},
    "reading": {CORE, "store", "images", "infer"},
    "synth": {CORE, "images", "data", "reading"},
    "train": {CORE, "store", "images", "data", "explain"},
    "export": {CORE, "store", "images", "infer", "reading", "explain"},
    "tune": {CORE, "store", "data", "train"},
    "serve": {CORE, "store", "images", "infer", "reading", "explain"},
    "cli": {
        CORE,
        "store",
        "images",
        "infer",
        "data",
        "explain",
        "reading",
        "synth",
        "train",
        "export",
        "tune",
        "serve",
    },
}
# The named exceptions, each with its reason (module, the package it may import); drawn dashed, not ranked.
CROSSING = {
    # the seed's names for its notebook (its train and test loops), kept where the seed had them
    ("mnistlab.utils", "train"),
    # `python -m mnistlab` is the command line
    ("mnistlab.__main__", "cli"),
    # a recipe names its dataset: checking that one setting reads the table of datasets (imported there only)
    ("mnistlab.recipe_schema", "data"),
}
BOX_W, BOX_H, GAP_X, GAP_Y, MARGIN = 150, 44, 24, 56, 16


def module_name(path: Path) -> str:
    """src/mnistlab/PKG/NAME.py -> mnistlab.PKG.NAME (a package's __init__: the package's name)."""
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str:
    """mnistlab.PKG.NAME -> PKG; a module at the top (or the package itself) -> CORE."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (SRC / parts[1]).is_dir()) else CORE


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(SRC.rglob("*.py")) if "__pycache__" not in p.parts}


def imported(path: Path) -> set[str]:
    """What `path` imports of mnistlab anywhere in the file (lazy and TYPE_CHECKING imports too): for `from X
    import a`, both X (importing X.a runs X's __init__) and X.a (a module, or a name in X); keep the module names."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("mnistlab"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mnistlab"))
    return found


def package_graph() -> tuple[dict[str, set[str]], set[tuple[str, str]], dict[str, int]]:
    """({package: the packages it imports}, the CROSSING imports as (package, package), {package: its modules})."""
    known = modules()
    graph: dict[str, set[str]] = {}
    crossing: set[tuple[str, str]] = set()
    sizes: dict[str, int] = {}
    for module, path in known.items():
        own = package_of(module)
        graph.setdefault(own, set())
        sizes[own] = sizes.get(own, 0) + 1
        if module == CORE:  # the package's __init__: its public names are imported lazily, by string
            continue
        for other in {package_of(m) for m in imported(path) if m in known} - {own}:
            if (module, other) in CROSSING:
                crossing.add((own, other))
            else:
                graph[own].add(other)
    return graph, crossing, sizes


def rows(graph: dict[str, set[str]]) -> dict[str, int]:
    """Each package's row: 0 for one that imports no other package, else one above the highest it imports."""
    row: dict[str, int] = {}

    def place(p: str, seen: tuple[str, ...] = ()) -> int:
        if p in seen:
            raise ValueError("import cycle between packages: " + " -> ".join([*seen, p]))
        if p not in row:
            row[p] = 1 + max((place(q, (*seen, p)) for q in graph[p]), default=-1)
        return row[p]

    for p in sorted(graph):
        place(p)
    return row


def reduced(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The imports not implied by a longer path (a imports c, but also b, which imports c: no arrow a -> c)."""

    def below(p: str) -> set[str]:
        return set().union(*({q} | below(q) for q in graph[p])) if graph[p] else set()

    return {p: {q for q in graph[p] if not any(q in below(r) for r in graph[p] - {q})} for p in graph}


def table() -> str:
    """Markdown: each package, its modules, and the packages it imports (all of them, not only the arrows)."""
    graph, crossing, sizes = package_graph()
    row, known = rows(graph), modules()
    lines = ["| package | modules | imports |", "|---|---|---|"]
    for p in sorted(graph, key=lambda p: (row[p], p)):
        names = sorted(m.rsplit(".", 1)[-1] for m in known if package_of(m) == p and m not in (CORE, f"{CORE}.{p}"))
        uses = sorted(graph[p]) + [f"{q} (named exception)" for o, q in sorted(crossing) if o == p]
        lines.append(f"| `{p if p == CORE else p + '/'}` | {', '.join(names)} | {', '.join(uses) or '(nothing)'} |")
    return "\n".join(lines) + "\n"


def svg() -> str:
    """The picture: packages in rows (the bottom row imports nothing), an arrow for each import that no longer
    path implies (`reduced`), dashed for the named exceptions."""
    full, crossing, sizes = package_graph()
    row = rows(full)
    graph = reduced(full)
    by_row: dict[int, list[str]] = {}
    for p in sorted(full, key=lambda p: (row[p], p)):
        by_row.setdefault(row[p], []).append(p)
    top = max(by_row)
    widest = max(len(v) for v in by_row.values())
    width = 2 * MARGIN + widest * BOX_W + (widest - 1) * GAP_X
    height = 2 * MARGIN + (top + 1) * BOX_H + top * GAP_Y
    where = {}
    for r, packages in by_row.items():
        span = len(packages) * BOX_W + (len(packages) - 1) * GAP_X
        for i, p in enumerate(packages):
            where[p] = ((width - span) / 2 + i * (BOX_W + GAP_X), MARGIN + (top - r) * (BOX_H + GAP_Y))
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" font-family="sans-serif">',
        '<defs><marker id="a" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" markerHeight="7" orient="auto">'
        '<path d="M0,0 L8,4 L0,8 z" fill="#888"/></marker></defs>',
    ]
    arrows = [(p, q, "") for p in sorted(graph) for q in sorted(graph[p])]
    arrows += [(p, q, ' stroke-dasharray="4 3"') for p, q in sorted(crossing)]
    for p, q, dash in arrows:
        (x1, y1), (x2, y2) = where[p], where[q]
        down = y2 > y1
        out.append(
            f'<line x1="{x1 + BOX_W / 2:.0f}" y1="{y1 + (BOX_H if down else 0):.0f}" x2="{x2 + BOX_W / 2:.0f}" '
            f'y2="{y2 + (0 if down else BOX_H):.0f}" stroke="#888" stroke-width="1"{dash} marker-end="url(#a)">'
            f"<title>{p} imports {q}</title></line>"
        )
    for p, (x, y) in sorted(where.items()):
        label = html.escape("mnistlab (top)" if p == CORE else f"{p}/")
        out.append(
            f'<g><rect x="{x:.0f}" y="{y:.0f}" width="{BOX_W}" height="{BOX_H}" rx="6" fill="#eef3fb" stroke="#36c"/>'
            f'<text x="{x + BOX_W / 2:.0f}" y="{y + 19:.0f}" text-anchor="middle" font-size="14">{label}</text>'
            f'<text x="{x + BOX_W / 2:.0f}" y="{y + 35:.0f}" text-anchor="middle" font-size="11" fill="#555">'
            f"{sizes[p]} modules</text></g>"
        )
    return "\n".join([*out, "</svg>"]) + "\n"


def on_page_markdown(markdown, page, config, files):
    return markdown.replace(TABLE, table()) if TABLE in markdown else markdown


def on_files(files, config):
    from mkdocs.structure.files import File

    files.append(File.generated(config, PICTURE, content=svg()))
    return files
