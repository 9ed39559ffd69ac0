"""The shape of the package, checked from its source: small modules and functions, imports that only
go down the layers (imports inside functions count), no cycles, light imports, and no trick that
reaches into the process or into raw memory. `docs/architecture.md` describes the same layers.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "reindex"
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60

#: Bottom up. A module may import its own floor or any below it, never one above.
FLOORS = [
    ("reindex.errors", "reindex.formats", "reindex._version"),
    ("reindex.options", "reindex.progress", "reindex.mapping", "reindex.matching", "reindex.init", "reindex.rows",
     "reindex.split"),
    ("reindex.io",),
    ("reindex.vocab", "reindex.checkpoint"),
    ("reindex.vectors",),
    ("reindex.run",),
    ("reindex.datasets", "reindex.engines"),
    ("reindex.torch", "reindex.hf", "reindex.lightning", "reindex.commands", "reindex.audit"),
    ("reindex.cli",),
    ("reindex.__init__", "reindex.__main__"),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def floor_of(module: str) -> int:
    key = "reindex.__init__" if module == "reindex" else module
    for level, prefixes in enumerate(FLOORS):
        if any(key == p or key.startswith(p + ".") for p in prefixes):
            return level
    raise AssertionError(f"{module} belongs to no floor: add it to FLOORS and to docs/architecture.md")


def _resolve(module: str, node: ast.ImportFrom) -> list[str]:
    is_package = MODULES[module].name == "__init__.py"
    base = module.split(".")
    if node.level:
        base = base[: len(base) - node.level + (1 if is_package else 0)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if not target.startswith("reindex"):
        return []
    found = [f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in MODULES]
    return found if len(found) == len(node.names) else [*found, target]


def imports_of(module: str) -> set[str]:
    """Every reindex module `module` imports, at the top or inside a function, but not for types only."""
    tree = ast.parse(MODULES[module].read_text())
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("reindex")}
        elif isinstance(node, ast.ImportFrom):
            found |= set(_resolve(module, node))
    return {name for name in found if name in MODULES and name != module}


GRAPH = {module: imports_of(module) for module in MODULES}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_and_functions_are_small(module):
    text = MODULES[module].read_text()
    lines = len(text.splitlines())
    if lines > MAX_MODULE_LINES:
        pytest.fail(f"{module} has {lines} lines: split it by noun")
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(ast.parse(text))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == [], f"{module}: {long}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_only_go_down_the_floors(module):
    above = sorted(t for t in GRAPH[module] if floor_of(t) > floor_of(module))
    assert above == [], f"{module} (floor {floor_of(module)}) imports a higher floor: {above}"


def test_the_torch_side_needs_nothing_from_the_commands_or_the_cli():
    torch_side = [m for m in MODULES if m.startswith(("reindex.torch", "reindex.hf", "reindex.lightning"))]
    reached = {t for m in torch_side for t in GRAPH[m] if t.startswith(("reindex.commands", "reindex.cli"))}
    assert reached == set()


def test_the_import_graph_has_no_cycles():
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(target):] + [target]))
            if target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(MODULES):
        if module not in state:
            visit(module)


@pytest.mark.parametrize("pattern", ["refcheck=False", "ctypes.memmove", "sys.unraisablehook", "time.sleep(0)",
                                     "madvise"])
def test_no_memory_or_process_trick_is_left(pattern):
    found = [m for m, p in MODULES.items() if pattern in p.read_text()]
    assert found == []


def test_only_the_cli_entry_point_sets_signal_handlers():
    found = [m for m, p in MODULES.items() if "signal.signal(" in p.read_text()]
    assert found == ["reindex.cli"]


@pytest.mark.parametrize("module, absent", [
    ("reindex", ("torch", "typer", "rich", "pyarrow")),
    ("reindex.torch", ("typer", "rich")),
    ("reindex.hf", ("typer", "rich")),
])
def test_imports_stay_light(module, absent):
    code = f"import sys, {module}; print(sorted(m for m in {absent!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_version_has_one_home():
    import reindex
    from reindex._version import __version__

    assert reindex.__version__ == __version__
    assert "version = " not in (PACKAGE.parent / "pyproject.toml").read_text().split("[project]")[1].split("[")[0]
