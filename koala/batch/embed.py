"""``koala batch embed``: the Deep Koalarization embedding cache computed by a Beam job.

The launcher lists the manifest, leaves out images the cache already holds, and hands the rest to
the workers. Each worker loads the extractor once, embeds batches through ``RunInference`` and
writes one HDF5 shard per bundle (the layout and commit protocol of
:mod:`koala.data.embeddings`, stamped with the fingerprint of the network that worker loaded).
When the job ends the launcher merges the shards into the cache OUT with the same fingerprint checks
as ``python -m data_tools.embed merge``, and deletes them. A killed job's finished shards are
merged by the next run before it starts, so no finished work is redone.

Keys are the manifest's paths as given, relative ones relative to the launcher's folder; the
workers must see the same files (one machine, or a filesystem mounted everywhere).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, PredictionResult, RunInference

from koala.batch import DEAD_LETTER_NAME, EMBED_BATCH, SHARDS_SUFFIX
from koala.batch.common import (
    DONE,
    FAILED,
    NAMESPACE,
    SKIPPED,
    WriteDeadLetters,
    absolute,
    dead_letter,
    is_local,
    pipeline_options,
    run,
)
from koala.data.embeddings import EmbeddingCache, append_rows, merge, open_for_append, resolve_key
from koala.images import ImageError, list_images, load_rgb
from koala.models.extractors import (
    Extractor,
    ExtractorSpec,
    build_extractor,
    fingerprint,
    get_extractor_spec,
    parse_weights,
    weights_label,
)

SHARD_PREFIX = "shard-"
TODO_NAME = "todo.jsonl"


class DecodeForEmbedding(beam.DoFn):
    """(key, absolute path) -> (key, float RGB), koala's image rules; bad files to dead letters."""

    def process(self, element: tuple[str, str]) -> Iterator:
        key, path = element
        try:
            yield key, load_rgb(path)
        except ImageError as e:
            yield dead_letter(key, e.reason)


@dataclass
class LoadedExtractor:
    """A worker's extractor and the fingerprint of its weights (a class, not a tuple: Beam
    shares the loaded model through a weak reference)."""

    extractor: Extractor
    fingerprint: str


class ExtractorHandler(ModelHandler[np.ndarray, np.ndarray, LoadedExtractor]):
    """RunInference's model handler around a frozen extractor. The spec travels with the handler,
    so workers build the network the launcher named; each result carries the fingerprint of the
    weights that made it (as its ``model_id``), which the shards record and the merge checks."""

    def __init__(self, name: str, weights: str | None, spec: ExtractorSpec, batch: int = EMBED_BATCH):
        super().__init__(min_batch_size=1, max_batch_size=batch)
        self.name, self.weights, self.spec = name, weights, spec

    def load_model(self) -> LoadedExtractor:
        extractor = build_extractor(self.name, self.weights, spec=self.spec)
        return LoadedExtractor(extractor, fingerprint(extractor.model))

    def run_inference(self, batch: Sequence[np.ndarray], model: LoadedExtractor,
                      inference_args: dict | None = None) -> list[PredictionResult]:
        extractor = model.extractor
        embeddings = extractor.embed_prepared(np.stack([extractor.prepare_rgb(rgb) for rgb in batch])).numpy()
        return [PredictionResult(None, row, model.fingerprint) for row in embeddings]

    def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
        return sum(rgb.nbytes for rgb in batch)

    def get_metrics_namespace(self) -> str:
        return "koala_embed"


class WriteShard(beam.DoFn):
    """A bundle's rows -> one shard cache in ``shards_dir``, published whole (written locally,
    then renamed or uploaded), so the merge never sees half a shard."""

    def __init__(self, shards_dir: str, extractor: str, weights: str, base_dir: str):
        self.shards_dir, self.extractor, self.weights, self.base_dir = shards_dir, extractor, weights, base_dir

    def start_bundle(self) -> None:
        self.rows: list[tuple[str, np.ndarray, str]] = []

    def process(self, element: tuple[str, PredictionResult]) -> None:
        key, result = element
        self.rows.append((key, result.inference, result.model_id))

    def finish_bundle(self) -> None:
        if not self.rows:
            return
        fingerprints = {fp for _, _, fp in self.rows}
        if len(fingerprints) != 1:
            raise RuntimeError(f"one bundle embedded by {len(fingerprints)} different networks")
        keys = [key for key, _, _ in self.rows]
        embeddings = np.stack([row for _, row, _ in self.rows]).astype(np.float32)
        name = f"{SHARD_PREFIX}{uuid.uuid4().hex}.h5"
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, name)
            with open_for_append(local, self.extractor, self.weights, fingerprints.pop(), embeddings.shape[1],
                                 base_dir=self.base_dir) as f:
                append_rows(f, keys, embeddings)
            _publish(local, FileSystems.join(self.shards_dir, name))
        Metrics.counter(NAMESPACE, DONE).inc(len(keys))
        self.rows = []


