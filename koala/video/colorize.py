"""``koala colorize film.mp4``: a film through :class:`~koala.inference.Colorizer`, streamed.

Frames are decoded, colorized a few at a time (:func:`batch_frames`) and encoded as they go, so
memory holds a few frames at any length: the colorizer's first half gives a batch's L and ab at
the network's working size, :func:`koala.video.temporal.smooth` averages the ab over time, and
the second half joins it with each frame's own full-resolution L. Every audio stream is copied packet by packet
(no re-encode). The video is H.264 (libx264 at ``crf``) with the input's frame size, pixel aspect,
timestamps (so its frame rate, count and duration) and colour tags. The output is written under a
temporary name in its folder and renamed when it is complete (:func:`koala.images.atomic_target`),
so a bad file, a full disk or Ctrl-C leaves nothing behind.

Example::

    colorize_video(Colorizer.load("default"), "film.mp4", "out/film.mp4")
"""
from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from fractions import Fraction

import av
import numpy as np
import tensorflow as tf
from av.video.reformatter import ColorRange, Colorspace
from tqdm import tqdm

from koala.images import ImageError, atomic_target, check_file
from koala.inference import Colorizer
from koala.video import DEFAULT_CRF, DEFAULT_TEMPORAL, MAX_CRF, container_format
from koala.video.temporal import Previous, past_weight, smooth

BATCH_FRAMES = 8  # frames per network call at most
BATCH_PIXELS = 1 << 22  # and at most about this many pixels: 8 frames of 480p, 4 of 720p, 2 of 1080p
ENCODERS = ("libx264", "libopenh264", "mpeg4")  # the best the bundled FFmpeg has; CRF is libx264's
# Frames libx264 looks ahead to plan its bit rate (its default: 40). At 1080p each costs about 8 MB
# (measured: 444 MB for the encoder at 40, 288 MB at 20), for a barely smaller file.
X264_LOOKAHEAD = 20
FALLBACK_RATE = Fraction(25)  # frames/s assumed when a file states none
# A film that decodes to fewer frames than its header promises, beyond this share (edit lists and
# rounding make counts from durations a little loose), is refused as truncated.
TRUNCATION_TOLERANCE = 0.02
AVCOL_SPC_BT709 = 1  # FFmpeg's AVColorSpace for BT.709 (HD); other tags convert with swscale's BT.601


class VideoError(ImageError):
    """A file that cannot be used as a film; ``str()`` is the one-line message for users."""


def encoder_name() -> str:
    """The first of ``ENCODERS`` that the bundled FFmpeg has."""
    for name in ENCODERS:
        if name in av.codecs_available:
            return name
    raise RuntimeError(f"PyAV's FFmpeg has none of the encoders {', '.join(ENCODERS)}")


def check_options(temporal: float, crf: int, options: tuple[str, str] = ("temporal", "crf")) -> None:
    """Refuse a negative ``temporal`` or a ``crf`` out of range (``ValueError``), before any work;
    ``options``: what the caller calls the two (default their names here)."""
    past_weight(temporal, 1.0, options[0])
    if not 0 <= crf <= MAX_CRF:
        raise ValueError(f"{options[1]} {crf}: must be 0 (lossless) to {MAX_CRF} (worst)")


def open_film(source: str | os.PathLike) -> av.container.InputContainer:
    """The film opened for reading, with a video stream that the bundled FFmpeg can decode;
    :class:`VideoError` (empty, not a video, no video stream, unsupported codec) otherwise."""
    name = str(source)
    check_file(name, VideoError)
    try:
        film = av.open(name)
    except av.error.FFmpegError as e:
        raise VideoError(name, f"not a video FFmpeg can read ({e.strerror})") from None
    if not film.streams.video:
        film.close()
        raise VideoError(name, "no video stream")
    video = film.streams.video[0]
    if video.codec_context is None or not video.width or not video.height:
        codec = video.codec_context.name if video.codec_context else "unknown codec"
        film.close()
        raise VideoError(name, f"unsupported video codec ({codec}; FFmpeg in PyAV has no decoder for it)")
    return film


def frame_rate(video: av.video.stream.VideoStream) -> Fraction:
    """The film's frame rate as its header states it (average, else guessed, else 25)."""
    return Fraction(video.average_rate or video.guessed_rate or FALLBACK_RATE)


