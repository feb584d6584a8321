"""Import structure (issue 20): no import circles among the modules of indexer/ and webui/ -- counting imports inside
functions and under ``if TYPE_CHECKING:`` too, which only hide a circle -- and data flows down the pipeline
text -> ingest -> embed -> index/backends -> search -> engine -> cli/webui, never back up. Read with ast, so
nothing is imported."""
from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGES = ("indexer", "webui")
# The layers, lowest first; a module may import its own layer and those below.
LAYERS = [("indexer.types", "indexer.config", "indexer.fsutil", "indexer.progress"), ("indexer.text",),
          ("indexer.ingest",), ("indexer.embed",), ("indexer.index", "indexer.backends"), ("indexer.search",),
          ("indexer.engine", "indexer.curator", "indexer.jobs", "indexer.library", "indexer.faq", "indexer.questions"),
          ("indexer.cli", "indexer.cli_curation", "webui", "indexer")]


def _modules(root: Path = ROOT) -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for f in (root / pkg).rglob("*.py"):
            name = ".".join(f.relative_to(root).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = f
    return out


def _imports(mods: dict[str, Path]) -> dict[tuple[str, str], set[str]]:
    """(importer, imported) -> how: ``top`` (module level), ``lazy`` (inside a function), ``type`` (TYPE_CHECKING)."""
    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[tuple[str, str], set[str]] = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]

        def visit(node: ast.AST, how: str) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                    for c in child.body:
                        visit_one(c, "type")
                    for c in child.orelse:
                        visit_one(c, how)
                else:
                    visit_one(child, how)

        def visit_one(child: ast.AST, how: str) -> None:
            targets: list[str] = []
            if isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - child.level + 1] + ([base] if base else []))
                subs = [f"{base}.{a.name}" for a in child.names]
                targets = [t for t in subs if t in mods] or [base]  # `from pkg import module` imports the module
            for target in targets:
                found = owner(target)
                if found and found != name:
                    edges.setdefault((name, found), set()).add(how)
            if not isinstance(child, (ast.Import, ast.ImportFrom)):
                visit(child, "lazy" if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) and how == "top"
                      else how)

        visit(ast.parse(path.read_text("utf-8")), "top")
    return edges


def _circles(edges: dict[tuple[str, str], set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = stack[stack.index(v):]
            del stack[stack.index(v):]
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            strong(v)
    return out


def _layer(module: str) -> int | None:
    best: tuple[int, int] | None = None
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and (best is None or len(p) > best[1]):
                best = (i, len(p))
    return best[0] if best else None


def test_no_import_circles_not_even_hidden_in_functions_or_type_checking() -> None:
    edges = _imports(_modules())
    assert len(edges) > 200  # the graph was read (every module imports something of the project)
    circles = _circles(edges)
    assert not circles, "\n".join(
        " <-> ".join(c) + ": " + "; ".join(f"{a} -> {b} [{'/'.join(sorted(h))}]" for (a, b), h in sorted(edges.items())
                                           if a in c and b in c) for c in circles)


def _upward(edges: dict[tuple[str, str], set[str]]) -> list[str]:
    return [f"{a} -> {b} [{'/'.join(sorted(h))}]" for (a, b), h in sorted(edges.items())
            if _layer(a) is not None and _layer(b) is not None and _layer(b) > _layer(a)]  # type: ignore[operator]


def test_imports_flow_down_the_pipeline() -> None:
    up = _upward(_imports(_modules()))
    assert not up, "imports against text -> ingest -> embed -> index/backends -> search -> engine -> cli/webui:\n" + \
        "\n".join(up)


def test_the_checks_see_a_circle_and_an_upward_import(tmp_path: Path) -> None:
    """The reader itself, on a small tree: a circle closed by a TYPE_CHECKING import, and an upward import inside a
    function, are both found."""
    files = {"indexer/__init__.py": "", "indexer/index/__init__.py": "", "indexer/search/__init__.py": "",
             "indexer/search/rank.py": "X = 1\n",
             "indexer/index/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from indexer.index import b\n",
             "indexer/index/b.py": "from .a import TYPE_CHECKING\n\n\ndef f():\n    from indexer.search.rank import X\n"}
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, "utf-8")
    edges = _imports(_modules(tmp_path))
    assert edges == {("indexer.index.a", "indexer.index.b"): {"type"}, ("indexer.index.b", "indexer.index.a"): {"top"},
                     ("indexer.index.b", "indexer.search.rank"): {"lazy"}}
    assert _circles(edges) == [["indexer.index.a", "indexer.index.b"]]
    assert _upward(edges) == ["indexer.index.b -> indexer.search.rank [lazy]"]