def _publish(local: str, target: str) -> None:
    if is_local(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        partial = target + ".partial"
        shutil.copyfile(local, partial)
        os.replace(partial, target)
    else:
        with open(local, "rb") as src, FileSystems.create(target) as dst:
            shutil.copyfileobj(src, dst)


def merge_shards(out: str, shards_dir: str) -> int:
    """Merge every finished shard in ``shards_dir`` into ``out`` and delete them; returns rows added."""
    shards = sorted(m.path for m in FileSystems.match([FileSystems.join(shards_dir, SHARD_PREFIX + "*.h5")])[0]
                    .metadata_list)
    if not shards:
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        local = shards if is_local(shards_dir) else [_download(s, tmp) for s in shards]
        added = merge(out, local)
    FileSystems.delete(shards)
    return added


def _download(path: str, folder: str) -> str:
    local = os.path.join(folder, os.path.basename(path))
    with FileSystems.open(path) as src, open(local, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return local


def _write_todo(todo: list[tuple[str, str]], path: str) -> None:
    """The (key, path) pairs to embed, one JSON array a line: read by the job as a text source, so
    a million paths do not ride inside the pipeline's description (Dataflow caps it at 10 MB)."""
    if is_local(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    with FileSystems.create(path) as f:
        f.write("".join(json.dumps(pair) + "\n" for pair in todo).encode())


def embed(manifest: str, out: str, extractor_name: str, weights: str | None, batch: int = EMBED_BATCH,
          shards_dir: str | None = None, beam_args: Sequence[str] = ()) -> dict[str, int]:
    """Embed the manifest's images that ``out`` lacks; returns the job's counters. Failures are
    listed in ``OUT.failed.tsv``."""
    if batch < 1:
        raise ValueError(f"batch must be at least 1; got {batch}")
    spec = get_extractor_spec(extractor_name)
    label = weights_label(parse_weights(weights))
    options = pipeline_options(list(beam_args))
    shards_dir = absolute(shards_dir or out + SHARDS_SUFFIX)
    recovered = merge_shards(out, shards_dir)
    if recovered:
        print(f"merged {recovered} rows of an earlier run's shards into {out}", file=sys.stderr)
    cwd, done = os.getcwd(), set()
    if os.path.exists(out):
        cache = EmbeddingCache.open(out)
        if (cache.extractor, cache.weights) != (extractor_name, label):
            raise ValueError(f"{out}: built with {cache.extractor} weights {cache.weights}, "
                             f"asked for {extractor_name} weights {label}")
        done = {resolve_key(key, cache.base_dir) for key in cache.keys}
    paths = list_images(manifest)
    todo = [(p, resolve_key(p, cwd)) for p in paths if resolve_key(p, cwd) not in done]
    print(f"{len(paths) - len(todo)} of {len(paths)} images already in {out}; embedding {len(todo)} "
          f"with {extractor_name} (weights {label})", file=sys.stderr)
    todo_file = FileSystems.join(shards_dir, TODO_NAME)
    _write_todo(todo, todo_file)
    pipeline = beam.Pipeline(options=options)
    decoded = (pipeline
               | "Images" >> beam.io.ReadFromText(todo_file)
               | "Parse" >> beam.Map(json.loads)
               | "Spread" >> beam.Reshuffle()
               | "Decode" >> beam.ParDo(DecodeForEmbedding()).with_outputs(FAILED, main="images"))
    weights = parse_weights(weights)
    weights = absolute(weights) if weights not in (None, "imagenet") else weights  # a file: workers need its full path
    handler = KeyedModelHandler(ExtractorHandler(extractor_name, weights, spec, batch))
    _ = (decoded.images
         | "Embed" >> RunInference(handler)
         | "WriteShards" >> beam.ParDo(WriteShard(shards_dir, extractor_name, label, cwd)))
    _ = decoded[FAILED] | WriteDeadLetters(absolute(f"{out}.{DEAD_LETTER_NAME}"))
    counts = {**run(pipeline), SKIPPED: len(paths) - len(todo)}
    FileSystems.delete([todo_file])
    merge_shards(out, shards_dir)
    if is_local(shards_dir) and os.path.isdir(shards_dir) and not os.listdir(shards_dir):
        os.rmdir(shards_dir)
    return counts
