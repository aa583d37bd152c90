"""``koala batch colorize``: a whole archive through :class:`~koala.inference.Colorizer`, as a Beam job.

Steps: expand the inputs (files, folders, globs; local or any filesystem Beam knows, e.g.
``gs://``) on the workers -> one output name per input (a clash is a failure, as in
``koala colorize``) -> skip outputs that exist unless ``overwrite`` -> decode at the photo's own
depth -> ``RunInference`` (the model loaded once per worker; :meth:`Colorizer.colorize_pngs`, the
bounded-memory path and PNG encoder of ``koala colorize``, so the files are the same) -> PNGs at
the input's size, written atomically, keeping a folder's layout. Films are one
element each: :func:`koala.video.colorize.colorize_video` streams them on one worker. Every input
that fails goes to ``OUT/failed.tsv`` with its reason and to the ``images_failed`` counter; the
job itself carries on.

With ``hint_files`` (a model that takes hints: its metadata says ``hints: true``, as the bundled
default's does), a photo's hints are read from ``<stem>.json`` beside it when there is one
(:mod:`koala.data.hints`'s format); a bad hints file fails that photo with the hint's reason.
Without it such files are left alone: an archive's own sidecar JSON is not taken for hints.

With ``reference`` (a model with a global-hint input), every photo is coloured like that one colour
photo (:func:`koala.data.global_hints.reference_hint`, computed once, on the machine that starts
the job, and sent to the workers as 310 numbers).

Example::

    counts = colorize(["scans/"], "coloured/", beam_args=["--runner=DirectRunner",
                      "--direct_running_mode=multi_processing", "--direct_num_workers=4"])
"""
from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystem import CompressionTypes
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
from koala.data.global_hints import GlobalHintError, NoGlobalHintInputsError, reference_hint
from koala.data.hints import HINT_COLUMNS, HintError, NoHintInputsError, hints_from_json
from koala.images import ImageError, as_pixels
from koala.inference import Colorizer
from koala.inputs import GLOB_CHARS, output_for
from koala.outputs import KEEP, WRITE, claim
from koala.runs import model_metadata, resolve_model
from koala.video import DEFAULT_CRF, DEFAULT_TEMPORAL, is_video
from koala.video.colorize import VideoError, check_options, colorize_video

FILMS = "films"  # Decode's output for films, which are colorized one element each


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
            name = output_for(metadata.path, item.folder)
            if name is not None:
                yield name, metadata.path


class ClaimOutput(beam.DoFn):
    """One source per output name, by :func:`koala.outputs.claim`, as in ``koala colorize``: the
    first in sorted order claims it, the others fail; existing outputs are skipped (counted, not
    failed) unless ``overwrite``: a re-run carries on where a job stopped."""

    def __init__(self, out_dir: str, overwrite: bool):
        self.out_dir, self.overwrite = out_dir, overwrite

    def process(self, element: tuple[str, Sequence[str]]) -> Iterator:
        name, sources = element
        sources = sorted(set(sources))
        target = FileSystems.join(self.out_dir, *name.split("/"))
        exists = FileSystems.exists(target)
        for source in sources:
            verdict = claim(source, target, None if source == sources[0] else sources[0], target in sources,
                            exists, self.overwrite)
            if verdict == KEEP:
                Metrics.counter(NAMESPACE, SKIPPED).inc()
            elif verdict == WRITE:
                yield target, source
            else:
                yield dead_letter(source, verdict)


def hints_path(source: str) -> str:
    """Where a photo's hints are: ``<stem>.json`` beside it."""
    return (os.path.splitext(source) if is_local(source) else posixpath.splitext(source))[0] + ".json"


