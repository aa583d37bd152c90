"""Films on this machine (issue 18): frames/s and peak memory of ``koala colorize`` on a film at 480p,
720p and 1080p with the bundled model, and the temporal stability of ``--temporal 0`` (frame by
frame) against the default: flicker on a still grainy shot, Lai et al.'s warping error on a
moving one, and the colourfulness kept.

    python scripts/benchmark_video.py --out reports/video        # video.json and video.md

Films are made here from the bundled gray sample photos (koala/samples) with PyAV, 24 frames/s:
a *still* shot (the photo with fresh film grain every frame, clumped over about 2 px, and the
exposure flicker of old films, +-4%) and a *moving* one (a slow pan and zoom across the photo,
with grain). Each speed run is its own process, which only colorizes (``colorize_video`` after a
short warm-up film of the same size has traced the graphs), so its peak resident memory
(``ru_maxrss``: TensorFlow, PyAV and the model included) is the colorizing's; 1080p runs at two
lengths to show that memory does not grow with the film. Flicker and warping error are measured
on the decoded outputs (koala.evaluation.films; on the weaving shots also with each frame moved
back by the weave the benchmark gave it, so that edges moving under the weave do not count as
flicker; the warping error needs
``opencv-python-headless``, in koala's test extra). The machine's load average is recorded beside
the numbers: on shared cores frames/s vary.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import av  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "koala" / "samples"
RATE = 24
SIZES = {"480p": (480, 854), "720p": (720, 1280), "1080p": (1080, 1920)}
GRAIN_STD, EXPOSURE_FLICKER = 10.0, 0.04
WEAVE_PX = 1.0  # gate weave: each frame within +-1 px (at 480p) of its place


def grain(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Film grain of std ``GRAIN_STD`` levels in clumps of about 2 px at 480p (``scale`` x that)."""
    clump = max(1, round(2 * scale))
    small = rng.normal(0, 1, (shape[0] // clump + 1, shape[1] // clump + 1)).astype(np.float32)
    size = (shape[1] // clump * clump + clump, shape[0] // clump * clump + clump)
    noise = np.asarray(Image.fromarray(small).resize(size, Image.BILINEAR))[: shape[0], : shape[1]]
    return noise / noise.std() * GRAIN_STD


def photo(name: str, height: int, width: int, zoom: float = 1.0, shift: float = 0.0,
          weave: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """A bundled gray sample photo covering (height, width), zoomed and shifted along x (a fraction
    of the spare width) for a moving shot, and moved by ``weave`` (x, y) pixels, sub-pixel, as a
    film weaves in the gate."""
    img = Image.open(SAMPLES / name).convert("L")
    scale = max(height / img.height, width / img.width) * 1.25 * zoom
    big = img.resize((round(img.width * scale), round(img.height * scale)), Image.BILINEAR).convert("F")
    x = round((big.width - width) * shift) + weave[0]
    y = (big.height - height) // 2 + weave[1]
    return np.asarray(big.transform((width, height), Image.AFFINE, (1, 0, x, 0, 1, y), Image.BILINEAR), np.float32)


def shot(kind: str, name: str, count: int, height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gray uint8 frames (count, H, W) of a shot of a sample photo: ``still`` (with
    the exposure flicker of old film) or ``moving`` (a slow pan and zoom), either ``weaving ...`` (each
    frame at its own random place within +-``WEAVE_PX`` px at 480p, so 0-2 px from the last); and
    each frame's weave (count, 2: x, y pixels; the frame shows the photo moved by minus that)."""
    rng = np.random.default_rng(seed)
    scale = height / 480
    still = kind.endswith("still")
    frames, weaves = [], []
    for t in range(count):
        weave = (tuple(rng.uniform(-WEAVE_PX, WEAVE_PX, 2) * scale) if kind.startswith("weaving")
                 else (0.0, 0.0))
        weaves.append(weave)
        base = (photo(name, height, width, shift=0.5, weave=weave) if still
                else photo(name, height, width, zoom=1 + 0.004 * t, shift=0.1 + 0.8 * t / count, weave=weave))
        exposure = rng.uniform(1 - EXPOSURE_FLICKER, 1 + EXPOSURE_FLICKER) if still else 1.0
        frames.append(np.clip(np.rint(base * exposure + grain(rng, (height, width), scale)), 0, 255).astype(np.uint8))
    return np.stack(frames), np.array(weaves)


def weave_removed_flicker(rgb: np.ndarray, weaves: np.ndarray, margin: int = 4) -> float:
    """Flicker of a weaving shot's output with each frame moved back by its known weave (scipy,
    bilinear), the frame's sides (``margin`` px) left out: what is left is the colour's own
    change. The raw flicker of a weaving shot also counts the picture's movement: the colour that
    stays on a moving edge changes at that pixel as the edge comes and goes."""
    from scipy import ndimage

    from koala.evaluation.films import lab_ab

    ab = lab_ab(rgb)
    steady = np.stack([ndimage.shift(frame, (y, x, 0), order=1, mode="nearest")
                       for frame, (x, y) in zip(ab, weaves)])[:, margin:-margin, margin:-margin]
    return float(np.mean(np.abs(np.diff(steady, axis=0))))


def write_film(path: Path, gray: np.ndarray) -> None:
    """Gray frames as an H.264 MP4 at 24 frames/s (crf 18), as a scanned film would come."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=RATE, options={"crf": "18"})
        stream.height, stream.width = gray.shape[1:]
        stream.pix_fmt = "yuv420p"
        for i, image in enumerate(gray):
            frame = av.VideoFrame.from_ndarray(np.repeat(image[..., None], 3, axis=-1), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, RATE)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def read_film(path: Path) -> np.ndarray:
    with av.open(str(path)) as film:
        return np.stack([f.to_ndarray(format="rgb24") for f in film.decode(video=0)])


def cpu_seconds() -> float:
    """CPU time of this process so far (all threads): what a film costs, whatever else runs."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def speed_run(source: Path, warm: Path) -> dict:
    """One speed measurement, inside its own process: frames/s and peak RSS of colorize_video on
    ``source``, after ``warm`` (a short film of the same size) has traced the graphs."""
    from koala.inference import Colorizer
    from koala.video.colorize import colorize_video

    colorizer = Colorizer.load("default")
    colorize_video(colorizer, warm, warm.with_name("out-" + warm.name), overwrite=True)
    warmed = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start, cpu = time.perf_counter(), cpu_seconds()
    frames = colorize_video(colorizer, source, source.with_name("out-" + source.name), overwrite=True)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    import koala

    return {"koala": os.path.dirname(koala.__file__), "frames": frames, "seconds": round(seconds, 2),
            "frames_per_second": round(frames / seconds, 2),
            "cpu_seconds_per_frame": round(cpu / frames, 3),
            "peak_rss_mb_after_warm_up": round(warmed),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "load_average": [round(x, 1) for x in os.getloadavg()]}


def speed(size: str, frames: int, folder: Path) -> dict:
    """Films made here, colorized by a fresh process (so its memory is the colorizing's alone)."""
    height, width = SIZES[size]
    source, warm = folder / f"moving-{size}-{frames}.mp4", folder / f"warm-{size}.mp4"
    write_film(source, shot("moving", "coffee_gray.png", frames, height, width)[0])
    write_film(warm, shot("moving", "coffee_gray.png", 8, height, width, seed=1)[0])
    result = subprocess.run([sys.executable, __file__, "--speed-run", str(source), "--warm", str(warm)],
                            capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return {"size": size, **json.loads(result.stdout.strip().splitlines()[-1])}


def stability(folder: Path, frames: int, temporal: float) -> list[dict]:
    """Flicker, warping error and colourfulness of frame by frame against the default, at 480p."""
    from koala.evaluation.films import flicker, warping_error
    from koala.evaluation.metrics import colourfulness
    from koala.inference import Colorizer
    from koala.video.colorize import colorize_video

    colorizer = Colorizer.load("default")
    height, width = SIZES["480p"]
    rows = []
    for kind, name in (("still", "chelsea_gray.png"), ("still", "coffee_gray.png"), ("moving", "chelsea_gray.png"),
                       ("weaving still", "chelsea_gray.png"), ("weaving pan", "chelsea_gray.png")):
        gray, weaves = shot(kind, name, frames, height, width, seed=2)
        source = folder / f"{kind.replace(' ', '-')}-{name[:-4]}.mp4"
        write_film(source, gray)
        inputs = read_film(source)[..., 0]
        settings = {"frame by frame (--temporal 0)": 0.0, f"default (--temporal {temporal:g})": temporal}
        if kind.endswith("still"):
            settings["colours frozen (floor: --temporal 1e9)"] = 1e9
        for label, seconds in settings.items():
            out = folder / "out" / f"{source.stem}-{seconds:g}.mp4"
            colorize_video(colorizer, source, out, temporal=seconds, overwrite=True)
            rgb = read_film(out).astype(np.float32) / 255.0
            row = {"shot": f"{kind} ({name[:-9]})", "setting": label, "flicker": round(flicker(rgb), 3),
                   "colourfulness": round(float(np.mean(colourfulness(rgb))), 2)}
            if kind != "still":
                row["warping_error"] = round(warping_error(rgb, inputs), 5)
            if kind.startswith("weaving"):
                row["flicker_weave_removed"] = round(weave_removed_flicker(rgb, weaves), 3)
            rows.append(row)
    return rows


def markdown(report: dict) -> str:
    lines = ["| film | frames | frames/s | CPU-seconds a frame | seconds | peak RSS MB (after warm-up -> end) "
             "| load average (1, 5, 15 min) |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in report["speed"]:
        lines.append(f"| {r['size']} | {r['frames']} | {r['frames_per_second']:.2f} | "
                     f"{r.get('cpu_seconds_per_frame', '')} | {r['seconds']:.1f} | "
                     f"{r['peak_rss_mb_after_warm_up']} -> {r['peak_rss_mb']} | "
                     f"{', '.join(str(x) for x in r['load_average'])} |")
    if "stability_load_average" in report:
        before, after = report["stability_load_average"][:3], report["stability_load_average"][3:]
        lines += ["", f"Stability (load average before: {', '.join(map(str, before))}; "
                      f"after: {', '.join(map(str, after))}):"]
    lines += ["", "| shot (480p) | setting | flicker (mean abs delta ab) | vs frame by frame "
                  "| flicker, weave removed | vs frame by frame | colourfulness "
                  "| vs frame by frame | warping error |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    base = {}
    for r in report["stability"]:
        base.setdefault(r["shot"], r)
        b = base[r["shot"]]
        steady = (f"{r['flicker_weave_removed']:.3f} | {r['flicker_weave_removed'] / b['flicker_weave_removed']:.2f}x"
                  if "flicker_weave_removed" in r else " | ")
        lines.append(f"| {r['shot']} | {r['setting']} | {r['flicker']:.3f} | {r['flicker'] / b['flicker']:.2f}x | "
                     f"{steady} | {r['colourfulness']:.2f} | {r['colourfulness'] / b['colourfulness']:.2f}x | "
                     f"{r.get('warping_error', '')} |")
    lines += ["", "Flicker, weave removed: the weaving shots' outputs with each frame moved back by the weave "
                  "the benchmark gave it (known here, not estimated), so that only the colour's own change "
                  "is counted; the raw flicker beside it also counts edges moving under the weave."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="reports/video", help="folder for video.json and video.md")
    parser.add_argument("--frames", type=int, default=48, help="frames per film (default 48: 2 s)")
    parser.add_argument("--long-frames", type=int, default=144, help="the longer 1080p film (default 144: 6 s)")
    parser.add_argument("--only", choices=("speed", "stability"),
                        help="one half of the benchmark; the other half is kept from --out's video.json")
    parser.add_argument("--sizes", nargs="*", choices=tuple(SIZES), default=tuple(SIZES),
                        help="the speed runs to make (default all; 1080p is two lengths); the others are kept "
                             "from --out's video.json")
    parser.add_argument("--speed-run", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--warm", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.speed_run:
        print(json.dumps(speed_run(args.speed_run, args.warm)))
        return
    from koala.video import DEFAULT_TEMPORAL

    out = Path(args.out)
    kept = json.loads((out / "video.json").read_text()) if (out / "video.json").exists() else {}
    runs = [("480p", args.frames), ("720p", args.frames), ("1080p", args.frames), ("1080p", args.long_frames)]
    runs = [(size, frames) for size, frames in runs if size in args.sizes] if args.only != "stability" else []
    report = {"speed": [r for r in kept.get("speed", []) if r["size"] not in {size for size, _ in runs}],
              "stability": kept.get("stability", []) if args.only == "speed" else []}
    if args.only == "speed" and "stability_load_average" in kept:
        report["stability_load_average"] = kept["stability_load_average"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for size, frames in runs:
            report["speed"].append(speed(size, frames, folder))
            print(json.dumps(report["speed"][-1]), flush=True)
        if args.only != "speed":
            load = os.getloadavg()
            report["stability"] = stability(folder, args.frames, DEFAULT_TEMPORAL)
            report["stability_load_average"] = [round(x, 1) for x in (*load, *os.getloadavg())]
    order = {size: i for i, size in enumerate(SIZES)}
    report["speed"].sort(key=lambda r: (order[r["size"]], r["frames"]))
    report["cpu_count"] = os.cpu_count()
    out.mkdir(parents=True, exist_ok=True)
    (out / "video.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "video.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
