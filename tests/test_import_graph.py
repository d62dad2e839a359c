"""The first-party import graph: no cycles, and no module reaching into another's private names.

Every import counts, at module level or inside a function: a function-level import that closes
a cycle still ties the two modules together, it only hides it until the function runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit  # reads source files only

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("workers", "tasks", "db", "config", "cli")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def first_party_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:  # alembic loads these by path, never by import
                modules[module_name(path)] = path
    return modules


MODULES = first_party_modules()


def is_first_party(name: str) -> bool:
    return name.split(".")[0] in PACKAGES


def resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    package = module.split(".")
    if MODULES[module].name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str) -> tuple[set[str], list[tuple[str, str]]]:
    """The first-party modules ``module`` imports, and the private names it takes from them."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    targets: set[str] = set()
    private: list[tuple[str, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names if is_first_party(alias.name))
        elif isinstance(node, ast.ImportFrom):
            source = resolve(module, node)
            if not is_first_party(source):
                continue
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                # "from package import module" imports the module; anything else is a name of source.
                targets.add(submodule if submodule in MODULES else source)
                if alias.name.startswith("_") and not alias.name.startswith("__") and source != module:
                    private.append((source, alias.name))
    targets.discard(module)
    return {t for t in targets if t in MODULES}, private


GRAPH = {module: imports_of(module) for module in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that returns to its start, or None."""
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        path: list[str] = [start]
        on_path = {start}
        stack = [iter(sorted(graph[start]))]
        while stack:
            following = next(stack[-1], None)
            if following is None:  # every import of path[-1] explored: it is on no cycle
                stack.pop()
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                continue
            if following in on_path:
                return [*path[path.index(following) :], following]
            if following not in done:
                path.append(following)
                on_path.add(following)
                stack.append(iter(sorted(graph[following])))
    return None


def test_the_graph_covers_the_packages():
    assert "workers.pipeline.runner" in GRAPH and "tasks.generation" in GRAPH
    assert "workers.pipeline.settlement" in GRAPH["workers.pipeline.runner"][0]


def test_first_party_modules_import_one_another_without_cycles():
    cycle = find_cycle({module: targets for module, (targets, _) in GRAPH.items()})
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_imports_a_private_name_from_another():
    taken = [
        f"{module} imports {name} from {source}" for module, (_, private) in GRAPH.items() for source, name in private
    ]
    assert taken == [], "\n".join(taken)


def test_only_the_task_module_imports_the_runner():
    importers = sorted(module for module, (targets, _) in GRAPH.items() if "workers.pipeline.runner" in targets)
    assert importers == ["tasks.generation"]