class Decode(beam.DoFn):
    """(target, source) -> ((target, source), (pixels, hint table)): the photo decoded at its own
    depth by :func:`koala.inference.as_pixels`, as ``koala colorize`` reads it (EXIF orientation,
    8 or 16 bits, gray kept gray); the table (K, 6) is empty unless ``hints`` and a hints file is
    beside the photo. Films go on as they are to the ``films`` output."""

    def __init__(self, hints: bool = False):
        self.hints = hints

    def process(self, element: tuple[str, str]) -> Iterator:
        target, source = element
        if is_video(source):
            yield beam.pvalue.TaggedOutput(FILMS, element)
            return
        try:
            pixels = as_pixels(read_bytes(source))
        except ImageError as e:
            yield dead_letter(source, e.reason)
            return
        except (OSError, beam.io.filesystem.BeamIOError) as e:
            yield dead_letter(source, f"cannot read: {e}")
            return
        table = np.zeros((0, len(HINT_COLUMNS)), np.float32)
        path = hints_path(source)
        if self.hints and FileSystems.exists(path):
            try:
                table = hints_from_json(read_bytes(path), path, (pixels.shape[1], pixels.shape[0]))
            except HintError as e:
                yield dead_letter(source, str(e))
                return
            except (OSError, beam.io.filesystem.BeamIOError) as e:
                yield dead_letter(source, f"cannot read {path}: {e}")
                return
        yield (target, source), (pixels, table)


class ColorizerHandler(ModelHandler[tuple, bytes, Colorizer]):
    """RunInference's model handler around :class:`Colorizer` (a .keras model or run folder,
    not the SavedModel: that one takes encoded bytes one at a time). Elements are (pixels, hint
    table); each becomes its PNG through :meth:`Colorizer.colorize_pngs`, the path of
    ``koala colorize`` (photos of one size in a batch go through the graph in one call)."""

    def __init__(self, model: str, saturation: float | None = None, temperature: float | None = None,
                 batch: int = COLORIZE_BATCH, global_hint: np.ndarray | None = None):
        super().__init__(min_batch_size=1, max_batch_size=batch)
        self.model, self.saturation, self.temperature = model, saturation, temperature
        self.global_hint = global_hint

    def load_model(self) -> Colorizer:
        return Colorizer.load(self.model, saturation=self.saturation, temperature=self.temperature)

    def run_inference(self, batch: Sequence[tuple[np.ndarray, np.ndarray]], model: Colorizer,
                      inference_args: dict | None = None) -> list[PredictionResult]:
        pngs = model.colorize_pngs([pixels for pixels, _ in batch], [table for _, table in batch],
                                   [self.global_hint] * len(batch))
        # The input is left out of the result: it is not needed downstream and is the largest part.
        return [PredictionResult(None, png) for png in pngs]

    def get_num_bytes(self, batch: Sequence[tuple[np.ndarray, np.ndarray]]) -> int:
        return sum(pixels.nbytes + table.nbytes for pixels, table in batch)

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
            write_file(target, result.inference, overwrite=self.overwrite)
        except FileExistsError:
            Metrics.counter(NAMESPACE, SKIPPED).inc()
            return
        except (OSError, beam.io.filesystem.BeamIOError) as e:
            yield dead_letter(source, f"cannot write {target}: {e}")
            return
        Metrics.counter(NAMESPACE, DONE).inc()


@contextmanager
def local_file(path: str) -> Iterator[str]:
    """A local path for ``path``: itself, or a temporary copy of a file on another filesystem
    (FFmpeg seeks in the films it reads)."""
    if is_local(path):
        yield path
        return
    with tempfile.TemporaryDirectory() as folder:
        local = os.path.join(folder, posixpath.basename(path))
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as src, open(local, "wb") as dst:
            shutil.copyfileobj(src, dst)
        yield local


class ColorizeFilm(beam.DoFn):
    """(target, source) -> the colorized film, streamed by one worker (model loaded once per
    worker); films elsewhere than on local disk are colorized from and into temporary copies."""

    def __init__(self, model: str, saturation: float | None, temperature: float | None, overwrite: bool,
                 temporal: float, crf: int, reference: bool = False):
        self.model, self.saturation, self.temperature = model, saturation, temperature
        self.overwrite, self.temporal, self.crf, self.reference = overwrite, temporal, crf, reference

    def setup(self) -> None:
        self.colorizer = Colorizer.load(self.model, saturation=self.saturation, temperature=self.temperature)

    def process(self, element: tuple[str, str]) -> Iterator:
        target, source = element
        if self.reference:
            yield dead_letter(source, "a film takes no reference yet (koala batch colorize --reference is for photos)")
            return
        try:
            with local_file(source) as local_source:
                if is_local(target):
                    colorize_video(self.colorizer, local_source, target, self.temporal, self.crf, self.overwrite)
                else:
                    with tempfile.TemporaryDirectory() as folder:
                        local_target = os.path.join(folder, posixpath.basename(target))
                        colorize_video(self.colorizer, local_source, local_target, self.temporal, self.crf)
                        if not self.overwrite and FileSystems.exists(target):
                            raise FileExistsError(target)
                        with open(local_target, "rb") as src, FileSystems.create(target) as dst:
                            shutil.copyfileobj(src, dst)
        except FileExistsError:
            Metrics.counter(NAMESPACE, SKIPPED).inc()
            return
        except VideoError as e:
            yield dead_letter(source, e.reason)
            return
        except (OSError, beam.io.filesystem.BeamIOError) as e:
            yield dead_letter(source, f"cannot read or write: {e}")
            return
        Metrics.counter(NAMESPACE, DONE).inc()


