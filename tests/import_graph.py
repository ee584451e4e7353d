"""The import graph of one of this repository's packages, read from the source (nothing is
imported), for the layout tests of app/ and training/."""

import ast
from pathlib import Path


def module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_graph(package: Path) -> dict[str, set[str]]:
    """Each module of `package` and the modules of the package it imports, at the top, in a
    function or under TYPE_CHECKING; `from pkg import module` imports pkg.module."""
    paths = sorted(package.rglob("*.py"))
    known = {module_name(path, package) for path in paths}
    graph = {}
    for path in paths:
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
                names |= {f"{node.module}.{alias.name}" for alias in node.names} & known
        graph[module_name(path, package)] = {
            name for name in names if name == package.name or name.startswith(f"{package.name}.")
        }
    return graph


def import_loops(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every loop a depth-first walk meets, as the modules around it."""
    loops = []
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(edges.get(module, ())):
            if target not in edges:
                continue
            if state.get(target) == "open":
                loops.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    return loops
