"""``koala batch colorize``: a whole archive through :class:`~koala.inference.Colorizer`, as a Beam job.

Steps: expand the inputs (files, folders, globs; local or any filesystem Beam knows, e.g.
``gs://``) on the workers -> one output name per input (a clash is a failure, as in
``koala colorize``) -> skip outputs that exist unless ``overwrite`` -> decode with koala's rules
-> ``RunInference`` (the model loaded once per worker, photos of one size colorized in one
call) -> PNGs at the input's size, written atomically, keeping a folder's layout. Every input
that fails goes to ``OUT/failed.tsv`` with its reason and to the ``images_failed`` counter; the
job itself carries on.

Example::

    counts = colorize(["scans/"], "coloured/", beam_args=["--runner=DirectRunner",
                      "--direct_running_mode=multi_processing", "--direct_num_workers=4"])
"""
from __future__ import annotations

import os
import posixpath
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
import tensorflow as tf
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, PredictionResult, RunInference

from koala.batch import COLORIZE_BATCH, DEAD_LETTER_NAME
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
    read_bytes,
    run,
    write_file,
)
from koala.images import IMAGE_EXTENSIONS, ImageError, load_rgb, to_uint8
from koala.inference import Colorizer
from koala.runs import resolve_model

GLOB_CHARS = "*?["


@dataclass(frozen=True)
class Input:
    """One INPUT as given: ``pattern`` is matched on the workers; ``folder`` is set when the input
    named a folder, whose layout the outputs keep (other matches are named by their stem)."""

    given: str
    pattern: str
    folder: str | None = None


def plan_inputs(inputs: Sequence[str]) -> list[Input]:
    """Files, folders and globs as patterns. A URL that is no object is taken as a folder."""
    planned = []
    for item in inputs:
        path = absolute(item)
        if any(c in item for c in GLOB_CHARS):
            planned.append(Input(item, path))
        elif os.path.isdir(path) if is_local(path) else not FileSystems.exists(path):
            folder = path.rstrip("/")
            planned.append(Input(item, FileSystems.join(folder, "**"), folder))
        else:
            planned.append(Input(item, path))
    return planned


def output_name(path: str, folder: str | None) -> str | None:
    """The output's path relative to OUT (``/``-separated), or None for a non-image in a folder."""
    if folder is None:
        return posixpath.splitext(posixpath.basename(path.replace(os.sep, "/")))[0] + ".png"
    relative = path[len(folder):].lstrip("/" + os.sep).replace(os.sep, "/")
    stem, ext = posixpath.splitext(relative)
    return stem + ".png" if ext.lower() in IMAGE_EXTENSIONS else None


class ExpandInput(beam.DoFn):
    """Input -> (output name, source path) for every file it matches."""

    def process(self, item: Input) -> Iterator:
        try:
            matches = FileSystems.match([item.pattern])[0].metadata_list
        except Exception as e:  # BeamIOError wraps the filesystem's own errors
            yield dead_letter(item.given, f"cannot list: {e}")
            return
        if not matches:
            yield dead_letter(item.given, "no such file, folder or matching glob")
        for metadata in matches:
            name = output_name(metadata.path, item.folder)
            if name is not None:
                yield name, metadata.path


class ClaimOutput(beam.DoFn):
    """One source per output name; the others fail, as in ``koala colorize``. Existing outputs are
    skipped (counted, not failed) unless ``overwrite``: a re-run carries on where a job stopped."""

    def __init__(self, out_dir: str, overwrite: bool):
        self.out_dir, self.overwrite = out_dir, overwrite

    def process(self, element: tuple[str, Sequence[str]]) -> Iterator:
        name, sources = element
        first, *others = sorted(set(sources))
        for source in others:
            yield dead_letter(source, f"same output name as {first}; skipped")
        target = FileSystems.join(self.out_dir, *name.split("/"))
        if target == first:
            yield dead_letter(first, "the output would replace this input; choose another -o")
            return
        if not self.overwrite and FileSystems.exists(target):
            Metrics.counter(NAMESPACE, SKIPPED).inc()
            return
        yield target, first


class Decode(beam.DoFn):
    """(target, source) -> ((target, source), float RGB) with koala's image rules."""

    def process(self, element: tuple[str, str]) -> Iterator:
        target, source = element
        try:
            yield (target, source), load_rgb(read_bytes(source))
        except ImageError as e:
            yield dead_letter(source, e.reason)
        except (OSError, beam.io.filesystem.BeamIOError) as e:
            yield dead_letter(source, f"cannot read: {e}")


