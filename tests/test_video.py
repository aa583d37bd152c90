"""Films (koala.video): `koala colorize film.mp4` on clips the tests make with PyAV (moving shapes,
grain, a cut, an audio tone): frames, rate, size, duration and audio kept; colours that hold still
in still shots, follow moving things and start afresh at a cut; bad films named in one line with
nothing written; Ctrl-C leaves no partial file; `koala batch colorize` takes films."""
from __future__ import annotations

import math
import os
from pathlib import Path

import av
import keras
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from skimage.color import rgb2lab
from video_clips import (
    RATE,
    audio_packets,
    moving_shapes,
    read_frames,
    still_shot,
    weaving_shot,
    write_clip,
)

from koala.cli import INTERRUPTED_EXIT, main
from koala.inference import Colorizer
from koala.video import temporal
from koala.video.colorize import colorize_video

H, W = 96, 128


def ab_of(path) -> np.ndarray:
    """The Lab ab of a film's decoded frames (N, H, W, 2), by scikit-image."""
    return rgb2lab(read_frames(path)[0])[..., 1:]


def flicker(ab: np.ndarray) -> float:
    """Mean |delta ab| between consecutive frames."""
    return float(np.abs(np.diff(ab, axis=0)).mean())


def colorizer_of(colour: str, size: int = 32) -> Colorizer:
    """A Colorizer around a fixed network: ``"pixel"``: ab from each pixel's own L (tanh(3 L),
    -tanh(3 L)); ``"frame"``: ab from the whole frame's mean L (t = 0.35 + 0.25 tanh(8 mean L): t, -t),
    so a frame's colour depends on all of it, as a real network's does. ``size``: its working size
    (short side; default 32)."""
    l_in = keras.Input((None, None, 1))
    if colour == "pixel":
        t = keras.layers.Lambda(lambda l: keras.ops.tanh(3.0 * l))(l_in)
    else:
        t = keras.layers.Lambda(lambda l: 0.35 + 0.25 * keras.ops.tanh(
            8.0 * keras.ops.mean(l, axis=(1, 2), keepdims=True) + 0.0 * l))(l_in)
    ab = keras.layers.Lambda(lambda t: keras.ops.concatenate([t, -t], axis=-1))(t)
    return Colorizer(keras.Model(l_in, ab), image_size=size, multiple=8)


@pytest.fixture(scope="module")
def film(tmp_path_factory) -> Path:
    """2 s at 24 frames/s: moving shapes with grain, a cut at frame 24, an AAC tone."""
    path = tmp_path_factory.mktemp("films") / "film.mp4"
    write_clip(path, np.concatenate([moving_shapes(24, H, W, 1), moving_shapes(24, H, W, 2, dark=True)]))
    return path


def test_a_film_keeps_its_frames_rate_size_duration_and_audio(film, tmp_path, constant_ab_run):
    assert main(["colorize", str(film), "-o", str(tmp_path / "out"), "--model", constant_ab_run]) == 0
    out = tmp_path / "out" / "film.mp4"
    assert sorted(os.listdir(tmp_path / "out")) == ["film.mp4"]  # no temporary file left beside it
    frames_in, rate_in, seconds_in = read_frames(film)
    frames_out, rate_out, seconds_out = read_frames(out)
    assert frames_out.shape == frames_in.shape == (48, H, W, 3)
    assert rate_out == rate_in == RATE
    assert math.isclose(seconds_out, seconds_in, abs_tol=0.5 / RATE)
    with av.open(str(out)) as result:
        assert result.streams.video[0].codec_context.name == "h264"
    assert audio_packets(out) == audio_packets(film) and len(audio_packets(film)) > 50  # copied, not re-encoded

    lab_in, lab_out = rgb2lab(frames_in), rgb2lab(frames_out)
    assert np.abs(lab_out[..., 0] - lab_in[..., 0]).mean() < 2.0  # each frame keeps its own L
    ab = lab_out[..., 1:].reshape(-1, 2).mean(axis=0)
    assert ab[0] > 10 and ab[1] < -5  # the constant model's colour: a = 0.3 x 110, b = -0.2 x 110, gamut-clipped


def test_an_odd_frame_size_is_kept(tmp_path, constant_ab_run):
    write_clip(tmp_path / "odd.mov", moving_shapes(6, 45, 61, 3), audio_seconds=0)
    colorize_video(Colorizer.load(constant_ab_run), tmp_path / "odd.mov", tmp_path / "out" / "odd.mov")
    assert read_frames(tmp_path / "out" / "odd.mov")[0].shape == (6, 45, 61, 3)


