"""koala's imports flow one way: a module imports its own layer or a lower one, never a higher one,
and no chain of imports comes back to where it started. Checked on the source (every import
statement, including those inside functions, so a lazy import cannot hide a cycle)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "koala"

# Lowest first. A module belongs to the layer of its longest matching prefix.
LAYERS: list[tuple[str, ...]] = [
    ("koala.color", "koala.images", "koala.knobs"),
    ("koala.data",),
    ("koala.losses", "koala.models"),
    ("koala.config",),
    ("koala.runs",),
    ("koala.training",),
    ("koala.graphs",),
    ("koala.inference",),
    ("koala.video",),
    ("koala.outputs",),
    ("koala.inputs",),
    ("koala.evaluation", "koala.export", "koala.serving", "koala.batch"),
    ("koala.cli",),
]
EXEMPT = {"koala"}  # the package root only offers a lazy ``koala.Colorizer`` convenience


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    relative = Path(*name.split("."))
    return (PACKAGE.parent / relative).with_suffix(".py").is_file() or (PACKAGE.parent / relative).is_dir()


def imported_modules(source: str, package: str) -> set[str]:
    """Every koala module ``source`` imports (``from koala import x`` names the module ``koala.x``
    when x is one; relative imports are resolved against ``package``, the importer's package)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if is_module(f"{base}.{alias.name}"))
    return {m for m in found if m == "koala" or m.startswith("koala.")}


def layer_of(name: str) -> int:
    best, layer = -1, None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                best, layer = len(prefix), index
    if layer is None:
        raise AssertionError(f"{name}: not in any layer of tests/test_layers_imports.py; place it there")
    return layer


def graph() -> dict[str, set[str]]:
    edges = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges[name] = imported_modules(path.read_text(), package) - {name}
    return edges


def test_every_module_has_a_layer():
    placed = {name: layer_of(name) for name in graph() if name not in EXEMPT}
    assert placed["koala.color.gamut"] == 0 and placed["koala.cli"] == len(LAYERS) - 1
    assert all(0 <= layer < len(LAYERS) for layer in placed.values())


def test_imports_never_go_up():
    upward = [f"{name} (layer {layer_of(name)}) imports {target} (layer {layer_of(target)})"
              for name, targets in graph().items() if name not in EXEMPT
              for target in sorted(targets) if target not in EXEMPT and layer_of(target) > layer_of(name)]
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    edges = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(edges.get(name, ())):
            if target in EXEMPT or target not in edges:
                continue
            if state.get(target) == 1:
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[name] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])
    assert not cycles, "\n".join(cycles)


def test_library_never_imports_scripts_or_data_tools():
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for n in names:
                assert not n.startswith(("data_tools", "scripts")), f"{module_name(path)} imports {n}"


@pytest.mark.parametrize("source, expected", [
    ("from koala.images import load_rgb", {"koala.images"}),
    ("from koala import config as c", {"koala", "koala.config"}),
    ("import os\ndef f():\n    from koala.training import train", {"koala.training"}),
    ("from .lab import rgb_to_lab", {"koala.color.lab"}),
])
def test_the_check_sees_imports(source, expected):
    """The scan itself: top-level, ``from koala import module``, relative, and inside functions."""
    assert imported_modules(source, "koala.color") == expected
