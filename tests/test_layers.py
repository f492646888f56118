"""desktop/core, desktop/engine and desktop/capture stay free of Qt (DESIGN.md, "Layers"); workers never
import the window's code; no module of desktop/ imports itself through others."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
QT_FREE = ("core", "engine", "capture")
FORBIDDEN = ("PySide6", "desktop.ui", "desktop.workers", "desktop.app")


def imports_of(layer: str) -> list[tuple[Path, str]]:
    found = []
    for path in (REPO / "desktop" / layer).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found += [(path, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.append((path, node.module))
    return found


def test_no_qt_imports_in_the_source():
    offenders = [f"{path.relative_to(REPO)}: {name}" for layer in QT_FREE for path, name in imports_of(layer)
                 if name.startswith(FORBIDDEN)]
    assert offenders == []


def test_lower_layers_do_not_import_higher_ones():
    # core < capture < engine: dependencies point down only.
    above = {"core": ("desktop.capture", "desktop.engine"), "capture": ("desktop.engine",)}
    offenders = [f"{path.relative_to(REPO)}: {name}" for layer, banned in above.items()
                 for path, name in imports_of(layer) if name.startswith(banned)]
    assert offenders == []


def test_importing_every_qt_free_module_loads_no_qt():
    modules = [
        ".".join(path.relative_to(REPO).with_suffix("").parts)
        for layer in QT_FREE
        for path in (REPO / "desktop" / layer).rglob("*.py")
    ]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name.removesuffix('.__init__'))\n"
        "bad = [m for m in sys.modules if m.startswith(('PySide6', 'shiboken6'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_workers_do_not_import_the_ui():
    offenders = [f"{path.relative_to(REPO)}: {name}" for path, name in imports_of("workers")
                 if name.startswith(("desktop.ui", "desktop.app", "PySide6.QtWidgets", "PySide6.QtGui"))]
    assert offenders == []


def module_names() -> dict[str, Path]:
    names = {}
    for path in (REPO / "desktop").rglob("*.py"):
        names[".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")] = path
    return names


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported_modules(tree: ast.Module, modules: dict[str, Path]) -> set[str]:
    """The modules of desktop/ a module imports anywhere in its code (at the top or inside a function: a
    lazy import is still a dependency, and the engine's cycle with its shards was one), except under
    `if TYPE_CHECKING:` (annotations only: nothing runs)."""
    found: set[str] = set()
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module in modules:
                found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules)
        stack.extend(ast.iter_child_nodes(node))
    return found


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each cycle found by a depth-first search, as the path that closes it."""
    cycles: list[list[str]] = []
    done: set[str] = set()

    def visit(module: str, path: list[str], on_path: set[str]) -> None:
        for target in sorted(graph.get(module, ())):
            if target in on_path:
                cycles.append([*path[path.index(target):], target])
            elif target not in done:
                on_path.add(target)
                visit(target, [*path, target], on_path)
                on_path.discard(target)
        done.add(module)

    for module in sorted(graph):
        if module not in done:
            visit(module, [module], {module})
    return cycles


def test_the_cycle_finder_finds_cycles():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert import_cycles({"a": {"b"}, "b": set(), "c": {"b"}}) == []
    tree = ast.parse("import x.y\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import x.z\n"
                     "def f():\n    from x import w\n")
    assert imported_modules(tree, {"x.y": Path(), "x.z": Path(), "x.w": Path()}) == {"x.y", "x.w"}


def test_no_import_cycles_in_desktop():
    modules = module_names()
    graph = {name: imported_modules(ast.parse(path.read_text(encoding="utf-8")), modules) - {name}
             for name, path in modules.items()}
    assert import_cycles(graph) == []
