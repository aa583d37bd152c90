"""One output name per input and one rule for a taken output, shared by koala colorize and koala
batch colorize (koala.outputs); both commands' own tests check that they follow it."""
from __future__ import annotations

import pytest

from koala.outputs import KEEP, WRITE, claim, output_name


@pytest.mark.parametrize("relative, expected", [
    ("scan.tif", "scan.png"),
    ("sub/deeper/a.b.JPG", "sub/deeper/a.b.png"),  # only the last extension goes
    ("film.MOV", "film.mov"),  # a container that holds H.264 is kept
    ("old/reel.avi", "old/reel.mkv"),  # any other becomes Matroska
])
def test_photos_become_pngs_and_films_keep_or_change_their_container(relative, expected):
    assert output_name(relative) == expected


def test_a_taken_output_fails_keeps_or_is_written():
    def verdict(earlier=None, replaces_input=False, exists=False, overwrite=False, source="in/a.jpg"):
        return claim(source, "out/a.png", earlier, replaces_input, exists, overwrite)

    assert verdict() == WRITE
    assert verdict(exists=True) == KEEP  # an earlier run's output: not a failure
    assert verdict(exists=True, overwrite=True) == WRITE
    assert verdict(earlier="in/a.png", exists=True, overwrite=True) == "same output name as in/a.png; skipped"
    replaces = "output out/a.png would replace an input photo; skipped (choose another output folder)"
    assert verdict(replaces_input=True, exists=True, overwrite=True) == replaces  # never, even with overwrite
    assert "an input film" in verdict(replaces_input=True, source="in/a.mp4")
