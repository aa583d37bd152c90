"""Images/s of ``koala colorize`` (one process) against ``koala batch colorize`` (Apache Beam's
DirectRunner in multi_processing mode with 1 and 2 local workers) on the same photos.

    python scripts/benchmark_batch.py --data ../shared/datasets/photos-v1/val --count 200
    python scripts/benchmark_batch.py                       # 200 generated 256x384 photos

Each command runs as a user runs it, in a fresh process, and is timed wall-clock from start to
exit: Python and TensorFlow start-up, the model load (once per Beam worker) and the writes are
all in. The photos are copied into one folder first, so every command reads the same files.
Numbers depend on what else the machine is doing.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from koala.images import list_images

BEAM = ["--runner=DirectRunner", "--direct_running_mode=multi_processing"]


def gather(data: str | None, count: int, folder: Path) -> None:
    """``count`` photos into ``folder``: the first of ``data``, else generated ones."""
    folder.mkdir()
    if data:
        paths = list_images(data)[:count]
        if len(paths) < count:
            raise SystemExit(f"{data}: only {len(paths)} photos, asked for {count}")
        for i, path in enumerate(paths):
            shutil.copyfile(path, folder / f"{i:05d}{Path(path).suffix.lower()}")
        return
    rng = np.random.default_rng(0)
    for i in range(count):
        coarse = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((384, 256), Image.BICUBIC).save(folder / f"{i:05d}.jpg", quality=90)


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="folder or split file of photos (default: generated)")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--model", default="default")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2], help="Beam worker counts (default 1 2)")
    parser.add_argument("--out", help="write the JSON here")
    args = parser.parse_args()

    koala = [sys.executable, "-m", "koala.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "photos"
        gather(args.data, args.count, photos)
        megapixels = sum(np.prod(Image.open(p).size) for p in photos.iterdir()) / 1e6
        runs = {"koala colorize": koala + ["colorize", str(photos), "-o", f"{tmp}/single", "--model", args.model]}
        for n in args.workers:
            runs[f"koala batch colorize, {n} worker(s)"] = koala + [
                "batch", "colorize", str(photos), "-o", f"{tmp}/beam{n}", "--model", args.model, *BEAM,
                f"--direct_num_workers={n}"]
        results = []
        print(f"{args.count} photos, {megapixels:.1f} MP, {os.cpu_count()} CPU cores", flush=True)
        for name, command in runs.items():
            seconds = timed(command)
            results.append({"command": name, "seconds": round(seconds, 1),
                            "images_per_second": round(args.count / seconds, 2)})
            print(f"{name:<36}{seconds:8.1f} s {args.count / seconds:8.2f} images/s", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"photos": args.count, "megapixels": round(megapixels, 2),
                                              "data": args.data or "generated", "results": results}, indent=2))


if __name__ == "__main__":
    main()
