"""What both pipelines share: files on any filesystem Beam knows, the dead-letter TSV, pipeline
options and the job's counters."""
from __future__ import annotations

import os

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

from koala.images import write_atomic

NAMESPACE = "koala"
DONE, FAILED, SKIPPED = "images_done", "images_failed", "images_skipped"
DEAD_LETTER_HEADER = "path\treason"
WORKER_LOG_LEVEL = "WARNING"  # Beam's workers log every bundle at INFO; failures reach failed.tsv anyway


def is_local(path: str) -> bool:
    return FileSystems.get_scheme(path) in (None, "file")


def absolute(path: str) -> str:
    """Local paths made absolute (workers may run elsewhere in the tree); URLs as given."""
    return os.path.abspath(path) if is_local(path) else path


def read_bytes(path: str) -> bytes:
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:  # a .gz stays a file
        return f.read()


def write_file(path: str, data: bytes, overwrite: bool) -> None:
    """Atomic on every filesystem: locally a temporary file renamed into place (koala's own
    :func:`~koala.images.write_atomic`); object stores publish an object whole when it is closed.
    Raises ``FileExistsError`` for an existing file unless ``overwrite``."""
    if is_local(path):
        write_atomic(path, data, overwrite=overwrite)
        return
    if not overwrite and FileSystems.exists(path):
        raise FileExistsError(f"{path}: exists")
    with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        f.write(data)


def pipeline_options(beam_args: list[str]) -> PipelineOptions:
    """Beam's own options, refusing what no runner knows: Beam would drop a misspelt
    ``--direct_num_worker`` with a log line and run the job with the default."""
    parser = _BeamArgumentParser(allow_abbrev=False)
    for cls in PipelineOptions.__subclasses__():
        cls._add_argparse_args(parser)
    _, unknown = parser.parse_known_args(beam_args)
    if unknown:
        raise ValueError(f"unknown pipeline option(s) {' '.join(unknown)} (see docs/batch.md; "
                         "write options as --name=value)")
    if not any(arg.startswith("--default_sdk_harness_log_level") for arg in beam_args):
        beam_args = [*beam_args, f"--default_sdk_harness_log_level={WORKER_LOG_LEVEL}"]
    return PipelineOptions(beam_args)


def dead_letter(path: str, reason: str) -> beam.pvalue.TaggedOutput:
    """A failed input for the dead-letter output, counted as it is made."""
    Metrics.counter(NAMESPACE, FAILED).inc()
    return beam.pvalue.TaggedOutput(FAILED, (path, reason))


def _write_dead_letters(rows: list[tuple[str, str]], path: str) -> None:
    lines = [DEAD_LETTER_HEADER] + [f"{p}\t{' '.join(r.split())}" for p, r in sorted(rows)]
    write_file(path, ("\n".join(lines) + "\n").encode(), overwrite=True)


class WriteDeadLetters(beam.PTransform):
    """All failures of the job, sorted, as one TSV of path and reason (header only when none
    failed, so a clean re-run does not leave the last run's list behind)."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def expand(self, failures: beam.PCollection) -> beam.PCollection:
        return (failures
                | "AllFailures" >> beam.combiners.ToList()
                | "WriteTsv" >> beam.Map(_write_dead_letters, self.path))


def run(pipeline: beam.Pipeline) -> dict[str, int]:
    """Run to the end and return the job's counters (done, failed, skipped)."""
    result = pipeline.run()
    result.wait_until_finish()
    counts = {name: 0 for name in (DONE, FAILED, SKIPPED)}
    for counter in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        if counter.key.metric.name in counts:
            value = counter.committed if counter.committed is not None else counter.attempted
            counts[counter.key.metric.name] += int(value or 0)
    return counts
