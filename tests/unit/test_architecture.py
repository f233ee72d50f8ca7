"""The import graph: no cycle anywhere, and the layers of the README's architecture picture.

Every import counts, those inside functions too (a function-level import hides a cycle from
Python, not from a reader). Layers, from the bottom:

* ``sentiment.core`` computes: it imports only itself and the shared vocabulary
  (``sentiment.models``, ``sentiment.errors``, ``sentiment.config``), and no framework,
  database or network library;
* ``sentiment.history``, ``sentiment.tracker`` and ``sentiment.hmm`` are the public
  computing API built on it, equally pure;
* ``sentiment.io`` adapts the outside world (storage, exchanges) and never reaches up into
  ``sentiment.services``;
* ``sentiment.services`` composes both; ``sentiment.cli`` is the command-line entry point;
* ``orchestration`` (Dagster), ``dashboard`` (Streamlit) and ``replay`` (the recorded
  exchange for the demo and the tests) sit on top: the product package imports none of
  them, except the CLI's ``replay-server`` and ``evaluate --html`` commands.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("sentiment", "orchestration", "dashboard", "replay")
FRAMEWORKS = {"dagster", "dagster_duckdb", "streamlit", "plotly", "duckdb", "requests",
              "urllib3", "websocket", "websockets", "yaml"}


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every module ``name`` imports (ours resolved to the module, others to their top)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in MODULES else base)
    out = set()
    for module in found:
        if module in MODULES:
            out.add(module)
        elif module.split(".")[0] in PACKAGES:
            # ``a.b.c`` where ``c`` is a name: the longest module prefix.
            parts = module.split(".")
            while parts and ".".join(parts) not in MODULES:
                parts.pop()
            if parts:
                out.add(".".join(parts))
        else:
            out.add(module.split(".")[0])
    out.discard(name)
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
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
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_is_read_from_the_sources():
    # The checks below mean something only if the graph holds the real edges.
    assert "sentiment.core.engine" in GRAPH["sentiment.history"]
    assert "sentiment.services.pipeline" in GRAPH["sentiment.services.live"]
    assert "numba" in GRAPH["sentiment.core.engine"]
    assert "dagster" in GRAPH["orchestration.definitions"]


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_anywhere():
    assert _cycles(GRAPH) == []


def _ours(name: str) -> set[str]:
    return {m for m in GRAPH[name] if m.split(".")[0] in PACKAGES}


COMPUTING = ("sentiment.core", "sentiment.history", "sentiment.tracker", "sentiment.hmm")
VOCABULARY = ("sentiment.models", "sentiment.errors", "sentiment.config")


def _within(module: str, prefixes) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("name", sorted(m for m in MODULES if _within(m, COMPUTING)))
def test_the_computing_core_imports_only_itself_and_the_vocabulary(name):
    assert not {m for m in _ours(name) if not _within(m, COMPUTING + VOCABULARY)}
    assert not GRAPH[name] & FRAMEWORKS


@pytest.mark.parametrize("name", sorted(m for m in MODULES if _within(m, ("sentiment.io",))))
def test_adapters_never_reach_up_into_the_services(name):
    assert not {m for m in _ours(name) if _within(m, ("sentiment.services", "sentiment.cli"))}


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m.startswith("sentiment")))
def test_the_product_package_imports_no_wiring(name):
    outside = {m for m in _ours(name) if not m.startswith("sentiment")}
    if name == "sentiment.cli":  # `replay-server` and `evaluate --html`
        outside -= {"replay.server", "dashboard.report"}
    assert not outside
