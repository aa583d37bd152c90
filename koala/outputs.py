"""Where colorized files go, for ``koala colorize`` and ``koala batch colorize`` alike: one output
name per input, and what becomes of an input whose output is taken.

No TensorFlow, PyAV or Beam here: the CLI names outputs before any model is loaded.
"""
from __future__ import annotations

import posixpath

from koala.images import IMAGE_EXTENSIONS
from koala.video import VIDEO_EXTENSIONS, is_video, output_suffix

INPUT_EXTENSIONS = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS  # what a folder given to koala colorize or the Beam job yields
WRITE, KEEP = "write", "keep"  # what claim() answers besides a failure's reason


def output_name(relative: str) -> str:
    """An input's output path relative to the output folder (``/``-separated, as given): a PNG for
    a photo, the film's own container (:func:`koala.video.output_suffix`) for a film.

    Example: ``output_name("sub/scan.tif")`` is ``"sub/scan.png"``; ``output_name("a.avi")`` is ``"a.mkv"``.
    """
    stem, _ = posixpath.splitext(relative)
    return stem + (output_suffix(relative) if is_video(relative) else ".png")


def claim(source: str, target: str, earlier: str | None, replaces_input: bool, exists: bool, overwrite: bool) -> str:
    """What becomes of ``source`` whose output is ``target``: ``WRITE``; ``KEEP`` when an earlier
    run left the output there and ``overwrite`` is off (a job that was stopped carries on, so this
    is no failure); else the reason it fails. ``earlier``: the input that claimed ``target`` before
    (None when none did); ``replaces_input``: whether ``target`` is an input, which is never written
    over, even with ``overwrite``; ``exists``: whether ``target`` is there."""
    if earlier is not None:
        return f"same output name as {earlier}; skipped"
    if replaces_input:
        kind = "film" if is_video(source) else "photo"
        return f"output {target} would replace an input {kind}; skipped (choose another output folder)"
    return KEEP if exists and not overwrite else WRITE
