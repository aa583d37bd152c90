"""Clean a folder of photos and split it into a versioned train/val/test dataset.

Usage::

    python -m data_tools.prepare SRC_DIR OUT_DIR [--val 0.1] [--test 0.1] [--seed 0]
        [--resize N] [--workers K] [--min-size 32] [--gray-threshold 3]
        [--dup-distance 2] [--previous DIR]

Every image under SRC_DIR is opened fully and dropped when it is unreadable,
truncated, tiny, grayscale or nearly grayscale (a colorizer cannot learn colour
from those), or an exact / near duplicate of a file kept before it (duplicates
leak between splits and inflate validation scores).

Kept files are assigned to a split by hashing ``"{seed}:{relative path}"``, so a
file's split depends only on its own path. Adding files never moves or drops an
old one: the photos an earlier run assigned (the split lists in ``--previous``,
by default OUT_DIR's own from the last run) are considered first when duplicates
are resolved, so a newcomer that duplicates one of them is the one rejected,
whatever its path; the rest follow in sorted path order.

OUT_DIR receives ``train.txt``, ``val.txt`` and ``test.txt`` (one image path per
line), ``rejected.tsv`` (path, reason) and ``manifest.json`` whose ``version`` is
a content hash: the same input always gives the same version. Without
``--resize`` the lines are absolute source paths; with ``--resize N`` each kept
image is re-encoded as ``OUT_DIR/images/<relative path>.jpg`` (longest side at
most N) and the lines are relative to OUT_DIR, where the koala loader resolves
them. Nothing under SRC_DIR is ever modified.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from functools import partial
from multiprocessing import Pool
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np
from PIL import Image
from tqdm import tqdm

from koala.images import GRAY_SPREAD, IMAGE_EXTENSIONS, ImageError, colour_spread, load_pixels, write_atomic

SPLITS = ("train", "val", "test")
JPEG_QUALITY = 95

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Inspection:
    """What one worker learned about one file; ``kind`` is None when the image is usable."""

    rel: str
    sha256: str
    dhash: int = 0
    kind: str | None = None
    detail: str = ""

    @property
    def reason(self) -> str:
        return f"{self.kind}: {self.detail}"


# ---------------------------------------------------------------- scanning


def scan_images(src: Path) -> list[str]:
    """Relative POSIX paths of image files under ``src``, sorted so "first" is well defined."""
    return sorted(
        p.relative_to(src).as_posix()
        for p in src.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
    )


def overlap_error(src: Path, out: Path) -> str | None:
    """Why writing to ``out`` could touch or rescan ``src``, or None when it is safe."""
    if not src.is_dir():
        return f"source directory does not exist: {src}"
    if out == src or src in out.parents:
        return f"output directory {out} must not be inside the source directory {src}"
    images = out / "images"
    if src == images or images in src.parents:
        return f"source directory {src} must not be inside the output images folder {images}"
    return None


# ---------------------------------------------------------------- per-image checks


def dhash(pixels: np.ndarray) -> int:
    """64-bit difference hash of 8-bit pixels (:func:`koala.images.load_pixels`): robust to
    re-encoding and small resizes, cheap to compare."""
    img = Image.fromarray(pixels).convert("L")
    small = np.asarray(img.resize((9, 8), Image.Resampling.LANCZOS), dtype=np.int16)
    bits = small[:, 1:] > small[:, :-1]
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def image_problem(pixels: np.ndarray, min_size: int, gray_threshold: float) -> tuple[str, str] | None:
    """(kind, detail) when the photo (:func:`koala.images.load_pixels`) is too small or carries no
    useful colour signal (:func:`koala.images.colour_spread`), else None."""
    height, width = pixels.shape[:2]
    if min(height, width) < min_size:
        return "tiny", f"{width}x{height} px < {min_size}"
    if pixels.ndim == 2:
        return "grayscale", "one channel"
    spread = colour_spread(pixels)
    if spread == 0:
        return "grayscale", "all channels equal"
    if spread < gray_threshold:
        return "near-grayscale", f"mean channel spread {spread:.2f} < {gray_threshold:g}"
    return None


def inspect_file(rel: str, src: Path, min_size: int, gray_threshold: float) -> Inspection:
    """Hash and vet one file; never raises, so one bad file cannot kill the worker pool."""
    try:
        data = (src / rel).read_bytes()
    except OSError as exc:
        return Inspection(rel, "", kind="unreadable", detail=str(exc))
    sha = hashlib.sha256(data).hexdigest()
    try:
        pixels = load_pixels(data)  # decoded as koala reads photos for training
    except ImageError as exc:
        kind = "truncated" if exc.reason.startswith("truncated") else "unreadable"
        return Inspection(rel, sha, kind=kind, detail=exc.reason)
    problem = image_problem(pixels, min_size, gray_threshold)
    if problem:
        return Inspection(rel, sha, kind=problem[0], detail=problem[1])
    return Inspection(rel, sha, dhash(pixels))


# ---------------------------------------------------------------- duplicates


def popcount64(x: np.ndarray) -> np.ndarray:
    """Set bits per uint64 (SWAR), vectorised and independent of the numpy version."""
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


def drop_duplicates(items: Sequence[Inspection], max_distance: int) -> list[Inspection]:
    """Reject exact (sha256) and near (dHash) duplicates of an earlier kept item.

    Items are compared only against kept ones, so the first file of a group (in the given
    order) survives and a chain of small edits cannot knock out every member of the chain.
    """
    first_with_sha: dict[str, str] = {}
    kept_hashes = np.zeros(len(items), dtype=np.uint64)
    kept_rels: list[str] = []
    result = []
    for item in items:
        if item.kind is None and item.sha256 in first_with_sha:
            item = replace(item, kind="duplicate", detail=f"identical to {first_with_sha[item.sha256]}")
        elif item.kind is None and kept_rels:
            distances = popcount64(kept_hashes[: len(kept_rels)] ^ np.uint64(item.dhash))
            nearest = int(distances.argmin())
            if distances[nearest] <= max_distance:
                detail = f"dHash distance {int(distances[nearest])} to {kept_rels[nearest]}"
                item = replace(item, kind="near-duplicate", detail=detail)
        if item.kind is None:
            first_with_sha[item.sha256] = item.rel
            kept_hashes[len(kept_rels)] = item.dhash
            kept_rels.append(item.rel)
        result.append(item)
    return result


def drop_name_clashes(items: Sequence[Inspection]) -> list[Inspection]:
    """Reject a kept item whose ``--resize`` output name is taken (a.png vs a.jpg) instead of overwriting."""
    owner: dict[str, str] = {}
    result = []
    for item in items:
        name = output_name(item.rel)
        if item.kind is None and name in owner:
            item = replace(item, kind="name-clash", detail=f"{name} is already written for {owner[name]}")
        elif item.kind is None:
            owner[name] = item.rel
        result.append(item)
    return result


def assigned_before(previous: Path, src: Path, rels: Sequence[str]) -> set[str]:
    """The files among ``rels`` that the split lists in ``previous`` name (written by an earlier
    run, with or without ``--resize``); empty when there are none."""
    names = {name: rel for rel in rels for name in (str(src / rel), output_name(rel))}
    assigned = set()
    for split in SPLITS:
        path = previous / f"{split}.txt"
        if path.is_file():
            assigned.update(names[line] for line in path.read_text().splitlines() if line in names)
    return assigned


def earlier_first(items: Sequence[Inspection], assigned: set[str]) -> list[Inspection]:
    """Already assigned files first, then the others; each group in sorted path order."""
    return sorted(items, key=lambda item: (item.rel not in assigned, item.rel))


# ---------------------------------------------------------------- splitting


def split_of(rel: str, seed: int, val: float, test: float) -> str:
    """Split chosen from a hash of the path alone, so it never changes when files are added."""
    digest = hashlib.sha256(f"{seed}:{rel}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < 1.0 - val - test:
        return "train"
    return "val" if u < 1.0 - test else "test"


def output_name(rel: str) -> str:
    """Where ``--resize`` writes ``rel``: same relative layout, JPEG extension."""
    return f"images/{Path(rel).with_suffix('.jpg').as_posix()}"


def dataset_version(splits: dict[str, list[tuple[str, str]]], resize: int | None) -> str:
    """Short hash of what a consumer reads (lines, source bytes, resize), so equal input -> equal version."""
    content = {"resize": resize, "splits": splits}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:12]


# ---------------------------------------------------------------- writing


def export_image(rel: str, src: Path, out: Path, size: int) -> None:
    """Re-encode one source image as RGB JPEG with its longest side at most ``size``."""
    img = Image.fromarray(load_pixels(src / rel))
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY)
    write_atomic(out / output_name(rel), buf.getvalue(), overwrite=True)


def lines_bytes(lines: Iterable[str]) -> bytes:
    """Newline-terminated UTF-8 text, the format the koala loader reads."""
    return "".join(f"{line}\n" for line in lines).encode()


# ---------------------------------------------------------------- orchestration


def parallel_map(fn: Callable[[T], R], items: Sequence[T], workers: int, desc: str) -> Iterator[R]:
    """Ordered map with a progress bar on stderr, in a process pool when ``workers > 1``."""
    bar = partial(tqdm, total=len(items), desc=desc, unit="img", file=sys.stderr)
    if workers <= 1:
        yield from bar(map(fn, items))
        return
    chunksize = max(1, min(64, len(items) // (workers * 8)))
    with Pool(workers) as pool:
        yield from bar(pool.imap(fn, items, chunksize=chunksize))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m data_tools.prepare", description=__doc__.split("\n")[0])
    p.add_argument("src", type=Path, metavar="SRC_DIR", help="folder of source photos (read only)")
    p.add_argument("out", type=Path, metavar="OUT_DIR", help="where split lists and manifest go")
    p.add_argument("--val", type=float, default=0.1, help="validation fraction")
    p.add_argument("--test", type=float, default=0.1, help="test fraction")
    p.add_argument("--seed", type=int, default=0, help="salt for the split hash")
    p.add_argument("--resize", type=int, default=None, metavar="N",
                   help="write JPEG copies with longest side at most N under OUT_DIR/images")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes")
    p.add_argument("--min-size", type=int, default=32, help="drop images whose short side is smaller")
    p.add_argument("--gray-threshold", type=float, default=GRAY_SPREAD,
                   help=f"drop images whose mean channel spread (0..255) is below this (default {GRAY_SPREAD:g})")
    p.add_argument("--previous", type=Path, metavar="DIR",
                   help="an earlier output of this tool whose photos keep their place when duplicates are "
                        "resolved (default: OUT_DIR's own lists, if any)")
    p.add_argument("--dup-distance", type=int, default=2,
                   help="max Hamming distance of two 64-bit dHashes for a near duplicate (default 2: at 5-6 different photos on plain backgrounds collide)")
    args = p.parse_args(argv)
    if not (0 <= args.val and 0 <= args.test and args.val + args.test < 1):
        p.error("--val and --test must be >= 0 and sum to less than 1")
    if args.resize is not None and args.resize < 1:
        p.error("--resize must be a positive number of pixels")
    return args


def summary(counts: dict, version: str, out: Path, elapsed: float) -> str:
    """Human-readable end-of-run report."""
    rows = [
        f"scanned   {counts['scanned']}",
        f"kept      {counts['kept']}  (train {counts['train']}, val {counts['val']}, test {counts['test']})",
        f"rejected  {counts['scanned'] - counts['kept']}",
        *(f"  {kind:<16}{n}" for kind, n in counts["rejected_by_reason"].items()),
        f"version   {version}",
        f"output    {out}",
        f"elapsed   {elapsed:.1f} s",
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    args = parse_args(argv)
    src, out = args.src.resolve(), args.out.resolve()
    error = overlap_error(src, out)
    if error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    check = partial(inspect_file, src=src, min_size=args.min_size, gray_threshold=args.gray_threshold)
    rels = scan_images(src)
    previous = (args.previous or out).resolve()
    if args.previous and not (previous / "manifest.json").is_file():
        print(f"error: --previous {args.previous}: no manifest.json there (not an output of this tool)",
              file=sys.stderr)
        return 2
    inspected = list(parallel_map(check, rels, args.workers, "inspect"))
    items = drop_duplicates(earlier_first(inspected, assigned_before(previous, src, rels)), args.dup_distance)
    if args.resize:
        items = drop_name_clashes(items)
    items.sort(key=lambda item: item.rel)
    kept = [item for item in items if item.kind is None]
    rejected = [item for item in items if item.kind is not None]

    if args.resize:
        export = partial(export_image, src=src, out=out, size=args.resize)
        for _ in parallel_map(export, [item.rel for item in kept], args.workers, "resize"):
            pass
    splits: dict[str, list[tuple[str, str]]] = {name: [] for name in SPLITS}
    for item in kept:
        line = output_name(item.rel) if args.resize else str(src / item.rel)
        splits[split_of(item.rel, args.seed, args.val, args.test)].append((line, item.sha256))
    version = dataset_version(splits, args.resize)

    counts = {
        "scanned": len(items),
        "kept": len(kept),
        **{name: len(entries) for name, entries in splits.items()},
        "rejected_by_reason": dict(sorted(Counter(item.kind for item in rejected).items())),
    }
    manifest = {
        "version": version,
        "source": str(src),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "counts": counts,
    }
    for name, entries in splits.items():
        write_atomic(out / f"{name}.txt", lines_bytes(line for line, _ in entries), overwrite=True)
    rows = ["path\treason", *(f"{item.rel}\t{item.reason}" for item in rejected)]
    write_atomic(out / "rejected.tsv", lines_bytes(rows), overwrite=True)
    write_atomic(out / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode(), overwrite=True)

    for item in rejected:
        print(f"SKIP {item.rel}: {item.reason}")
    print(summary(counts, version, out, time.perf_counter() - started))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
