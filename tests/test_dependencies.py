"""Every third-party module koala and data_tools import is declared in setup.cfg, directly or in an
extra, so a fresh install (`pip install koala[...]`) has it."""
from __future__ import annotations

import ast
import configparser
import importlib.metadata
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OWN = {"koala", "data_tools", "__future__"}


def imported_top_level(folder: Path) -> set[str]:
    """Top-level names of every absolute import under ``folder`` (also those inside functions)."""
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> set[str]:
    """Distribution names of install_requires and every extra."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    lines = cfg["options"]["install_requires"].splitlines()
    lines += [line for _, value in cfg["options.extras_require"].items() for line in value.splitlines()]
    return {normalised(re.split(r"[<>=~!\[ ;]", line.strip())[0]) for line in lines if line.strip()}


def test_the_scan_finds_imports_inside_functions(tmp_path):
    (tmp_path / "m.py").write_text("import os\ndef f():\n    from scipy import linalg\n")
    assert imported_top_level(tmp_path) == {"os", "scipy"}


def test_every_third_party_import_is_declared():
    modules = {m for folder in ("koala", "data_tools") for m in imported_top_level(ROOT / folder)}
    third_party = sorted(m for m in modules - OWN if m not in sys.stdlib_module_names)
    owners = importlib.metadata.packages_distributions()
    undeclared = {m: owners.get(m) for m in third_party
                  if not {normalised(d) for d in owners.get(m, [m])} & declared()}
    assert not undeclared, f"imported but not in setup.cfg: {undeclared}"
    assert {"tensorflow", "scipy", "werkzeug"} <= declared()
