"""The house's import rules (README "Layout"), kept by walking the import graph with `ast`.

Imports only point down: `engine/ ladders/ packager/ classifiers/ cdn/ recsys/` import nothing
from `api/`, `worker` or `cli`; `api/core` imports no domain; domains import `core` and each
other without cycles (between modules and between packages); only `worker.py` and the app factory
import `api/jobs`; nothing imports the app, the middlewares or the CLI from below.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("api", "engine", "ladders", "packager", "classifiers", "cdn", "recsys", "cli", "worker")
LOWER = ("engine", "ladders", "packager", "classifiers", "cdn", "recsys")
TOP = ("api.app", "api.middleware", "api.health", "worker", "cli")
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def product_modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for top in PRODUCT:
        single = ROOT / f"{top}.py"
        if single.exists():
            found[top] = single
        folder = ROOT / top
        if folder.is_dir():
            for path in sorted(folder.rglob("*.py")):
                found[_module_name(path)] = path
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The product module an import refers to (the longest known prefix), or None."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _package(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module → the product modules it imports (anywhere in the file, TYPE_CHECKING too)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = _package(module, path).split(".")
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                # `from pkg import sub` imports the submodule `pkg.sub` when there is one.
                targets = [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                found = _resolve(target, modules)
                if found is not None and found != module:
                    graph[module].add(found)
        graph.setdefault(module, set())
    return graph


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

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
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def domain_of(module: str) -> str | None:
    """`api.feed.store` → `api.feed`; None outside the domains (core, app, middleware...)."""
    parts = module.split(".")
    if parts[0] != "api" or len(parts) < 2:
        return None
    package = ".".join(parts[:2])
    if package in ("api.core", *TOP) or not (ROOT / "api" / parts[1]).is_dir():
        return None
    return package


MODULES = product_modules()
GRAPH = import_graph(MODULES)


def edges() -> list[tuple[str, str]]:
    return [(src, dst) for src, dsts in sorted(GRAPH.items()) for dst in sorted(dsts)]


def test_the_graph_sees_the_code() -> None:
    # The walk must find what is known to be there, or every rule below passes vacuously.
    assert "api.core.settings" in MODULES and "engine.pipeline" in MODULES
    assert "api.core.settings" in GRAPH["api.core.db"]
    assert "engine.source" in GRAPH["engine.pipeline"]
    assert len(edges()) > 300


def test_no_module_cycles() -> None:
    assert cycles(GRAPH) == []


def test_no_cycles_between_domains() -> None:
    packages: dict[str, set[str]] = defaultdict(set)
    for src, dst in edges():
        a, b = domain_of(src), domain_of(dst)
        if a and b and a != b:
            packages[a].add(b)
    assert cycles(packages) == []


@pytest.mark.parametrize("lower", LOWER)
def test_lower_layers_import_nothing_above(lower: str) -> None:
    upward = [
        (src, dst)
        for src, dst in edges()
        if _within(src, lower) and any(_within(dst, top) for top in ("api", "worker", "cli"))
    ]
    assert upward == []


def test_core_imports_no_domain() -> None:
    upward = [
        (src, dst)
        for src, dst in edges()
        if _within(src, "api.core") and _within(dst, "api") and not _within(dst, "api.core")
    ]
    assert upward == []


def test_only_the_worker_and_the_app_factory_import_jobs() -> None:
    allowed = ("worker", "api.app", "api.jobs")
    outside = [
        (src, dst)
        for src, dst in edges()
        if _within(dst, "api.jobs") and not any(_within(src, a) for a in allowed)
    ]
    assert outside == []


def test_nothing_imports_the_top() -> None:
    """The app, the middlewares, the health routes, the worker and the CLI sit on top."""
    wrong = [
        (src, dst)
        for src, dst in edges()
        if any(_within(dst, top) for top in TOP) and not any(_within(src, top) for top in TOP)
    ]
    assert wrong == []


def test_product_modules_stay_small() -> None:
    big = {
        name: n
        for name, path in MODULES.items()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert big == {}


def test_rules_catch_a_violation() -> None:
    """The checks above can fail: a made-up upward import and cycle are found."""
    graph = {k: set(v) for k, v in GRAPH.items()}
    graph["api.core.db"].add("api.feed.store")
    graph["api.feed.store"].add("api.core.db")
    assert any("api.core.db" in c and "api.feed.store" in c for c in cycles(graph))


def external_imports(path: Path) -> set[str]:
    """Every module name a file imports (third-party ones included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _is_controller(module: str) -> bool:
    """A domain's HTTP surface: its controllers and the OpenAPI description they use."""
    return module.rpartition(".")[2].endswith(("controllers", "openapi"))


def test_controllers_hold_no_sql() -> None:
    """Thin controllers: a handler parses, calls a service, returns a schema."""
    assert any(_is_controller(m) for m in MODULES)
    with_sql = {
        module: sorted(
            name
            for name in external_imports(MODULES[module])
            if _within(name, "sqlalchemy") or _within(name, "api.core.tables")
        )
        for module in MODULES
        if _is_controller(module)
    }
    assert {module: names for module, names in with_sql.items() if names} == {}


HTTP_LAYER = ("api.app", "api.middleware", "api.health", "api.core.errors", "api.core.caller")


def test_services_raise_domain_errors_not_http() -> None:
    """Only the HTTP layer (controllers, middlewares, the app, the error table, the route
    guards) speaks litestar; services raise domain errors and never see a request."""
    found = {
        module: sorted(n for n in external_imports(path) if _within(n, "litestar"))
        for module, path in MODULES.items()
        if _within(module, "api")
        and not _is_controller(module)
        and not any(_within(module, layer) for layer in HTTP_LAYER)
    }
    assert {module: names for module, names in found.items() if names} == {}
    # ...and import the error classes from where they are defined, not from the HTTP table.
    via_table = [
        module
        for module, path in MODULES.items()
        if _within(module, "api")
        and not _is_controller(module)
        and not any(_within(module, layer) for layer in HTTP_LAYER[:-1])
        and "api.core.errors" in external_imports(path)
    ]
    assert via_table == []
