"""Benchmark every registered model on this machine: training images/s, inference megapixels/s
and peak memory at 128 and 256 px, the input pipeline's own images/s, and the pipeline against
the naive way the seed projects fed Keras (a Python loop with ``skimage.color.rgb2lab`` per
image, then ``model.fit`` on NumPy arrays), feeding the fastest plain L -> ab model.

    python scripts/benchmark.py --quick                      # a few minutes on 2 CPU cores
    python scripts/benchmark.py --data ../shared/datasets/photos-v1/val --out bench.json --md bench.md

Each model runs in its own subprocess so that its peak resident memory (``ru_maxrss``; TensorFlow
allocates outside Python, so tracemalloc would not see it) is its own; sizes run in ascending
order, so the peak at 256 px is that of the whole model run. Models train with their registry
defaults (paper widths) in float32 without XLA, through ``koala.training``'s own datasets, loss
and compile steps; downloads are avoided by giving builders that take ``extractor_weights``
"none" (same compute, random weights). Numbers depend on what else the machine is doing.

    python scripts/benchmark.py --scans 1 24 100              # big scans through koala colorize

``--scans`` instead measures ``koala colorize`` on generated grayscale scans of the given
megapixels (3:2; each size smooth, and grainy as real scans are, which makes PNG encoding
slower), each in its own process with the bundled
model: seconds for the command (model load, decode, colorize, PNG encode and write) and the
process's peak resident memory, beside that of the same process before it colorized.
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
SCAN_GRAIN = 8.0  # levels: the grainy scan's film grain (std), beside a smooth one of each size


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def bench_args(name: str) -> dict:
    """Registry defaults, minus anything that would download weights."""
    from koala.models import get_spec

    params = inspect.signature(get_spec(name).build).parameters
    return {"extractor_weights": "none"} if "extractor_weights" in params else {}


def make_config(name: str, size: int, batch: int, steps: int, data: str):
    from koala import config as config_lib

    return config_lib.from_dict({"name": "bench", "out_dir": "/tmp/koala-bench", "model": name,
                                 "model_args": bench_args(name),
                                 "data": {"train": data, "val": data, "image_size": size, "batch_size": batch},
                                 "train": {"steps_per_epoch": steps, "epochs": 1, "precision": "float32",
                                           "jit_compile": False}})


def time_fit(model, dataset, steps: int) -> float:
    """Seconds for ``steps`` training steps, after one warm-up step that traces the function."""
    model.fit(dataset, epochs=1, steps_per_epoch=1, verbose=0)
    start = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
    return time.perf_counter() - start


def bench_model(name: str, sizes: list[int], batch: int, steps: int, data: str, repeats: int) -> list[dict]:
    """Training and inference speed of one model at each size (run inside its own process)."""
    import keras
    import numpy as np

    from koala.inference import Colorizer
    from koala.models import get_spec
    from koala.training import build_datasets, compile_model

    rows = []
    for size in sizes:
        cfg = make_config(name, size, batch, steps, data)
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        train_ds, _ = build_datasets(cfg)
        model = compile_model(cfg, [])
        seconds = time_fit(model, train_ds, steps)
        spec = get_spec(name)
        colorizer = Colorizer(model, size, spec.multiple, metadata={"model": name, "model_args": cfg.model_args})
        photo = np.random.default_rng(0).uniform(0, 1, (size, size, 3)).astype(np.float32)
        colorizer.colorize_float(photo)  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            colorizer.colorize_float(photo)
        infer = time.perf_counter() - start
        rows.append({"model": name, "size": size, "batch": batch,
                     "train_images_per_s": steps * batch / seconds,
                     "infer_megapixels_per_s": repeats * size * size / infer / 1e6,
                     "peak_rss_mb": peak_rss_mb()})
    return rows


def decoded_photos(paths: list[str], size: int) -> list:
    """Every photo decoded once, short side brought to the pipeline's crop margin (small photos
    grown), as the seeds kept their training set in memory as arrays."""
    import numpy as np
    from PIL import Image

    from koala.data.pipeline import CROP_MARGIN
    from koala.images import load_shrunk

    short = int(round(size * CROP_MARGIN))
    photos = []
    for path in paths:
        rgb = load_shrunk(path, short)
        if rgb.size and min(rgb.shape[:2]) < short:
            scale = short / min(rgb.shape[:2])
            grown = (max(short, round(rgb.shape[1] * scale)), max(short, round(rgb.shape[0] * scale)))
            rgb = np.asarray(Image.fromarray(rgb).resize(grown, Image.BILINEAR))
        if rgb.size:
            photos.append(rgb)
    return photos


def naive_arrays(photos: list, count: int, size: int, rng):
    """The seeds' way: ``count`` photos one at a time in Python, a random crop, skimage's rgb2lab."""
    import numpy as np
    from skimage.color import rgb2lab

    from koala.color import AB_NORM, L_CENT, L_NORM

    ls, abs_ = [], []
    for i in range(count):
        rgb = photos[i % len(photos)]
        top = rng.integers(0, rgb.shape[0] - size + 1)
        left = rng.integers(0, rgb.shape[1] - size + 1)
        lab = rgb2lab(rgb[top:top + size, left:left + size])
        ls.append((lab[..., :1] - L_CENT) / L_NORM)
        abs_.append(lab[..., 1:] / AB_NORM)
    return np.stack(ls).astype("float32"), np.stack(abs_).astype("float32")


def pipeline_rate(paths: list[str], size: int, batch: int, batches: int, augment) -> tuple[float, object]:
    """images/s of the cached pipeline (after one pass that decodes and caches), and the dataset."""
    from koala.data import make_dataset

    ds = make_dataset(paths, size, batch, training=True, augment=augment, repeat=True)
    iterator = iter(ds)
    for _ in range(-(-len(paths) // batch) + 1):  # first pass: decode and cache
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch / (time.perf_counter() - start), ds


def bench_pipeline(sizes: list[int], batch: int, batches: int, data: str, model_name: str) -> dict:
    """The tf.data pipeline's own images/s per size (cached, with the default augmentation), and
    the pipeline against naive feeding of ``fit`` doing the same work (random crop + Lab, no
    augmentation), both once the photos are decoded."""
    import keras
    import numpy as np

    from koala.data import Augment
    from koala.images import list_images
    from koala.losses import get_loss
    from koala.models import get_model

    paths = list_images(data)
    out = {"pipeline": [{"size": size, "images_per_s": pipeline_rate(paths, size, batch, batches, Augment())[0]}
                        for size in sizes]}

    size = sizes[0]
    n = batches * batch
    photos = decoded_photos(paths, size)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    naive_arrays(photos, n, size, rng)
    naive_data = n / (time.perf_counter() - start)
    pipeline_data, ds = pipeline_rate(paths, size, batch, batches, None)
    model = get_model(model_name, **bench_args(model_name))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=get_loss("l1"), jit_compile=False)
    x, y = naive_arrays(photos, batch, size, rng)
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # warm-up: trace
    start = time.perf_counter()
    x, y = naive_arrays(photos, n, size, rng)  # new crops every epoch, as the seeds' generators made
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    naive_fit = n / (time.perf_counter() - start)
    pipeline_fit = n / time_fit(model, ds, batches)
    out["naive"] = {"model": model_name, "size": size, "batch": batch, "images": n,
                    "naive_data_images_per_s": naive_data, "pipeline_data_images_per_s": pipeline_data,
                    "data_ratio": pipeline_data / naive_data,
                    "naive_fit_images_per_s": naive_fit, "pipeline_fit_images_per_s": pipeline_fit,
                    "fit_ratio": pipeline_fit / naive_fit}
    return out


def markdown(result: dict) -> str:
    lines = ["| model | size | train img/s | infer MP/s | peak RSS MB |", "|---|---:|---:|---:|---:|"]
    for r in result["models"]:
        if "error" in r:
            lines.append(f"| {r['model']} | — | failed: {r['error'][:80]} | | |")
            continue
        lines.append(f"| {r['model']} | {r['size']} | {r['train_images_per_s']:.2f} | "
                     f"{r['infer_megapixels_per_s']:.3f} | {r['peak_rss_mb']:.0f} |")
    pipe = result["pipeline"]
    if "error" in pipe:
        return "\n".join(lines + ["", f"Input pipeline benchmark failed: {pipe['error']}"])
    lines += ["", "| input pipeline | size | images/s |", "|---|---:|---:|"]
    lines += [f"| koala.data (cached, augment, Lab) | {p['size']} | {p['images_per_s']:.0f} |" for p in pipe["pipeline"]]
    nv = pipe["naive"]
    lines += ["", f"Naive feeding ({nv['model']}, {nv['size']} px, batch {nv['batch']}, {nv['images']} images; "
              "both sides: random crop + Lab, no augmentation, photos already decoded):",
              "", "| | naive (Python loop + rgb2lab) | koala pipeline | ratio |", "|---|---:|---:|---:|",
              f"| data only, images/s | {nv['naive_data_images_per_s']:.1f} | {nv['pipeline_data_images_per_s']:.1f} | "
              f"{nv['data_ratio']:.1f}x |",
              f"| data + fit, images/s | {nv['naive_fit_images_per_s']:.1f} | {nv['pipeline_fit_images_per_s']:.1f} | "
              f"{nv['fit_ratio']:.2f}x |"]
    return "\n".join(lines)


def write_scan(megapixels: float, path: Path, grain: float = 0.0) -> None:
    """A smooth 3:2 grayscale scan of ``megapixels``, made in stripes (no float copy of it), with
    film grain of std ``grain`` levels (default none; grain makes PNGs big and slow to encode)."""
    import numpy as np
    from PIL import Image

    width = int(round((megapixels * 1e6 * 1.5) ** 0.5))
    height = int(round(megapixels * 1e6 / width))
    pixels = np.empty((height, width), np.uint8)
    x = np.sin(np.arange(width, dtype=np.float32) / 97.0)
    rng = np.random.default_rng(0)
    for top in range(0, height, 1024):
        y = np.cos(np.arange(top, min(top + 1024, height), dtype=np.float32) / 53.0)
        stripe = 127 + 100 * y[:, None] * x[None, :]
        if grain:
            stripe += rng.normal(0, grain, stripe.shape).astype(np.float32)
        pixels[top : top + len(y)] = np.clip(np.rint(stripe), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)


def bench_scan(path: str) -> dict:
    """``koala colorize`` on one scan, inside this process (run as a child, so the peak is its own)."""
    from PIL import Image

    from koala.cli import main as koala_main
    from koala.inference import Colorizer

    Colorizer.load("default")  # TensorFlow and Keras imported, as before any colorize
    before = peak_rss_mb()
    start = time.perf_counter()
    code = koala_main(["colorize", path, "-o", str(Path(path).parent / "out"), "--overwrite"])
    seconds = time.perf_counter() - start
    with Image.open(path) as img:
        pixels = img.width * img.height
    import koala

    return {"koala": os.path.dirname(koala.__file__), "megapixels": pixels / 1e6, "size": f"{img.width}x{img.height}", "exit": code, "seconds": seconds,
            "peak_rss_mb": peak_rss_mb(), "rss_before_mb": before}


def bench_scans(megapixels: list[float], timeout: float) -> list[dict]:
    """Each size smooth and grainy (``SCAN_GRAIN``), each in its own process, the load average beside it."""
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory(prefix="koala-scans-") as folder:
        for mp in sorted(megapixels):
            for grain in (0.0, SCAN_GRAIN):
                path = Path(folder) / f"scan_{mp:g}mp{'_grain' if grain else ''}.png"
                write_scan(mp, path, grain)
                print(f"benchmark: {path.name} ({path.stat().st_size:,} bytes) ...", file=sys.stderr, flush=True)
                rows.append({**run_child(["--child", "scan", str(path)], timeout), "grain": grain,
                             "bytes": path.stat().st_size, "load_average": [round(x, 1) for x in os.getloadavg()]})
                path.unlink()
    print("| scan | exit | seconds | peak RSS, MB | RSS before colorizing, MB | load average |\n"
          "|---|---:|---:|---:|---:|---|")
    for r in rows:
        kind = f"grain {r['grain']:g}" if r["grain"] else "smooth"
        print(f"| {r['megapixels']:.0f} MP ({r['size']}, {kind}) | {r['exit']} | {r['seconds']:.1f} | "
              f"{r['peak_rss_mb']:.0f} | {r['rss_before_mb']:.0f} | {', '.join(map(str, r['load_average']))} |")
    return rows


def run_child(args: list[str], timeout: float) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(("{", "["))]
    if proc.returncode != 0 or not lines:
        errors = [ln for ln in (proc.stderr + proc.stdout).splitlines() if "Error" in ln]
        raise RuntimeError(errors[-1] if errors else f"exit {proc.returncode}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="", help="photos (folder or split file); default: scikit-image's photos")
    parser.add_argument("--models", nargs="*", help="default: every registered model")
    parser.add_argument("--sizes", nargs="*", type=int, default=[128, 256])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="timed training steps")
    parser.add_argument("--repeats", type=int, default=5, help="timed inference calls")
    parser.add_argument("--quick", action="store_true", help="batch 2, 2 timed steps, 2 inference calls")
    parser.add_argument("--out", help="write the JSON here")
    parser.add_argument("--md", help="write the Markdown table here")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per model")
    parser.add_argument("--scans", nargs="*", type=float, metavar="MP",
                        help="instead: koala colorize on grayscale scans of these megapixels (e.g. 1 24 100)")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "NAME"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child and args.child[0] == "scan":
        print(json.dumps(bench_scan(args.child[1])))
        return
    if args.scans is not None:
        rows = bench_scans(args.scans or [1, 24, 100], args.timeout)
        if args.out:
            Path(args.out).write_text(json.dumps({"machine": {"cpus": os.cpu_count()}, "scans": rows}, indent=2))
        return
    if args.quick:
        args.batch, args.steps, args.repeats = 2, 2, 2
    from koala.data.sources import data_source

    data = data_source(args.data)
    if args.child:
        kind, name = args.child
        if kind == "model":
            print(json.dumps(bench_model(name, args.sizes, args.batch, args.steps, data, args.repeats)))
        else:
            print(json.dumps(bench_pipeline(args.sizes, args.batch, args.steps * 4, data, name)))
        return

    from koala.models import MODELS

    names = args.models or list(MODELS)
    common = ["--data", data, "--batch", str(args.batch), "--steps", str(args.steps),
              "--repeats", str(args.repeats), "--sizes", *map(str, args.sizes)]
    result = {"machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()}, "settings": vars(args),
              "models": []}
    for name in names:
        print(f"benchmark: {name} ...", file=sys.stderr, flush=True)
        try:
            result["models"] += run_child([*common, "--child", "model", name], args.timeout)
        except Exception as e:  # report and go on: one model must not sink the table
            result["models"].append({"model": name, "error": str(e)})
    print("benchmark: input pipeline and naive feeding ...", file=sys.stderr, flush=True)
    # The naive comparison uses the fastest plain (L in, ab out) model: where the input matters most.
    plain = [r for r in result["models"] if "error" not in r and r["size"] == args.sizes[0]
             and MODELS[r["model"]].output == "ab" and not MODELS[r["model"]].side_input]
    plain = max(plain, key=lambda r: r["train_images_per_s"])["model"] if plain else names[0]
    try:
        result["pipeline"] = run_child([*common, "--child", "pipeline", plain], args.timeout)
    except Exception as e:  # keep the model numbers
        result["pipeline"] = {"error": str(e)}
    result["machine"]["load_average_after"] = os.getloadavg()
    table = markdown(result)
    print(table)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    if args.md:
        Path(args.md).write_text(table + "\n")


if __name__ == "__main__":
    main()