def expected_frames(film: av.container.InputContainer, video: av.video.stream.VideoStream) -> int | None:
    """Frames the header promises: the stream's count, else its (or the file's) duration x rate."""
    if video.frames:
        return int(video.frames)
    if video.duration is not None and video.time_base:
        seconds = float(video.duration * video.time_base)
    elif film.duration is not None:
        seconds = film.duration / av.time_base
    else:
        return None
    return round(seconds * frame_rate(video))


def batch_frames(video: av.video.stream.VideoStream) -> int:
    """Frames colorized together: memory grows with a batch's pixels, speed hardly past a few frames."""
    return max(1, min(BATCH_FRAMES, BATCH_PIXELS // (video.width * video.height)))


def batches(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of ``size`` items (the last may be shorter), taken as they come."""
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def add_video_stream(output: av.container.OutputContainer, video: av.video.stream.VideoStream, crf: int
                     ) -> av.video.stream.VideoStream:
    """The H.264 stream: the input's size, pixel aspect, time base and colour tags; 4:2:0 when both
    sides are even (what every player plays), else 4:4:4, which keeps an odd size as it is."""
    name = encoder_name()
    options = {"crf": str(crf), "rc-lookahead": str(X264_LOOKAHEAD)} if name == "libx264" else {}
    stream = output.add_stream(name, rate=frame_rate(video), options=options)
    context, source = stream.codec_context, video.codec_context
    context.width, context.height = video.width, video.height
    context.pix_fmt = "yuv420p" if video.width % 2 == 0 and video.height % 2 == 0 else "yuv444p"
    context.time_base = video.time_base
    if video.sample_aspect_ratio:
        context.sample_aspect_ratio = video.sample_aspect_ratio
    context.colorspace, context.color_primaries, context.color_trc = (
        source.colorspace, source.color_primaries, source.color_trc)
    context.color_range = ColorRange.MPEG
    stream.thread_type = "AUTO"
    return stream


def decoded_frames(film: av.container.InputContainer, output: av.container.OutputContainer,
                   audio: dict[int, av.stream.Stream]) -> Iterator[av.VideoFrame]:
    """The first video stream's frames in order; the packets of the streams in ``audio`` (input
    index -> output stream) met on the way are copied into ``output`` as they are."""
    video = film.streams.video[0]
    for packet in film.demux(video, *(film.streams[i] for i in audio)):
        if packet.stream.index == video.index:
            yield from packet.decode()
        elif packet.dts is not None:  # the demuxer's closing empty packet carries no data
            packet.stream = audio[packet.stream.index]
            output.mux(packet)


def to_yuv(rgb: np.ndarray, source: av.VideoFrame, stream: av.video.stream.VideoStream) -> av.VideoFrame:
    """A colorized frame in the encoder's format, with the input frame's timestamps, converted
    with the matrix the input was decoded with (so L comes back as it went in)."""
    colorspace = Colorspace.ITU709 if stream.codec_context.colorspace == AVCOL_SPC_BT709 else Colorspace.DEFAULT
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format=stream.codec_context.pix_fmt, dst_colorspace=colorspace, dst_color_range=ColorRange.MPEG)
    frame.pts, frame.time_base, frame.duration = source.pts, source.time_base, source.duration
    return frame


def colorize_frames(colorizer: Colorizer, batches: Iterable[tuple[object, np.ndarray]], weight: float,
                    global_hint: np.ndarray | None = None) -> Iterator[tuple[object, np.ndarray]]:
    """(tag, uint8 RGB (N, H, W, 3)) batches of consecutive frames -> (tag, colorized uint8 RGB);
    ``weight`` is :func:`~koala.video.temporal.past_weight` (0: each frame on its own);
    ``global_hint``: one (310,) for every frame (:meth:`~koala.inference.Colorizer.global_hint`;
    default none).

    Each batch's network runs in a thread while the batch before it is smoothed, joined and
    encoded: those steps leave a core idle in places (the smoothing and parts of the encoder are
    one thread), which the network fills. One batch more is in memory."""
    working, join = colorizer.working_graph(tf.uint8), colorizer.join_graph(tf.uint8, tf.uint8)
    hint = (global_hint,) if global_hint is not None else ()
    saturation = tf.constant(colorizer.saturation, tf.float32)
    previous: Previous | None = None

    def finish(tag: object, pixels: tf.Tensor, network: Future) -> tuple[object, np.ndarray]:
        nonlocal previous
        smoothed = []
        for l, ab in zip(*(t.numpy() for t in network.result())):
            previous = smooth(previous, l, ab, weight)
            smoothed.append(previous.ab)
        return tag, join(pixels, tf.convert_to_tensor(np.stack(smoothed)), saturation).numpy()

    pending = None
    with ThreadPoolExecutor(1) as pool:
        for tag, pixels in batches:
            pixels = tf.convert_to_tensor(pixels)
            network = pool.submit(working, pixels, *hint)
            if pending:
                yield finish(*pending)
            pending = tag, pixels, network
        if pending:
            yield finish(*pending)


def add_audio_streams(output: av.container.OutputContainer, film: av.container.InputContainer, name: str
                      ) -> dict[int, av.stream.Stream]:
    """An output stream for each audio stream of ``film`` (input index -> stream), to copy its
    packets into; :class:`VideoError` if the output's container cannot hold its codec."""
    audio = {}
    for stream in film.streams.audio:
        codec = stream.codec_context.name if stream.codec_context else "unknown codec"
        if codec not in output.supported_codecs:
            raise VideoError(name, f"its audio ({codec}) cannot be copied into {output.format.name}")
        audio[stream.index] = output.add_stream_from_template(stream)
    return audio


def transcode(colorizer: Colorizer, film: av.container.InputContainer, output: av.container.OutputContainer,
              temporal: float, crf: int, bar: tqdm, global_hint: np.ndarray | None = None) -> int:
    """Every frame of ``film`` colorized into ``output`` (each with ``global_hint``, if one), the
    audio copied; returns the frame count."""
    video = film.streams.video[0]
    video.thread_type = "AUTO"
    encoded = add_video_stream(output, video, crf)
    audio = add_audio_streams(output, film, film.name)
    rgb_batches = ((frames, np.stack([f.to_ndarray(format="rgb24", width=video.width, height=video.height)
                                      for f in frames]))
                   for frames in batches(decoded_frames(film, output, audio), batch_frames(video)))
    count = 0
    weight = past_weight(temporal, float(frame_rate(video)))
    for frames, colorized in colorize_frames(colorizer, rgb_batches, weight, global_hint):
        for frame, rgb in zip(frames, colorized):
            output.mux(encoded.encode(to_yuv(rgb, frame, encoded)))
        count += len(frames)
        bar.update(len(frames))
    output.mux(encoded.encode(None))  # the encoder's delayed frames
    return count


def colorize_video(colorizer: Colorizer, source: str | os.PathLike, target: str | os.PathLike,
                   temporal: float = DEFAULT_TEMPORAL, crf: int = DEFAULT_CRF, overwrite: bool = False,
                   progress: bool = False, global_hint: np.ndarray | None = None) -> int:
    """Colorize the film ``source`` into ``target`` (its container from the name: see
    :func:`koala.video.container_format`); returns the number of frames.

    ``temporal`` is the time constant in seconds of the colours' running average (default 0.25;
    0: frame by frame), ``crf`` libx264's quality (default 18; lower is better and bigger),
    ``progress`` a bar on stderr (frames, frames/s, time left), ``global_hint`` one reference's or
    palette's colours for the whole film (:meth:`~koala.inference.Colorizer.global_hint`, for a
    model with a global-hint input; default none). Raises :class:`VideoError` for a
    file that cannot be used as a film (nothing is written) and ``FileExistsError`` for an
    existing ``target`` without ``overwrite``.
    """
    check_options(temporal, crf)
    name = str(source)
    try:
        with open_film(source) as film:
            expected = expected_frames(film, film.streams.video[0])
            with atomic_target(target, overwrite) as partial, \
                    av.open(partial, "w", format=container_format(target)) as output, \
                    tqdm(total=expected, unit="frame", desc=os.path.basename(name), disable=not progress,
                         leave=False, file=sys.stderr, dynamic_ncols=True) as bar:
                count = transcode(colorizer, film, output, temporal, crf, bar, global_hint)
                if count == 0:
                    raise VideoError(name, "no frames could be decoded")
                if expected and count < expected * (1 - TRUNCATION_TOLERANCE) - 1:
                    raise VideoError(name, f"truncated: {count} of {expected} frames could be decoded")
    except av.error.FFmpegError as e:
        raise VideoError(name, f"corrupt or truncated video data ({e.strerror})") from None
    return count
