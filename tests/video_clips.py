"""Films the video tests make for themselves with PyAV (no video is committed): gray shots of
moving shapes with film grain, a cut, and an audio tone."""
from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

RATE = 24
TONE_HZ = 440
SAMPLE_RATE = 48000


def moving_shapes(count: int, height: int, width: int, seed: int, dark: bool = False) -> np.ndarray:
    """A gray shot (count, H, W) uint8: a gradient with a disc and a square moving across it and
    fresh grain every frame; ``dark`` gives another shot, darker and mirrored (a cut between them
    changes most of the picture)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = []
    for t in range(count):
        base = 60 + 120 * xx / width if not dark else 40 + 50 * (1 - xx / width) + 20 * yy / height
        img = base.copy()
        cx, cy = (0.2 + 0.03 * t) * width, 0.5 * height
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < (0.15 * height) ** 2] = 220 if not dark else 180
        sx = int((0.7 - 0.02 * t) * width)
        img[int(0.2 * height):int(0.45 * height), sx:sx + height // 5] = 30 if not dark else 120
        img += rng.normal(0, 6, img.shape)  # film grain
        frames.append(np.clip(np.rint(img), 0, 255).astype(np.uint8))
    return np.stack(frames)


def still_shot(count: int, height: int, width: int, seed: int) -> np.ndarray:
    """A gray shot that does not move, with fresh grain every frame (what flicker is measured on)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 50 + 150 * (xx / width) * (1 - yy / height / 2)
    base[(xx - width / 2) ** 2 + (yy - height / 2) ** 2 < (0.25 * height) ** 2] = 210
    return np.stack([np.clip(np.rint(base + rng.normal(0, 6, base.shape)), 0, 255).astype(np.uint8)
                     for _ in range(count)])


def write_clip(path, gray: np.ndarray, rate: int = RATE, audio_seconds: float | None = None,
               options: dict | None = None) -> None:
    """Gray frames (N, H, W) as an H.264 film at ``rate`` frames/s (4:4:4 for an odd size), with a
    440 Hz AAC tone of ``audio_seconds`` (default: the film's length) unless 0; ``options`` are the
    muxer's (e.g. ``{"movflags": "faststart"}``: an MP4 whose index comes first)."""
    count, height, width = gray.shape
    seconds = count / rate if audio_seconds is None else audio_seconds
    with av.open(str(path), "w", options=options or {}) as out:
        video = out.add_stream("libx264", rate=rate)
        video.width, video.height = width, height
        video.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        sound = out.add_stream("aac", rate=SAMPLE_RATE, layout="mono") if seconds else None
        for i, image in enumerate(gray):
            frame = av.VideoFrame.from_ndarray(np.repeat(image[..., None], 3, axis=-1), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, rate)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound:
            samples = int(seconds * SAMPLE_RATE)
            tone = (0.3 * np.sin(2 * np.pi * TONE_HZ * np.arange(samples) / SAMPLE_RATE)).astype(np.float32)
            for start in range(0, samples, 1024):
                chunk = tone[start:start + 1024][None]
                frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, start, Fraction(1, SAMPLE_RATE)
                out.mux(sound.encode(frame))
            out.mux(sound.encode(None))


def read_frames(path) -> tuple[np.ndarray, Fraction, float]:
    """A film's frames as uint8 RGB (N, H, W, 3), its average frame rate and its duration in seconds."""
    with av.open(str(path)) as film:
        video = film.streams.video[0]
        frames = np.stack([f.to_ndarray(format="rgb24") for f in film.decode(video)])
        return frames, video.average_rate, film.duration / av.time_base


def audio_packets(path) -> list[bytes]:
    """The bytes of every packet of a film's first audio stream, in order."""
    with av.open(str(path)) as film:
        return [bytes(p) for p in film.demux(film.streams.audio[0]) if p.size]


def weaving_shot(count: int, height: int, width: int, seed: int, weave: float = 1.0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A still, textured gray shot (count, H, W) uint8 that weaves in the gate, and where each
    frame was (count, 2: dy, dx): each drawn at its own random place within +-``weave`` px
    (sub-pixel, along both axes), with fresh grain and +-4% exposure flicker. Drawn from the
    formula at moved coordinates, not by resampling a frame."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frames, places = [], rng.uniform(-weave, weave, (count, 2))
    for dy, dx in places:
        y, x = yy - dy, xx - dx  # the picture moved by (dy, dx)
        base = 60 + 100 * x / width + 45 * np.tanh(4 * np.sin(2 * np.pi * x / 12) * np.cos(2 * np.pi * y / 16))
        base[(x - width / 2) ** 2 + (y - height / 2) ** 2 < (0.25 * height) ** 2] = 215
        exposure = rng.uniform(0.96, 1.04)
        frames.append(np.clip(np.rint(base * exposure + rng.normal(0, 6, base.shape)), 0, 255).astype(np.uint8))
    return np.stack(frames), places
