"""Compute every image's global embedding once, into the HDF5 cache koalarization trains from.

Usage::

    python -m data_tools.embed MANIFEST OUT.h5 --extractor inception_resnet_v2
        [--weights imagenet|none|PATH] [--batch 16] [--shard i/n]
    python -m data_tools.embed merge OUT.h5 SHARD.h5 [SHARD.h5 ...]

MANIFEST is what ``data.train`` / ``data.val`` accept: a folder, a split file (.txt) or one image.
Each image is read as koala reads photos, turned into its L channel and embedded by the frozen
extractor (see :mod:`koala.models.extractors`); the layout of OUT.h5 is described in
:mod:`koala.data.embeddings`.

Resumable: OUT.h5 is opened in append mode, images whose key is already there are skipped, and
rows are committed batch by batch, so after a kill the same command carries on. ``--shard i/n``
takes every n-th image starting at i, so n machines or processes can split the work; ``merge``
joins their files (all must come from the same extractor and weights) into OUT.h5, skipping keys
it already holds. Unreadable images are reported and left out; the command then exits with 1.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timezone

import h5py
import numpy as np
from tqdm import tqdm

from koala.color import rgb_to_l
from koala.data.embeddings import EMBEDDINGS, KEYS, CacheError, EmbeddingCache, resolve_key
from koala.images import ImageError, list_images, load_rgb
from koala.models.extractors import EXTRACTORS, Extractor, build_extractor, fingerprint, weights_label

CHUNK_ROWS = 256


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n) with 0 <= i < n."""
    index, _, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        raise ValueError(f"--shard {text!r}: expected i/n, e.g. 0/4") from None
    if not 0 <= i < n:
        raise ValueError(f"--shard {text!r}: need 0 <= i < n")
    return i, n


def rebase(key: str, from_dir: str, to_dir: str) -> str:
    """A relative key written from ``from_dir`` as the cache at ``to_dir`` stores it (unchanged
    when the folders agree or the key is absolute)."""
    if from_dir == to_dir or os.path.isabs(key):
        return key
    return os.path.relpath(resolve_key(key, from_dir), to_dir)


def open_for_append(path: str, extractor: str, weights: str, fp: str, dim: int) -> h5py.File:
    """Open (or create) a cache for appending; refuse one written by another extractor or weights,
    and drop rows a kill left half-written."""
    f = h5py.File(path, "a")
    try:
        if KEYS not in f:
            f.create_dataset(KEYS, (0,), maxshape=(None,), dtype=h5py.string_dtype("utf-8"), chunks=(CHUNK_ROWS,))
            f.create_dataset(EMBEDDINGS, (0, dim), maxshape=(None, dim), dtype="float32", chunks=(CHUNK_ROWS, dim))
            f.attrs.update(extractor=extractor, weights=weights, fingerprint=fp, dim=dim, rows=0,
                           created=datetime.now(timezone.utc).isoformat(timespec="seconds"), base_dir=os.getcwd())
        elif f.attrs["extractor"] != extractor:
            raise CacheError(f"{path}: built with extractor {f.attrs['extractor']}, asked for {extractor}")
        elif f.attrs["fingerprint"] != fp:
            raise CacheError(f"{path}: built with {extractor} weights {f.attrs['weights']} (fingerprint "
                             f"{f.attrs['fingerprint'][:12]}), asked for {weights} (fingerprint {fp[:12]})")
        rows = int(f.attrs["rows"])
        f[KEYS].resize((rows,))
        f[EMBEDDINGS].resize((rows, dim))
    except BaseException:
        f.close()
        raise
    return f


def stored_keys(f: h5py.File) -> set[str]:
    """The resolved absolute paths of the rows already committed."""
    base = f.attrs["base_dir"]
    return {resolve_key(k.decode() if isinstance(k, bytes) else k, base) for k in f[KEYS][:]}


def append_rows(f: h5py.File, keys: list[str], embeddings: np.ndarray) -> None:
    """Write rows, then commit them by moving ``rows`` and flushing: a kill before the commit
    leaves them to be overwritten on the next run."""
    rows, count = int(f.attrs["rows"]), len(keys)
    f[EMBEDDINGS].resize((rows + count, f[EMBEDDINGS].shape[1]))
    f[EMBEDDINGS][rows:] = embeddings
    f[KEYS].resize((rows + count,))
    f[KEYS][rows:] = keys
    f.attrs["rows"] = rows + count
    f.flush()