def test_still_shots_flicker_less_and_keep_their_colour(tmp_path):
    """Grain and exposure flicker (an old film's) make the frame's colour jump when each frame is
    colorized alone; the running average holds it, as colourful."""
    rng = np.random.default_rng(0)
    still = still_shot(24, H, W, 4).astype(np.float32)
    exposure = rng.uniform(0.85, 1.15, (24, 1, 1))
    write_clip(tmp_path / "still.mp4", np.clip(np.rint(still * exposure), 0, 255).astype(np.uint8), audio_seconds=0)
    colorizer = colorizer_of("frame")
    for seconds in (0, 0.25):
        colorize_video(colorizer, tmp_path / "still.mp4", tmp_path / f"{seconds}.mp4", temporal=seconds)
    alone, averaged = ab_of(tmp_path / "0.mp4"), ab_of(tmp_path / "0.25.mp4")
    assert flicker(averaged) < 0.5 * flicker(alone)
    chroma = lambda ab: np.hypot(ab[..., 0], ab[..., 1]).mean()  # noqa: E731
    assert chroma(averaged) > 0.8 * chroma(alone)


def test_a_weaving_still_shot_holds_still(tmp_path):
    """Gate weave (every frame within +-1 px of its place: up to 1.3 px from the last at the
    working size, 64 for 96 rows) moves L along every edge of a textured shot; the average
    follows the weave instead of letting go there, so each thing keeps its colour. Measured on the
    output moved back by the known weave (scipy), where a colour that stays on its thing is still."""
    gray, places = weaving_shot(24, H, W, 9)
    write_clip(tmp_path / "weave.mp4", gray, audio_seconds=0)
    colorizer = colorizer_of("frame", size=64)
    for seconds in (0, 0.25):
        colorize_video(colorizer, tmp_path / "weave.mp4", tmp_path / f"{seconds}.mp4", temporal=seconds)
    inner = np.s_[:, 4:-4, 4:-4]
    alone, averaged = (np.stack([ndimage.shift(ab, (-dy, -dx, 0), order=1, mode="nearest")
                                 for ab, (dy, dx) in zip(ab_of(tmp_path / f"{seconds}.mp4"), places)])[inner]
                       for seconds in (0, 0.25))
    assert flicker(averaged) < 0.65 * flicker(alone)  # 0.54x here; 0.75x when the average does not follow the weave


