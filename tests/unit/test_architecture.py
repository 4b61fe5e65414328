"""The import graph of ``service`` and ``schemas``, read from the source: no cycles, and data
flowing one way (api -> ingest -> store; api -> jobs -> workers -> store).

Every ``import`` counts, at module level or inside a function (a deferred import hides a cycle
from the interpreter, not from a reader), and so do imports under ``TYPE_CHECKING``. ``from
package import name`` is an edge to ``package.name`` when that is a module, else to the
package's ``__init__``. A parent package is not an implicit dependency: ``service.store.sql``
importing ``service.store.paging`` does not make it depend on ``service/store/__init__.py``.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("service", "schemas")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def _imported(module: str, path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """The modules of ``PACKAGES`` that ``module`` imports, each with the line it does it on."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _known(alias.name, known, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                target = f"{source}.{alias.name}"
                if target in known:
                    yield target, node.lineno
                else:
                    yield from _known(source, known, node.lineno)


def _known(name: str, known: set[str], line: int) -> Iterator[tuple[str, int]]:
    # ``import a.b.c`` of a module that does not exist (a typo) fails elsewhere; the longest
    # existing prefix is what the import runs
    while name and name not in known:
        name = name.rpartition(".")[0]
    if name:
        yield name, line


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported module: first line importing it}."""
    modules = _modules()
    known = set(modules)
    graph: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        edges: dict[str, int] = {}
        for target, line in _imported(module, path, known):
            if target != module:
                edges.setdefault(target, line)
        graph[module] = edges
    return graph


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module: each holds a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return components


def a_cycle(graph: dict[str, dict[str, int]], component: list[str]) -> list[str]:
    """One cycle through the component's first module, as ``a -> b -> ... -> a``."""
    members = set(component)
    start = component[0]
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:  # breadth first: the shortest way back to ``start``
        following = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [*reversed(path), start]
                if w in members and w not in parent:
                    parent[w] = v
                    following.append(w)
        frontier = following
    raise AssertionError(f"no cycle in {component}")


def _describe(graph: dict[str, dict[str, int]], cycle: list[str]) -> str:
    steps = [f"{a} (line {graph[a][b]}) -> {b}" for a, b in itertools.pairwise(cycle)]
    return "; ".join(steps)


GRAPH = import_graph()


def test_the_graph_sees_the_tree() -> None:
    """A guard on the reader itself: known edges are found, module-level and deferred."""
    assert "service.jobs.evaluate" in GRAPH
    assert "service.workers.metrics" in GRAPH["service.jobs.evaluate"]
    assert "service.store" in GRAPH["service.jobs.pool"]  # imported inside a function


def test_no_import_cycles() -> None:
    cycles = [_describe(GRAPH, a_cycle(GRAPH, c)) for c in strongly_connected(GRAPH)]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_cycle_finder_names_a_cycle() -> None:
    graph = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3, "d": 4}, "d": {}}
    (component,) = strongly_connected(graph)
    assert component == ["a", "b", "c"]
    assert a_cycle(graph, component) == ["a", "b", "c", "a"]


#: (importer prefix, forbidden prefixes, why)
RULES = [
    (
        "service.workers",
        ("service.api", "service.store", "service.jobs", "service.ingest", "service.integrations"),
        "workers are pure computations: arrays and options in, result models out; no I/O",
    ),
    (
        "service.store",
        ("service.ingest", "service.jobs", "service.api"),
        "the store keeps what it is given; decoding and validating it is ingest's",
    ),
    (
        "service.ingest",
        ("service.store", "service.jobs", "service.api", "service.workers"),
        "ingest turns a body into a canonical table; the API hands it to the store",
    ),
    ("schemas", ("service",), "the wire models are the contract; the service implements them"),
    ("service.jobs", ("service.api",), "jobs run without HTTP requests (yardstick worker)"),
]

#: (importer, imported, why it is allowed): none today
EXCEPTIONS: list[tuple[str, str, str]] = []


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


@pytest.mark.parametrize(("layer", "forbidden", "why"), RULES, ids=[r[0] for r in RULES])
def test_data_flows_one_way(layer: str, forbidden: tuple[str, ...], why: str) -> None:
    allowed = {(a, b) for a, b, _ in EXCEPTIONS}
    broken = [
        f"{module} (line {line}) imports {target}"
        for module, edges in GRAPH.items()
        if _under(module, layer)
        for target, line in edges.items()
        if any(_under(target, f) for f in forbidden) and (module, target) not in allowed
    ]
    assert not broken, f"{layer} must not import {', '.join(forbidden)} ({why}):\n" + "\n".join(broken)