class ColorizerHandler(ModelHandler[np.ndarray, np.ndarray, Colorizer]):
    """RunInference's model handler around :class:`Colorizer` (a .keras model or run folder,
    not the SavedModel: that one takes encoded bytes one at a time). Photos in a batch that
    share a size go through the traced graph in one call."""

    def __init__(self, model: str, saturation: float | None = None, temperature: float | None = None,
                 batch: int = COLORIZE_BATCH):
        super().__init__(min_batch_size=1, max_batch_size=batch)
        self.model, self.saturation, self.temperature = model, saturation, temperature

    def load_model(self) -> Colorizer:
        return Colorizer.load(self.model, saturation=self.saturation, temperature=self.temperature)

    def run_inference(self, batch: Sequence[np.ndarray], model: Colorizer,
                      inference_args: dict | None = None) -> list[PredictionResult]:
        by_shape: dict[tuple, list[int]] = defaultdict(list)
        for i, rgb in enumerate(batch):
            by_shape[rgb.shape].append(i)
        outputs: list[np.ndarray | None] = [None] * len(batch)
        saturation = tf.constant(model.saturation, tf.float32)
        for rows in by_shape.values():
            rgb = model.graph()(tf.convert_to_tensor(np.stack([batch[i] for i in rows]), tf.float32), saturation)
            for i, image in zip(rows, to_uint8(rgb.numpy())):
                outputs[i] = image
        # The input is left out of the result: it is not needed downstream and is the largest part.
        return [PredictionResult(None, image) for image in outputs]

    def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
        return sum(rgb.nbytes for rgb in batch)

    def get_metrics_namespace(self) -> str:
        return "koala_colorize"


class WritePng(beam.DoFn):
    """((target, source), result) -> the PNG, written atomically; a file that appeared meanwhile
    is kept and counted as skipped."""

    def __init__(self, overwrite: bool):
        self.overwrite = overwrite

    def process(self, element: tuple[tuple[str, str], PredictionResult]) -> Iterator:
        (target, source), result = element
        try:
            # TensorFlow's encoder, as `koala colorize` and the SavedModel use: the same pixels give the same file
            write_file(target, tf.io.encode_png(result.inference).numpy(), overwrite=self.overwrite)
        except FileExistsError:
            Metrics.counter(NAMESPACE, SKIPPED).inc()
            return
        except (OSError, beam.io.filesystem.BeamIOError) as e:
            yield dead_letter(source, f"cannot write {target}: {e}")
            return
        Metrics.counter(NAMESPACE, DONE).inc()


def build(pipeline: beam.Pipeline, inputs: Sequence[str], out_dir: str, model: str = "default",
          saturation: float | None = None, temperature: float | None = None, overwrite: bool = False,
          batch: int = COLORIZE_BATCH) -> None:
    """Add the colorize steps to ``pipeline`` (see the module docstring)."""
    out_dir = absolute(out_dir)
    if model != "default":  # refused here with its reason, not on every worker; workers need its full path
        model = str(resolve_model(model).resolve())
    expanded = (pipeline
                | "Inputs" >> beam.Create(plan_inputs(inputs))
                | "Expand" >> beam.ParDo(ExpandInput()).with_outputs(FAILED, main="files"))
    claimed = (expanded.files
               | "ByOutputName" >> beam.GroupByKey()  # also spreads the files over the workers
               | "Claim" >> beam.ParDo(ClaimOutput(out_dir, overwrite)).with_outputs(FAILED, main="todo"))
    decoded = claimed.todo | "Decode" >> beam.ParDo(Decode()).with_outputs(FAILED, main="images")
    handler = KeyedModelHandler(ColorizerHandler(model, saturation, temperature, batch))
    written = (decoded.images
               | "Colorize" >> RunInference(handler)
               | "Write" >> beam.ParDo(WritePng(overwrite)).with_outputs(FAILED))
    failures = (expanded[FAILED], claimed[FAILED], decoded[FAILED], written[FAILED])
    _ = failures | "Failures" >> beam.Flatten() | WriteDeadLetters(FileSystems.join(out_dir, DEAD_LETTER_NAME))


def colorize(inputs: Sequence[str], out_dir: str, beam_args: Sequence[str] = (), **kwargs) -> dict[str, int]:
    """Run the job to the end; returns the counters ``images_done``, ``images_failed``,
    ``images_skipped``. ``kwargs`` are :func:`build`'s."""
    if kwargs.get("batch", COLORIZE_BATCH) < 1:
        raise ValueError(f"batch must be at least 1; got {kwargs['batch']}")
    pipeline = beam.Pipeline(options=pipeline_options(list(beam_args)))
    build(pipeline, inputs, out_dir, **kwargs)
    return run(pipeline)
