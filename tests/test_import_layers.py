"""The panel's and the reports' modules import one way, and none reads another's underscore
names (docs/panel.md "Words and codes"; docs/integration.md "Exports")."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("dashboard", "monitor/records/report")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, ast.Module]:
    out: dict[str, ast.Module] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).glob("*.py")):
            out[module_name(path)] = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return out


def absolute(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    """The module an ``from … import`` names, relative imports resolved."""
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imported(name: str, tree: ast.Module, known: set[str]) -> Iterator[tuple[str, ast.AST]]:
    """Every module of ``known`` that ``name`` imports, at the top or inside a function (a
    deferred import is still a cycle, only one that waits to bite)."""
    is_package = name in {module_name(ROOT / p / "__init__.py") for p in PACKAGES}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    yield alias.name, node
        elif isinstance(node, ast.ImportFrom):
            target = absolute(node, name, is_package)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in known:
                    yield sub, node
                elif target in known:
                    yield target, node


def graph() -> dict[str, set[str]]:
    trees = modules()
    known = set(trees)
    return {
        name: {target for target, _ in imported(name, tree, known) if target != name}
        for name, tree in trees.items()
    }


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_module_graph_sees_the_imports_it_must_judge() -> None:
    """docs/panel.md "Words and codes": the graph is built from the modules' real imports."""
    edges = graph()
    assert "dashboard.words" in edges["dashboard.bedpage"]
    assert "dashboard.bedpage" in edges["dashboard.layout"]
    assert "monitor.records.report.html_kit" in edges["monitor.records.report.html_protocol"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_dashboard_or_report_module_imports_itself_round_a_cycle() -> None:
    """docs/panel.md "Words and codes": bedpage, layout and rems, html_report and html_protocol
    import one way."""
    assert cycles(graph()) == []


def test_the_words_and_widgets_modules_import_nothing_from_the_panel() -> None:
    """docs/panel.md "Words and codes": words.py and widgets.py are leaves of dashboard."""
    edges = graph()
    for leaf in ("dashboard.words", "dashboard.widgets", "monitor.records.report.html_kit"):
        package = leaf.rpartition(".")[0]
        assert {m for m in edges[leaf] if m.startswith(package + ".")} == set(), leaf


def test_no_module_reads_another_modules_underscore_names() -> None:
    """docs/panel.md "Words and codes": a name with a leading underscore stays in its module."""
    trees = modules()
    known = set(trees)
    found: set[str] = set()
    for name, tree in trees.items():
        aliases: dict[str, str] = {}
        for target, node in imported(name, tree, known):
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if alias.name.startswith("_") and f"{target}.{alias.name}" not in known:
                        found.add(f"{name} imports {target}.{alias.name}")
                    if f"{target}.{alias.name}" in known:
                        aliases[alias.asname or alias.name] = target
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    aliases[alias.asname or alias.name] = alias.name
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
            ):
                found.add(f"{name} reads {aliases[node.value.id]}.{node.attr}")
    assert sorted(found) == []
