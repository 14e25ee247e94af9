"""The package's modules import each other without cycles: every import, at module level or inside
a function, counts (an import moved into a function only hides a cycle); those under
``if TYPE_CHECKING:`` do not, as they never run."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = "bertsmith"


def modules(src: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` (under ``src``) by its dotted name (a package by its own name, for its
    __init__)."""
    out = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement of a module, outside ``if TYPE_CHECKING:`` blocks (their ``else`` runs)."""
    found, todo = [], [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        children = node.orelse if _type_checking(node) else ast.iter_child_nodes(node)
        todo.extend(children)
    return found


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that running module ``name`` (at ``path``) imports: each one named, and the
    packages above it whose ``__init__`` runs first (not those above ``name`` itself, already running)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
            continue
        base = node.module or ""
        if node.level:
            base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
        targets.add(base)
        targets |= {f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known}
    out = set()
    for target in targets:
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            module = ".".join(parts[:i])
            if module in known and not (name == module or name.startswith(module + ".")):
                out.add(module)
    return out


def graph(src: Path = SRC, package: str = PACKAGE) -> dict[str, set[str]]:
    """Each module of ``package`` → the package's modules it imports."""
    found = modules(src, package)
    return {name: imported(name, path, set(found)) for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each group of modules that import each other (Tarjan's strongly connected
    components), as the path of module names from one back to itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = {stack.pop()}
            while node not in group:
                group.add(stack.pop())
            if len(group) > 1:
                groups.append(group)

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return [_path(edges, group) for group in groups]


def _path(edges: dict[str, set[str]], group: set[str]) -> list[str]:
    """The shortest path within ``group`` from its first module back to itself."""
    start = min(group)
    paths = {start: [start]}
    todo = [start]
    while todo:
        node = todo.pop(0)
        for nxt in sorted(edges[node] & group):
            if nxt == start:
                return paths[node] + [start]
            if nxt not in paths:
                paths[nxt] = paths[node] + [nxt]
                todo.append(nxt)
    raise AssertionError(f"no cycle through {sorted(group)}")


def test_the_package_has_no_import_cycles():
    found = cycles(graph())
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_the_walk_sees_relative_function_level_and_package_imports_but_not_type_checking_ones(tmp_path):
    files = {
        "__init__.py": "",
        "a.py": "from typing import TYPE_CHECKING\nfrom . import b\nif TYPE_CHECKING:\n    from .c import C\n"
        "else:\n    import pkg.d\n",
        "b.py": "def f():\n    from .sub.e import g\n",
        "c.py": "",
        "d.py": "",
        "sub/__init__.py": "from .e import g\n",
        "sub/e.py": "from .. import c\nfrom . import f\n\ndef g():\n    import os\n",
        "sub/f.py": "",
    }
    for name, text in files.items():
        (tmp_path / "pkg" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "pkg" / name).write_text(text)
    assert graph(tmp_path, "pkg") == {
        "pkg": set(),
        "pkg.a": {"pkg.b", "pkg.d"},
        "pkg.c": set(),
        "pkg.d": set(),
        "pkg.sub.f": set(),
        "pkg.b": {"pkg.sub", "pkg.sub.e"},  # inside a function; the package's __init__ runs first
        "pkg.sub": {"pkg.sub.e"},
        "pkg.sub.e": {"pkg.c", "pkg.sub.f"},  # not the packages already running
    }


def test_a_cycle_is_named_by_its_modules():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert cycles(edges) == [["a", "b", "c", "a"]]
