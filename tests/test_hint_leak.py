"""scripts/hint_leak.py's edge finder: the hint and its mirror land on opposite sides of a step."""
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


@pytest.fixture(scope="module")
def hint_leak():
    sys.path.insert(0, str(SCRIPTS))
    try:
        spec = importlib.util.spec_from_file_location("hint_leak", SCRIPTS / "hint_leak.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SCRIPTS))
    return module


def step(width=64, height=48, at=40, low=20.0, high=80.0):
    lightness = np.full((height, width), low)
    lightness[:, at:] = high
    return lightness


@pytest.mark.parametrize("side", ["dark", "bright"])
def test_windows_straddle_a_vertical_step(hint_leak, side):
    found = hint_leak.find_edge(step(), offset=6, window=5, side=side)
    dark_col, bright_col = 39.5 - 6, 39.5 + 6  # the step lies between columns 39 and 40
    hint_col, beyond_col = (dark_col, bright_col) if side == "dark" else (bright_col, dark_col)
    assert found["hint"][1] == pytest.approx(hint_col, abs=1.0)
    assert found["beyond"][1] == pytest.approx(beyond_col, abs=1.0)
    assert found["hint"][0] == pytest.approx(found["beyond"][0], abs=0.5)  # straight across, not along it
    assert found["step"] == pytest.approx(60.0)


def test_a_step_beats_a_brighter_thin_line(hint_leak):
    """A 1 px line has the steeper flanks here, but both its windows lie on the same background."""
    lightness = step(at=40, low=30.0, high=70.0)
    lightness[:, 15] = 100.0
    found = hint_leak.find_edge(lightness, offset=6, window=5)
    assert found["hint"][1] < 39.5 < found["beyond"][1]
    assert found["step"] == pytest.approx(40.0)


def test_diagonal_step_is_crossed_along_its_normal(hint_leak):
    rows, cols = np.mgrid[0:64, 0:64]
    lightness = np.where(rows + cols > 64, 90.0, 10.0)  # bright below the anti-diagonal
    found = hint_leak.find_edge(lightness, offset=6, window=5)
    across = found["beyond"] - found["hint"]
    assert across == pytest.approx([12 / np.sqrt(2)] * 2, abs=1.0)  # dark side up-left, bright down-right
    assert found["hint"].sum() < 64 < found["beyond"].sum()


def test_box_mean_is_clipped_to_the_image(hint_leak):
    image = np.arange(16.0).reshape(4, 4)
    assert hint_leak.box_mean(image, np.array([1.0, 1.0]), 3) == pytest.approx(image[:3, :3].mean())
    assert hint_leak.box_mean(image, np.array([0.0, 0.0]), 3) == pytest.approx(image[:2, :2].mean())


def test_mid_side_is_the_one_nearer_mid_grey(hint_leak):
    """A dark wall (L 20) against a pale sky (L 60): "mid" hints the sky; "dark" the wall."""
    lightness = step(low=20.0, high=60.0)
    assert hint_leak.find_edge(lightness, offset=6, window=5)["hint"][1] > 39.5
    assert hint_leak.find_edge(lightness, offset=6, window=5, side="dark")["hint"][1] < 39.5
    with pytest.raises(ValueError, match="side"):
        hint_leak.find_edge(lightness, side="left")