def test_the_weave_is_measured_and_followed_by_hand():
    """temporal.global_shift finds a sub-pixel shift made by scipy (through grain and a brightness
    change), and smooth moves the average by it: where the frame only moved, the past's ab
    arrives moved as scipy moves it."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:48, 0:64].astype(np.float64)
    l0 = 0.3 * np.sin(xx / 5) * np.cos(yy / 7) + 0.2 * np.sin((xx + yy) / 9)
    shift = (1.4, -0.6)
    l1 = ndimage.shift(l0, shift, order=3, mode="nearest") + 0.03 + rng.normal(0, 0.004, l0.shape)
    found = temporal.global_shift(l0[..., None].astype(np.float32), l1[..., None].astype(np.float32))
    np.testing.assert_allclose(found, shift, atol=0.08)

    past_ab = np.stack([np.sin(xx / 3), np.cos(yy / 4)], axis=-1).astype(np.float32)
    previous = temporal.Previous(l0[..., None].astype(np.float32), past_ab)
    out = temporal.smooth(previous, l1[..., None].astype(np.float32), np.zeros_like(past_ab), 0.8).ab
    expected = 0.8 * ndimage.shift(past_ab, (*found, 0), order=3, mode="nearest")
    inner = np.s_[4:-4, 4:-4]
    np.testing.assert_allclose(out[inner], expected[inner], atol=0.05)
    assert np.abs(out[inner] - 0.8 * past_ab[inner]).max() > 0.2  # not the past left where it was


def test_moving_things_are_not_trailed_by_their_colour(tmp_path):
    """Where the picture changes the average lets go: the colours of moving shapes stay those of
    each frame alone (within the codec's noise)."""
    write_clip(tmp_path / "moving.mp4", moving_shapes(24, H, W, 5), audio_seconds=0)
    colorizer = colorizer_of("pixel")
    for seconds in (0, 0.25):
        colorize_video(colorizer, tmp_path / "moving.mp4", tmp_path / f"{seconds}.mp4", temporal=seconds)
    alone, averaged = ab_of(tmp_path / "0.mp4"), ab_of(tmp_path / "0.25.mp4")
    moved = np.abs(np.diff(rgb2lab(read_frames(tmp_path / "moving.mp4")[0])[..., 0], axis=0)) > 30
    assert moved.sum() > 1000  # the shapes did move
    assert np.abs(averaged[1:] - alone[1:])[moved].mean() < 3.0  # Lab units; the two colours are 60 apart


def test_a_cut_carries_no_colour_from_the_old_shot(tmp_path):
    """Shot B keeps the right half of shot A's picture but is dark on the left, so the network
    colours it differently everywhere; on its first frame the right half, where L did not
    change, must not keep shot A's colour."""
    a = moving_shapes(12, H, W, 6)
    b = a.copy()
    b[:, :, : W // 2] //= 4
    write_clip(tmp_path / "cut.mp4", np.concatenate([a, b]), audio_seconds=0)
    colorizer = colorizer_of("frame")
    for seconds in (0, 10.0):  # a long average: without the cut it would hold shot A's colour for seconds
        colorize_video(colorizer, tmp_path / "cut.mp4", tmp_path / f"{seconds}.mp4", temporal=seconds)
    alone, averaged = ab_of(tmp_path / "0.mp4"), ab_of(tmp_path / "10.0.mp4")
    right = np.s_[:, W // 2 + 4:]
    old, new = alone[11][right].mean(axis=(0, 1)), alone[12][right].mean(axis=(0, 1))
    assert np.abs(old - new).max() > 10  # the two shots' colours differ
    assert np.abs(averaged[12][right].mean(axis=(0, 1)) - new).max() < 1.0
    assert np.abs(averaged[11][right].mean(axis=(0, 1)) - old).max() < 0.2 * np.abs(old - new).max()  # shot A's


def test_the_average_by_hand():
    """temporal.smooth against the formula: weight exp(-1 / (S fps)) where nothing moved, none
    where L changed by MOTION_L or more, all of it up to GRAIN_L and in proportion between, a fresh start
    when most of the picture changed."""
    assert temporal.past_weight(0, 24) == 0
    assert math.isclose(temporal.past_weight(0.5, 24) ** 12, math.exp(-1))  # the time constant is S seconds
    with pytest.raises(ValueError, match="^temporal -1: must be 0"):  # the CLI names its --temporal (below)
        temporal.past_weight(-1, 24)
    l0 = np.zeros((8, 8, 1), np.float32)
    ab0, ab1 = np.full((8, 8, 2), 0.5, np.float32), np.zeros((8, 8, 2), np.float32)
    first = temporal.smooth(None, l0, ab0, 0.8)
    assert first.ab is ab0
    brighter = l0 + 0.2  # the whole frame brighter: exposure, not motion
    np.testing.assert_allclose(temporal.smooth(first, brighter, ab1, 0.8).ab, 0.4, rtol=1e-6)
    moved = l0.copy()
    moved[:, :2] = 0.5  # a quarter of the picture changed: no cut, the average lets go there only
    out = temporal.smooth(first, moved, ab1, 0.8).ab
    assert np.allclose(out[:, 5:], 0.4) and np.allclose(out[:, :1], 0.0)
    for change, kept in ((temporal.GRAIN_L, 1.0), ((temporal.GRAIN_L + temporal.MOTION_L) / 2, 0.5)):
        moved[:, :2] = change  # grain's change lets nothing go; halfway to MOTION_L, half the weight
        out = temporal.smooth(first, moved, ab1, 0.8).ab
        np.testing.assert_allclose(out[:, :1], 0.8 * kept * 0.5, rtol=1e-4)
    cut = l0.copy()
    cut[:, :4] = 0.5  # half the picture changed: a new shot
    assert np.array_equal(temporal.smooth(first, cut, ab1, 0.8).ab, ab1)


def test_a_film_takes_one_reference_for_every_frame(tmp_path):
    """A tiny model with a global-hint input whose b is the given distribution's mean b (zero when
    none is given): a blue reference photo makes the whole film's mean b* fall well below zero, in
    every frame, and without one the film stays gray."""
    from koala.color import AB_NORM, ab_bins
    from koala.data.global_hints import GLOBAL_BINS, GLOBAL_HINT_SIZE, GLOBAL_HINTS_INPUT_NAME

    bin_b = keras.ops.convert_to_tensor(np.asarray(ab_bins(), np.float32)[:, 1:] / AB_NORM)  # (309, 1)
    l_in = keras.Input((None, None, 1), name="L")
    hint_in = keras.Input((GLOBAL_HINT_SIZE,), name=GLOBAL_HINTS_INPUT_NAME)
    b = keras.layers.Lambda(lambda g: keras.ops.matmul(g[:, :GLOBAL_BINS], bin_b))(hint_in)  # (N, 1)
    ab = keras.layers.Lambda(lambda args: keras.ops.concatenate(
        [0.0 * args[0], 0.0 * args[0] + args[1][:, None, None, :]], axis=-1))([l_in, b])
    network = keras.Model({"L": l_in, GLOBAL_HINTS_INPUT_NAME: hint_in}, ab)
    colorizer = Colorizer(network, image_size=32, multiple=8, metadata={"model": "cunet", "image_size": 32, "multiple": 8})
    assert colorizer.takes_global_hints

    write_clip(tmp_path / "film.mp4", moving_shapes(12, H, W, 10), audio_seconds=0)
    blue = np.zeros((32, 32, 3), np.float32)
    blue[:] = (0.15, 0.3, 0.85)
    hint = colorizer.global_hint(reference=blue)
    colorize_video(colorizer, tmp_path / "film.mp4", tmp_path / "blue.mp4", global_hint=hint)
    colorize_video(colorizer, tmp_path / "film.mp4", tmp_path / "none.mp4")
    b_blue, b_none = ab_of(tmp_path / "blue.mp4")[..., 1], ab_of(tmp_path / "none.mp4")[..., 1]
    assert b_blue.shape[0] == 12
    assert np.abs(b_none.mean()) < 2.0
    assert b_blue.mean(axis=(1, 2)).max() < -15  # every frame: the reference is for the whole film


@pytest.fixture(scope="module")
def bad_films(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A folder of broken films beside one good one, and the reason each broken one gives."""
    folder = tmp_path_factory.mktemp("bad")
    write_clip(folder / "good.mkv", moving_shapes(10, H, W, 7))
    (folder / "junk.mp4").write_text("not a film")
    write_clip(folder / "indexed.mp4", moving_shapes(48, H, W, 8), options={"movflags": "faststart"})
    whole = (folder / "indexed.mp4").read_bytes()
    (folder / "truncated.mp4").write_bytes(whole[: len(whole) // 2])
    (folder / "indexed.mp4").unlink()
    whole = (folder / "good.mkv").read_bytes()
    (folder / "truncated.mkv").write_bytes(whole[: len(whole) // 2])
    (folder / "unknown_codec.mkv").write_bytes(whole.replace(b"V_MPEG4/ISO/AVC", b"V_KOALA/ISO/AVC"))
    with av.open(str(folder / "sound_only.mp4"), "w") as out:
        sound = out.add_stream("aac", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        out.mux(sound.encode(frame))
        out.mux(sound.encode(None))
    return folder, {"junk.mp4": "not a video FFmpeg can read", "truncated.mp4": "truncated",
                    "truncated.mkv": "truncated: 5 of 10 frames", "unknown_codec.mkv": "unsupported video codec",
                    "sound_only.mp4": "no video stream"}


def test_bad_films_are_one_line_each_and_write_nothing(bad_films, tmp_path, constant_ab_run, capsys):
    folder, reasons = bad_films
    out = tmp_path / "out"
    assert main(["colorize", str(folder), "-o", str(out), "--model", constant_ab_run]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if "koala colorize: " in line]
    named = {}
    for line in lines:
        message = line[line.index("koala colorize: ") + len("koala colorize: "):]
        source, _, reason = message.partition(": ")
        named[os.path.basename(source)] = reason
    assert named.keys() == reasons.keys()
    assert all(reason in named[name] for name, reason in reasons.items()), named
    assert os.listdir(out) == ["good.mkv"]  # the good film is still done; nothing else, no temporary file
    assert read_frames(out / "good.mkv")[0].shape[0] == 10


def test_ctrl_c_leaves_no_partial_film(film, tmp_path, constant_ab_run, monkeypatch, capsys):
    import koala.video.colorize as video_colorize

    encoded = []
    real = video_colorize.to_yuv

    def interrupt_midway(*args):
        encoded.append(1)
        if len(encoded) == 20:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(video_colorize, "to_yuv", interrupt_midway)
    assert main(["colorize", str(film), "-o", str(tmp_path / "out"), "--model", constant_ab_run]) == INTERRUPTED_EXIT
    assert len(encoded) == 20 and os.listdir(tmp_path / "out") == []
    assert capsys.readouterr().err.strip().endswith("koala colorize: interrupted")


def test_photos_and_films_share_the_naming_and_overwrite_rules(film, tmp_path, constant_ab_run, capsys):
    folder = tmp_path / "archive"
    (folder / "reel").mkdir(parents=True)
    Image.fromarray(np.full((40, 60), 128, np.uint8)).save(folder / "photo.png")
    (folder / "reel" / "film.avi").write_bytes(film.read_bytes())  # an mp4 named .avi: FFmpeg reads either
    out = tmp_path / "out"
    assert main(["colorize", str(folder), "-o", str(out), "--model", constant_ab_run]) == 0
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == ["photo.png", "reel/film.mkv"]
    assert read_frames(out / "reel" / "film.mkv")[0].shape == (48, H, W, 3)

    stamp = (out / "reel" / "film.mkv").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["colorize", str(folder), "-o", str(out), "--model", constant_ab_run]) == 0  # kept, as photos
    assert "colorized 0 of 2 input(s)" in (err := capsys.readouterr().err) and "2 kept" in err
    assert (out / "reel" / "film.mkv").stat().st_mtime_ns == stamp

    same = tmp_path / "same"
    same.mkdir()
    (same / "film.mp4").write_bytes(film.read_bytes())
    assert main(["colorize", str(same), "-o", str(same), "--model", constant_ab_run, "--overwrite"]) == 1
    assert "would replace an input film; skipped" in capsys.readouterr().err
    assert (same / "film.mp4").read_bytes() == film.read_bytes()


def test_film_options_are_checked_before_any_work(film, tmp_path, capsys):
    assert main(["colorize", str(film), "-o", str(tmp_path / "out"), "--crf", "52"]) == 2
    assert capsys.readouterr().err.strip() == "koala colorize: --crf 52: must be 0 (lossless) to 51 (worst)"
    assert main(["colorize", str(film), "-o", str(tmp_path / "out"), "--temporal", "-1"]) == 2
    assert "--temporal -1: must be 0" in capsys.readouterr().err


def test_the_warping_error_sees_colours_that_do_not_follow_the_motion():
    """A pan of 3 px: the next output is the last one moved along (error near 0), or its colours
    swapped (red for blue: large). The flow is the gray inputs' (OpenCV's DIS)."""
    pytest.importorskip("cv2")
    from koala.evaluation.films import warping_error

    gray = np.asarray(Image.open(Path(__file__).parents[1] / "koala" / "samples" / "camera.png").convert("L"))
    first, second = gray[:200, 10:250], gray[:200, 7:247]
    colour = lambda g: np.stack([g, g // 2, 255 - g], axis=-1) / 255.0  # noqa: E731
    inputs = np.stack([first, second])
    followed = warping_error(np.stack([colour(first), colour(second)]), inputs)
    swapped = warping_error(np.stack([colour(first), colour(second)[..., ::-1]]), inputs)
    assert followed < 0.002 and swapped > 0.1


@pytest.mark.slow
def test_batch_colorize_takes_films_one_element_each(film, tmp_path, constant_ab_run, capsys):
    pytest.importorskip("apache_beam")
    folder = tmp_path / "archive"
    folder.mkdir()
    Image.fromarray(np.full((40, 60), 128, np.uint8)).save(folder / "photo.png")
    (folder / "film.mp4").write_bytes(film.read_bytes())
    (folder / "junk.webm").write_text("not a film")
    out = tmp_path / "out"
    assert main(["batch", "colorize", str(folder), "-o", str(out), "--model", constant_ab_run,
                 "--runner=DirectRunner"]) == 1
    assert "colorized 2 image(s)" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["failed.tsv", "film.mp4", "photo.png"]
    assert read_frames(out / "film.mp4")[0].shape == (48, H, W, 3)
    assert audio_packets(out / "film.mp4") == audio_packets(film)
    failed = (out / "failed.tsv").read_text().splitlines()[1:]
    assert len(failed) == 1 and failed[0].startswith(str(folder / "junk.webm") + "\tnot a video FFmpeg can read")
