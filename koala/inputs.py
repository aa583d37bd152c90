"""Which files an INPUT names and where each one's output goes, for ``koala colorize`` and the Beam
job (``koala batch colorize``) alike: a folder yields its photos and films (sub-folders included)
and keeps its layout; a file or a glob's match goes by its name (its stem and the output's suffix,
:func:`koala.outputs.output_name`).

``koala colorize`` expands its local inputs here at once (:func:`expand_inputs`); the Beam job
matches its patterns on the workers, on any filesystem Beam knows, and names each match with
:func:`output_for`. No TensorFlow, PyAV or Beam here: the CLI expands its inputs before any model
is loaded.

Example: ``expand_inputs(["scans/", "loose/*.jpg"])`` gives ``[("scans/sub/a.tif", Path("sub/a.png")),
("loose/b.jpg", Path("b.png"))]`` and the error lines of inputs that match nothing readable.
"""
from __future__ import annotations

import glob
import os
import posixpath
from pathlib import Path

from koala.images import list_folder
from koala.outputs import INPUT_EXTENSIONS, output_name

GLOB_CHARS = "*?["  # an INPUT with one of these is a glob


def output_for(path: str, folder: str | None = None) -> str | None:
    """The output's path relative to OUT for ``path``, a file an INPUT found: under ``folder`` (the
    folder the INPUT named, a prefix of ``path``; local or a URL) it keeps its place in the folder's
    layout, and anything but a photo or a film gives None; without one (default: a file or a glob's
    match) it goes by its name.

    Example: ``output_for("/in/sub/a.tif", "/in")`` is ``"sub/a.png"``; ``output_for("/in/sub/a.tif")``
    is ``"a.png"``.
    """
    relative = (posixpath.basename(path.replace(os.sep, "/")) if folder is None
                else path[len(folder):].lstrip("/" + os.sep).replace(os.sep, "/"))
    if folder is not None and posixpath.splitext(relative)[1].lower() not in INPUT_EXTENSIONS:
        return None
    return output_name(relative)


def unreadable(path: Path) -> str | None:
    """Why an input named on the command line cannot be read, or None when it can."""
    if path.is_symlink() and not path.exists():
        try:
            path.resolve(strict=True)
        except RuntimeError:
            return "symbolic link loop"
        except OSError:
            return f"broken symbolic link (to {os.readlink(path)})"
    if path.is_dir():
        return None if os.access(path, os.R_OK | os.X_OK) else "folder not readable (permission denied)"
    if not path.is_file():
        return "not a regular file (a FIFO, socket or device)"
    return None if os.access(path, os.R_OK) else "not readable (permission denied)"


def expand_inputs(inputs: list[str]) -> tuple[list[tuple[str, Path]], list[str]]:
    """Local files, folders and globs -> (source, output path relative to OUT) pairs, in order, and
    the error lines of the inputs that cannot be read or match no file. A folder's photos and films
    keep their sub-folder layout (its listing is relative to it, so ``.`` works too); a file or a
    glob's match goes by its name (:func:`output_for`)."""
    pairs, errors = [], []
    for item in inputs:
        path = Path(item)
        if os.path.lexists(path):
            if reason := unreadable(path):
                errors.append(f"{item}: {reason}")
            elif path.is_dir():
                pairs += [(f, Path(output_name(Path(f).relative_to(path).as_posix())))
                          for f in list_folder(path, INPUT_EXTENSIONS)]
            else:
                pairs.append((item, Path(output_for(item))))
        elif matches := sorted(glob.glob(item, recursive=True)):
            files = [f for f in matches if not unreadable(Path(f)) and Path(f).is_file()]
            if not files:
                errors.append(f"{item}: matches no readable file ({len(matches)} folder(s) or unreadable entries)")
            pairs += [(f, Path(output_for(f))) for f in files]
        else:
            errors.append(f"{item}: no such file, folder or matching glob")
    return pairs, errors
