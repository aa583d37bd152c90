"""Compute every image's global embedding once, into the HDF5 cache koalarization trains from.

Usage::

    python -m data_tools.embed MANIFEST OUT.h5 --extractor inception_resnet_v2
        [--weights imagenet|none|PATH] [--batch 16]
    python -m data_tools.embed merge OUT.h5 SHARD.h5 [SHARD.h5 ...]

MANIFEST is what ``data.train`` / ``data.val`` accept: a folder, a split file (.txt) or one image.
Each image is read as koala reads photos, turned into its L channel and embedded by the frozen
extractor (see :mod:`koala.models.extractors`); the layout of OUT.h5 is described in
:mod:`koala.data.embeddings`.

Resumable: OUT.h5 is opened in append mode, images whose key is already there are skipped, and
rows are committed batch by batch, so after a kill the same command carries on. This is one
process; to spread the work over many, run the same stage as a Beam pipeline
(``koala batch embed``, on local workers, Dataflow or Flink), whose shards ``merge`` joins into
OUT.h5. ``merge`` also joins any caches of the same extractor and weights, skipping keys OUT.h5
already holds. Unreadable images are reported and left out; the command then exits with 1.
Ctrl-C stops it with one line (exit 130); the rows written so far are kept.

``--weights imagenet`` (the default) downloads the classifier's weights once (into ~/.keras);
without internet that fails in one line: ``--weights none`` (seeded random weights, the same in
every process) or the path of a local weights file need no download.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from tqdm import tqdm

from koala.batch import EMBED_BATCH
from koala.cli import add_embed_arguments
from koala.data.embeddings import append_rows, merge, open_for_append, rebase, resolve_key, stored_keys
from koala.images import ImageError, list_images, load_rgb
from koala.models.extractors import EXTRACTORS, build_extractor, fingerprint, weights_label


def embed(manifest: str, out: str, extractor_name: str, weights: str | None, batch: int = EMBED_BATCH) -> list[str]:
    """Embed the manifest's images not yet in ``out``; returns the unreadable ones."""
    paths = list_images(manifest)
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
                        inputs.append(extractor.prepare_rgb(load_rgb(path)))
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


def _embed_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m data_tools.embed", description=__doc__.split("\n\n")[0])
    add_embed_arguments(p, sorted(EXTRACTORS))  # the same as koala batch embed's
    return p


def _merge_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m data_tools.embed merge", description="join shard caches")
    p.add_argument("out", help="the merged cache (created or extended)")
    p.add_argument("shards", nargs="+", help="caches to join (e.g. koala batch embed's shards)")
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
        failed = embed(args.manifest, args.out, args.extractor, args.weights, args.batch)
    except (ValueError, FileNotFoundError) as e:
        print(f"embed: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("embed: interrupted; the rows written so far are kept (run the same command to carry on)",
              file=sys.stderr)
        return 130
    if failed:
        print(f"embed: {len(failed)} unreadable image(s) left out, e.g. {failed[0]}; "
              "remove them from the manifest", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
