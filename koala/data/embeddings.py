"""The HDF5 embedding cache: its format, its checks, reading and writing.

``python -m data_tools.embed`` (or ``koala batch embed``) writes the cache once (as the paper did: one
embedding per image, computed offline); training reads it here and joins each photo's row to its L
through :func:`koala.data.make_dataset`'s side input (``SideInput(per_photo=cache.lookup)``).
Layout of the file:

* ``keys``: (N,) utf-8 image paths, as the manifest gave them (relative ones are relative to the
  ``base_dir`` attribute, the folder the tool ran in);
* ``embeddings``: (N, D) float32, row i belongs to ``keys[i]``;
* attributes ``extractor``, ``weights``, ``fingerprint`` (see :func:`koala.models.extractors.fingerprint`),
  ``dim``, ``created``, ``base_dir`` and ``rows``: the rows fully written (both datasets may be
  longer after a kill; readers and the resuming writer ignore what lies beyond ``rows``).

A cache is refused, with a one-line reason, when its extractor or weights differ from the config's or
when images of the training data are missing from it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone

import h5py
import numpy as np

KEYS = "keys"
EMBEDDINGS = "embeddings"
ATTRS = ("extractor", "weights", "fingerprint", "dim", "created", "base_dir", "rows")


class CacheError(ValueError):
    """A cache that cannot be used; ``str()`` is the one-line reason."""


def check_source(path: str, built: tuple[str, str, str], asked: tuple[str, str, str]) -> None:
    """The one cache check: a CacheError naming the cache at ``path`` when the network it was
    ``built`` with, (extractor, weights label, fingerprint), is not the one ``asked`` for. Weights
    are compared by fingerprint, so the same file under another name passes."""
    (extractor, weights, fp), (want_extractor, want_weights, want_fp) = built, asked
    if extractor != want_extractor:
        raise CacheError(f"{path}: built with extractor {extractor}, asked for {want_extractor}")
    if fp != want_fp:
        raise CacheError(f"{path}: built with {extractor} weights {weights} (fingerprint {fp[:12]}), "
                         f"asked for weights {want_weights} (fingerprint {want_fp[:12]})")


def resolve_key(key: str, base_dir: str) -> str:
    """A cache key or data path as a normalised absolute path, so caches work from any folder."""
    return os.path.normpath(os.path.join(base_dir, key))


@dataclass
class EmbeddingCache:
    """An embedding cache read into memory (12k images x 1000 floats is 48 MB)."""

    path: str
    extractor: str
    weights: str
    fingerprint: str
    base_dir: str
    keys: list[str]
    embeddings: np.ndarray

    @classmethod
    def open(cls, path: str | os.PathLike) -> "EmbeddingCache":
        path = str(path)
        if not os.path.isfile(path):
            raise CacheError(f"{path}: no such embedding cache (build one with python -m data_tools.embed)")
        try:
            with h5py.File(path, "r") as f:
                missing = [name for name in (KEYS, EMBEDDINGS) if name not in f]
                missing += [name for name in ATTRS if name not in f.attrs]
                if missing:
                    raise CacheError(f"{path}: not an embedding cache (no {', '.join(missing)})")
                rows = int(f.attrs["rows"])
                keys = [k.decode() if isinstance(k, bytes) else k for k in f[KEYS][:rows]]
                embeddings = np.asarray(f[EMBEDDINGS][:rows], np.float32)
                attrs = {name: f.attrs[name] for name in ATTRS}
        except OSError as e:
            raise CacheError(f"{path}: cannot read the embedding cache ({e})") from None
        return cls(path, str(attrs["extractor"]), str(attrs["weights"]), str(attrs["fingerprint"]),
                   str(attrs["base_dir"]), keys, embeddings)

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    def check(self, extractor: str, weights: str, fingerprint: str) -> None:
        """Refuse a cache written by another extractor or other weights than those asked for."""
        check_source(self.path, (self.extractor, self.weights, self.fingerprint), (extractor, weights, fingerprint))

    def lookup(self, paths: list[str], source: str) -> np.ndarray:
        """Embeddings in the order of ``paths`` (as the data source lists them, relative to the
        current folder); refuses when any is missing, naming how many and one example."""
        index = {resolve_key(key, self.base_dir): row for row, key in enumerate(self.keys)}
        cwd = os.getcwd()
        rows = [index.get(resolve_key(p, cwd)) for p in paths]
        missing = [p for p, row in zip(paths, rows) if row is None]
        if missing:
            raise CacheError(
                f"{self.path}: {len(missing)} images of {source} are missing from the cache, e.g. {missing[0]}"
            )
        return self.embeddings[np.asarray(rows, dtype=np.int64)]


# Writing: data_tools.embed and the Beam pipeline (koala.batch.embed) append rows through these,
# so both make caches with the same layout, commit protocol and fingerprint checks.
CHUNK_ROWS = 256


def rebase(key: str, from_dir: str, to_dir: str) -> str:
    """A relative key written from ``from_dir`` as the cache at ``to_dir`` stores it (unchanged
    when the folders agree or the key is absolute)."""
    if from_dir == to_dir or os.path.isabs(key):
        return key
    return os.path.relpath(resolve_key(key, from_dir), to_dir)


def open_for_append(path: str, extractor: str, weights: str, fp: str, dim: int,
                    base_dir: str | None = None) -> h5py.File:
    """Open (or create) a cache for appending; refuse one written by another extractor or weights,
    and drop rows a kill left half-written. A new cache's relative keys are relative to
    ``base_dir`` (default: the current folder; a Beam worker passes the launcher's)."""
    f = h5py.File(path, "a")
    try:
        if KEYS not in f:
            f.create_dataset(KEYS, (0,), maxshape=(None,), dtype=h5py.string_dtype("utf-8"), chunks=(CHUNK_ROWS,))
            f.create_dataset(EMBEDDINGS, (0, dim), maxshape=(None, dim), dtype="float32", chunks=(CHUNK_ROWS, dim))
            f.attrs.update(extractor=extractor, weights=weights, fingerprint=fp, dim=dim, rows=0,
                           created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                           base_dir=base_dir or os.getcwd())
        else:
            check_source(path, (str(f.attrs["extractor"]), str(f.attrs["weights"]), str(f.attrs["fingerprint"])),
                         (extractor, weights, fp))
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

