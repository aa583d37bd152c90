"""Peak memory and seconds of ``koala colorize`` against ``koala batch colorize`` (Beam's
DirectRunner, in memory, one worker) on one big generated photo, and how far their outputs differ.

    python scripts/bench_batch_memory.py                    # 6000 x 4000 gray PNG (24 MP)
    python scripts/bench_batch_memory.py --mode RGB --width 4000 --height 3000

The photo is smooth noise (random values on a coarse grid, resized bicubically), so its PNG is
small. Each command runs as a user runs it, in a fresh process, timed from start to exit (Python,
TensorFlow and Beam start-up, model load, decode, colorize, encode and write); its peak resident
memory is that process's own (``ru_maxrss`` from ``wait4``; the in-memory DirectRunner runs its
worker inside it). Numbers depend on what else the machine is doing.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

COARSE = 60  # grid cells along the long side of the noise


def write_photo(path: Path, width: int, height: int, mode: str) -> None:
    """Smooth noise of ``width`` x ``height`` in PIL ``mode`` (L, RGB or I;16), saved as PNG."""
    rng = np.random.default_rng(0)
    cells = (max(2, COARSE * height // width), COARSE)
    if mode == "RGB":
        coarse = Image.fromarray(rng.integers(0, 256, (*cells, 3), dtype=np.uint8))
    elif mode == "I;16":
        coarse = Image.fromarray(rng.integers(0, 65536, cells, dtype=np.uint16))
    else:
        coarse = Image.fromarray(rng.integers(0, 256, cells, dtype=np.uint8))
    coarse.resize((width, height), Image.BICUBIC).save(path)


def measured(command: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in GB) of ``command`` run to its end; exits on failure."""
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: a full pipe would stall the child
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak, not the largest child's so far
        seconds = time.perf_counter() - start
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        if code != 0:
            log.seek(0)
            raise SystemExit(f"{' '.join(command)} failed ({code}):\n{log.read().decode(errors='replace')[-2000:]}")
    return seconds, usage.ru_maxrss / 1024**2  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=6000)
    parser.add_argument("--height", type=int, default=4000)
    parser.add_argument("--mode", choices=("L", "RGB", "I;16"), default="L", help="8-bit gray (default), RGB or 16-bit gray")
    parser.add_argument("--model", default="default")
    args = parser.parse_args()

    koala = [sys.executable, "-m", "koala.cli"]
    with tempfile.TemporaryDirectory(prefix="koala-bench-memory-") as tmp:
        photos = Path(tmp) / "photos"
        photos.mkdir()
        write_photo(photos / "scan.png", args.width, args.height, args.mode)
        runs = {
            "koala colorize": (koala + ["colorize", str(photos), "-o", f"{tmp}/single", "--model", args.model],
                               Path(tmp) / "single" / "scan.png"),
            "koala batch colorize": (koala + ["batch", "colorize", str(photos), "-o", f"{tmp}/batch",
                                              "--model", args.model, "--runner=DirectRunner",
                                              "--direct_num_workers=1"],
                                     Path(tmp) / "batch" / "scan.png"),
        }
        print(f"{args.width} x {args.height} ({args.width * args.height / 1e6:.0f} MP) {args.mode} PNG, "
              f"{(photos / 'scan.png').stat().st_size:,} bytes; {os.cpu_count()} CPU cores", flush=True)
        outputs = []
        for name, (command, output) in runs.items():
            seconds, peak = measured(command)
            print(f"{name:<24}{seconds:8.1f} s {peak:8.2f} GB peak RSS", flush=True)
            outputs.append(np.asarray(Image.open(output)).astype(np.int16))
        differ = np.abs(outputs[0] - outputs[1])
        same_file = runs["koala colorize"][1].read_bytes() == runs["koala batch colorize"][1].read_bytes()
        print(f"outputs: largest difference {differ.max()} level(s), {np.count_nonzero(differ):,} values differ; "
              f"PNG files {'identical' if same_file else 'differ'}")


if __name__ == "__main__":
    main()
