"""The package's module-level imports form no cycle, and the runtime never imports torch.

The graph is read from the source with ``ast`` (nothing is imported): an edge per import that runs
when a module is imported, i.e. outside function bodies and ``if TYPE_CHECKING:`` blocks. Imports
inside functions are lazy by design and are not edges. ``converters/`` is installed as
``edge_speech.converters`` and is mapped so here.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"edge_speech": ROOT / "edge_speech", "edge_speech.converters": ROOT / "converters"}
CONVERTER = "edge_speech.converters"
# Compiled extension modules (native/, built by CMake): leaves of the graph, not the package they sit in.
EXTENSIONS = {"edge_speech._native"}
# Third-party packages that are torch or load it when imported.
TORCH_PACKAGES = {"torch", "torchaudio", "torch_pruning", "transformers", "litert_torch", "ai_edge_torch"}


def module_files() -> Dict[str, Path]:
    modules = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            if package == "edge_speech" and parts[:1] == ["converters"]:
                continue  # not part of the package (converters/ lives at the top level)
            modules[".".join([package, *parts])] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def eager_imports(body: List[ast.stmt]) -> Iterator[ast.stmt]:
    """The import statements that run at import time: module level, in class bodies and in
    if/try/with/loop blocks, but not in functions or under ``if TYPE_CHECKING:``."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from eager_imports(node.body)
            yield from eager_imports(node.orelse)
        elif isinstance(node, ast.ClassDef):
            yield from eager_imports(node.body)
        else:  # try/with/for/while/match: their blocks, handlers and cases
            for field in ("body", "orelse", "finalbody"):
                yield from eager_imports(getattr(node, field, None) or [])
            for clause in (getattr(node, "handlers", None) or []) + (getattr(node, "cases", None) or []):
                yield from eager_imports(clause.body)


def imported_names(module: str, is_package: bool, node: ast.stmt) -> Iterator[str]:
    """Fully qualified names a statement imports (a module, or a module plus an attribute)."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
        return
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join(package + ([base] if base else []))
    for alias in node.names:
        yield f"{base}.{alias.name}" if alias.name != "*" else base


def import_graph() -> tuple:
    """({module: our modules it imports at import time}, {module: third-party top-level names})."""
    files = module_files()
    graph: Dict[str, Set[str]] = {}
    external: Dict[str, Set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        graph[module], external[module] = set(), set()
        for node in eager_imports(tree.body):
            for name in imported_names(module, path.name == "__init__.py", node):
                # the longest prefix that is one of our modules: `from pkg import module` or `from module import name`
                if name in EXTENSIONS:
                    continue
                parts = name.split(".")
                target = next(
                    (".".join(parts[:n]) for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in files), None
                )
                if target is not None:
                    if target != module:
                        graph[module].add(target)
                else:
                    external[module].add(parts[0])
    return graph, external


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def reachable(graph: Dict[str, Set[str]], start: str) -> Set[str]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def is_runtime(module: str) -> bool:
    return module != CONVERTER and not module.startswith(CONVERTER + ".")


def test_graph_sees_every_module_and_known_edges():
    graph, external = import_graph()
    assert {
        "edge_speech",
        "edge_speech.bundle",
        "edge_speech.manifest",
        "edge_speech._deps",
        CONVERTER,
        "edge_speech.converters.bundle_writer",
    } <= set(graph)
    assert "edge_speech.manifest" in graph["edge_speech.bundle"]
    assert "edge_speech.bundle" in graph["edge_speech.converters.bundle_writer"]
    assert "numpy" in external["edge_speech.backends"]


def test_module_level_imports_have_no_cycle():
    graph, _ = import_graph()
    assert cycles(graph) == [], "modules importing each other at import time (make one import lazy or move code)"


def test_runtime_modules_never_import_torch_at_module_level():
    graph, external = import_graph()
    offenders = {}
    for module in filter(is_runtime, graph):
        for dependency in reachable(graph, module):
            pulled = external[dependency] & TORCH_PACKAGES
            if pulled:
                offenders[module] = (dependency, sorted(pulled))
    assert offenders == {}


def test_runtime_modules_never_import_the_converter_at_module_level():
    graph, _ = import_graph()
    offenders = {m: sorted(d for d in reachable(graph, m) if not is_runtime(d)) for m in filter(is_runtime, graph)}
    assert {m: d for m, d in offenders.items() if d} == {}
