"""Films: ``koala colorize film.mp4`` (:mod:`koala.video.colorize`) with colours that hold still from
frame to frame (:mod:`koala.video.temporal`).

Constants and file naming only here: the CLI reads them without importing PyAV or TensorFlow.
"""
from __future__ import annotations

import os

# Containers FFmpeg reads that koala lists as films (in folders) beside the photos.
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".mts",
                    ".m2ts", ".wmv", ".flv", ".ogv", ".3gp", ".dv")
# Output containers by the input's extension: these hold H.264 beside their usual audio, so they are
# kept; any other input (avi, webm, ...) is written as Matroska, which holds H.264 beside any audio codec.
KEPT_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
FALLBACK_SUFFIX, FALLBACK_CONTAINER = ".mkv", "matroska"
DEFAULT_CRF = 18  # libx264's constant rate factor: 0 lossless, 18 about visually lossless, 23 its own default, 51 worst
MAX_CRF = 51
DEFAULT_TEMPORAL = 0.25  # seconds: time constant of the colours' running average in still parts of a shot


def is_video(path: str | os.PathLike) -> bool:
    """Whether ``path`` is named like a film (by its extension, as photos are)."""
    return os.path.splitext(str(path))[1].lower() in VIDEO_EXTENSIONS


def output_suffix(path: str | os.PathLike) -> str:
    """The colorized film's extension: the input's own container when it holds H.264, else .mkv."""
    suffix = os.path.splitext(str(path))[1].lower()
    return suffix if suffix in KEPT_CONTAINERS else FALLBACK_SUFFIX


def container_format(path: str | os.PathLike) -> str:
    """FFmpeg's muxer for an output named ``path`` (outputs are written under a temporary name, so
    FFmpeg cannot guess it from the extension)."""
    return KEPT_CONTAINERS.get(os.path.splitext(str(path))[1].lower(), FALLBACK_CONTAINER)
