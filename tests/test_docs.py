"""The README and configs agree with what koala does: commands that name real things, numbers
that match the shipped model."""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def readme_commands(program: str) -> list[list[str]]:
    """Every command line of the README's bash blocks that starts with ``program`` (continuations joined)."""
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    lines = " ".join(blocks).replace("\\\n", " ").splitlines()
    return [shlex.split(line.split("  #")[0]) for line in lines if line.strip().startswith(program + " ")]


def test_readme_exports_onnx_to_its_own_folder():
    """TF Serving takes every numbered folder of a base as a version of the model: an ONNX export in
    the SavedModel's base would be served as its next version."""
    exports = readme_commands("koala export")
    bases = {}
    for command in exports:
        fmt = command[command.index("--format") + 1] if "--format" in command else "savedmodel"
        bases.setdefault(Path(command[command.index("--out") + 1]), set()).add(fmt)
    assert {"savedmodel", "onnx"} <= set().union(*bases.values())
    assert all(len(formats) == 1 for formats in bases.values()), bases


def test_readme_presets_and_configs_exist():
    from koala import config

    for command in readme_commands("koala train"):
        if "--preset" in command:
            assert command[command.index("--preset") + 1] in config.presets()
        if "--config" in command and command[command.index("--config") + 1].startswith("configs/"):
            assert (ROOT / command[command.index("--config") + 1]).is_file()


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_config_comments_agree_with_the_shipped_model(path):
    """A config that calls its size the shipped working size trains at the bundled model's size."""
    shipped = json.loads((ROOT / "koala" / "weights" / "default.json").read_text())["image_size"]
    comment = " ".join(line.lstrip("# ") for line in path.read_text().splitlines() if line.startswith("#"))
    for size in re.findall(r"shipped working size \((\d+) px", comment):
        assert int(size) == shipped, f"{path.name} calls {size} px the shipped working size; it is {shipped}"
    if "shipped working size" in comment or "its working size" in comment:
        from koala import config

        assert config.load(path).data.image_size == shipped, path.name


def test_readme_says_what_shared_is_and_how_to_use_ones_own_photos():
    """A fresh clone has no ../shared: the README says what it is before its first command needs it,
    and shows training on one's own folder."""
    first_use = next(m.start() for m in re.finditer(r"```bash\n(.*?)```", README, re.S) if "../shared" in m.group(1))
    assert README.index("`shared/` folder beside the repository") < first_use
    own = [c for c in readme_commands("koala train") if any(a.startswith("data.train=") for a in c)]
    assert own and not any(a.startswith("data.train=../shared") for c in own for a in c)
