"""Library errors speak in the library's terms (parameters, config fields such as train.epochs):
only koala/cli.py names the command's flags, adding them where it catches an error."""
from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "koala"
FLAG = re.compile(r"(^|[\s(])--[a-z]")
# Beam's own options are written --name=value in the library's beam_args too, not koala's flags.
ALLOWED = {("batch/common.py", " (see docs/batch.md; write options as --name=value)")}


def raised_texts(source: str) -> list[str]:
    """The string pieces of every ``raise`` statement (f-strings included)."""
    return [node.value for statement in ast.walk(ast.parse(source)) if isinstance(statement, ast.Raise)
            for node in ast.walk(statement) if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def test_library_errors_name_no_command_line_flags():
    found = [f"{path.relative_to(PACKAGE)}: {text!r}" for path in sorted(PACKAGE.rglob("*.py")) if path.name != "cli.py"
             for text in raised_texts(path.read_text())
             if FLAG.search(text) and (path.relative_to(PACKAGE).as_posix(), text) not in ALLOWED]
    assert not found, "\n".join(found)


def test_the_check_sees_flags_in_raised_f_strings():
    assert raised_texts('raise ValueError(f"--crf {crf}: bad")') == ["--crf ", ": bad"]
    assert FLAG.search("to replace it, --overwrite") and not FLAG.search("train.epochs=3; a-b --")