def build(pipeline: beam.Pipeline, inputs: Sequence[str], out_dir: str, model: str = "default",
          saturation: float | None = None, temperature: float | None = None, overwrite: bool = False,
          batch: int = COLORIZE_BATCH, temporal: float = DEFAULT_TEMPORAL, crf: int = DEFAULT_CRF,
          hint_files: bool = False, reference: str | None = None) -> None:
    """Add the colorize steps to ``pipeline`` (see the module docstring). ``reference``: the path
    (any filesystem Beam knows) of a colour photo to colour every photo like."""
    out_dir = absolute(out_dir)
    path = resolve_model(model)  # refused here with its reason, not on every worker
    meta = model_metadata(path)
    if hint_files and not meta.get("model_args", {}).get("hints"):
        raise NoHintInputsError(meta.get("model", path.name))
    global_hint = None
    if reference is not None:
        if not meta.get("model_args", {}).get("global_hints"):
            raise NoGlobalHintInputsError(f"{meta.get('model', path.name)}, {model}")
        global_hint = reference_hint(_reference_bytes(reference), reference)
    if model not in ("default", "hints"):  # workers need its full path
        model = str(path.resolve())
    expanded = (pipeline
                | "Inputs" >> beam.Create(plan_inputs(inputs))
                | "Expand" >> beam.ParDo(ExpandInput()).with_outputs(FAILED, main="files"))
    claimed = (expanded.files
               | "ByOutputName" >> beam.GroupByKey()  # also spreads the files over the workers
               | "Claim" >> beam.ParDo(ClaimOutput(out_dir, overwrite)).with_outputs(FAILED, main="todo"))
    decoded = claimed.todo | "Decode" >> beam.ParDo(Decode(hint_files)).with_outputs(FAILED, FILMS, main="images")
    handler = KeyedModelHandler(ColorizerHandler(model, saturation, temperature, batch, global_hint))
    written = (decoded.images
               | "Colorize" >> RunInference(handler)
               | "Write" >> beam.ParDo(WritePng(overwrite)).with_outputs(FAILED))
    films = decoded[FILMS] | "ColorizeFilms" >> beam.ParDo(
        ColorizeFilm(model, saturation, temperature, overwrite, temporal, crf, reference is not None)
    ).with_outputs(FAILED)
    failures = (expanded[FAILED], claimed[FAILED], decoded[FAILED], written[FAILED], films[FAILED])
    _ = failures | "Failures" >> beam.Flatten() | WriteDeadLetters(FileSystems.join(out_dir, DEAD_LETTER_NAME))


def _reference_bytes(reference: str) -> bytes:
    """The reference photo's bytes (local or any filesystem Beam knows), or a one-line error naming it."""
    try:
        return read_bytes(absolute(reference))
    except (OSError, beam.io.filesystem.BeamIOError) as e:
        raise GlobalHintError(f"reference {reference}: cannot read ({e})") from None


def colorize(inputs: Sequence[str], out_dir: str, beam_args: Sequence[str] = (), **kwargs) -> dict[str, int]:
    """Run the job to the end; returns the counters ``images_done``, ``images_failed``,
    ``images_skipped``. ``kwargs`` are :func:`build`'s."""
    if kwargs.get("batch", COLORIZE_BATCH) < 1:
        raise ValueError(f"batch must be at least 1; got {kwargs['batch']}")
    check_options(kwargs.get("temporal", DEFAULT_TEMPORAL), kwargs.get("crf", DEFAULT_CRF))
    pipeline = beam.Pipeline(options=pipeline_options(list(beam_args)))
    build(pipeline, inputs, out_dir, **kwargs)
    return run(pipeline)