def prepared(extractor: Extractor, path: str) -> np.ndarray:
    """One photo as the extractor's preprocessed gray input (size, size, 3)."""
    l_norm = rgb_to_l(load_rgb(path)[None])
    return extractor.prepare(l_norm)[0].numpy()


def embed(manifest: str, out: str, extractor_name: str, weights: str | None, batch: int = 16,
          shard: tuple[int, int] = (0, 1)) -> list[str]:
    """Embed the manifest's images (this shard's) not yet in ``out``; returns the unreadable ones."""
    i, n = shard
    paths = list_images(manifest)[i::n]
    extractor = build_extractor(extractor_name, weights)
    label = weights_label(extractor.weights)
    with open_for_append(out, extractor.name, label, fingerprint(extractor.model), extractor.dim) as f:
        done, base, cwd = stored_keys(f), f.attrs["base_dir"], os.getcwd()
        todo = [p for p in paths if resolve_key(p, cwd) not in done]
        print(f"{len(paths) - len(todo)} of {len(paths)} images already in {out}; embedding {len(todo)} "
              f"with {extractor.name} (weights {label})", file=sys.stderr)
        failed, start = [], time.time()
        with tqdm(total=len(todo), unit="image", file=sys.stderr) as bar:
            for first in range(0, len(todo), batch):
                chunk, keys, inputs = todo[first:first + batch], [], []
                for path in chunk:
                    try:
                        inputs.append(prepared(extractor, path))
                        keys.append(rebase(path, cwd, base))
                    except ImageError as e:
                        failed.append(path)
                        tqdm.write(f"embed: skipping {e}", file=sys.stderr)
                if inputs:
                    append_rows(f, keys, extractor.embed_prepared(np.stack(inputs)).numpy())
                bar.update(len(chunk))
        seconds = time.time() - start
    written = len(todo) - len(failed)
    rate = f" ({written / seconds:.2f} embeddings/s)" if written and seconds > 0 else ""
    print(f"wrote {written} embeddings to {out}{rate}", file=sys.stderr)
    return failed


def merge(out: str, shards: list[str]) -> int:
    """Append the shards' rows to ``out`` (created if needed), skipping keys it already holds;
    every shard must come from the same extractor and weights. Returns the rows added."""
    caches = [EmbeddingCache.open(s) for s in shards]
    first = caches[0]
    for cache in caches[1:]:
        cache.check(first.extractor, first.weights, first.fingerprint)
    added = 0
    with open_for_append(out, first.extractor, first.weights, first.fingerprint, first.dim) as f:
        done, base = stored_keys(f), f.attrs["base_dir"]
        for cache in caches:
            keep = [row for row, key in enumerate(cache.keys) if resolve_key(key, cache.base_dir) not in done]
            done.update(resolve_key(cache.keys[row], cache.base_dir) for row in keep)
            if keep:
                append_rows(f, [rebase(cache.keys[row], cache.base_dir, base) for row in keep], cache.embeddings[keep])
            added += len(keep)
    return added


def _embed_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m data_tools.embed", description=__doc__.split("\n\n")[0])
    p.add_argument("manifest", help="folder, split file (.txt) or image")
    p.add_argument("out", help="the HDF5 cache to create or extend")
    p.add_argument("--extractor", required=True, choices=sorted(EXTRACTORS))
    p.add_argument("--weights", default="imagenet", help="imagenet (default), none (seeded random) or a weights file")
    p.add_argument("--batch", type=int, default=16, help="images per extractor call (default 16)")
    p.add_argument("--shard", default="0/1", help="i/n: every n-th image starting at i (default 0/1: all)")
    return p


def _merge_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m data_tools.embed merge", description="join shard caches")
    p.add_argument("out", help="the merged cache (created or extended)")
    p.add_argument("shards", nargs="+", help="caches written with --shard")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["merge"]:
            args = _merge_parser().parse_args(argv[1:])
            added = merge(args.out, args.shards)
            print(f"merged {added} rows into {args.out}", file=sys.stderr)
            return 0
        args = _embed_parser().parse_args(argv)
        if args.batch < 1:
            raise ValueError(f"--batch {args.batch}: must be at least 1")
        failed = embed(args.manifest, args.out, args.extractor, args.weights, args.batch, parse_shard(args.shard))
    except (ValueError, FileNotFoundError) as e:
        print(f"embed: {e}", file=sys.stderr)
        return 2
    if failed:
        print(f"embed: {len(failed)} unreadable image(s) left out, e.g. {failed[0]}; "
              "remove them from the manifest", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
