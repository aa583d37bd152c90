"""Apache Beam pipelines for koala's two heavy offline jobs: colorizing a whole archive
(:mod:`koala.batch.colorize`) and computing the embedding cache (:mod:`koala.batch.embed`).

The same pipeline runs on local worker processes (``--runner=DirectRunner
--direct_running_mode=multi_processing``), Dataflow, Flink or Spark: only the pipeline options
change. Install with ``pip install koala[beam]``; see docs/batch.md.
"""

# Constants only here: the CLI reads them without importing Beam or TensorFlow.
COLORIZE_BATCH = 8  # photos a worker holds for one model call; a 24 MP scan is 24-72 MB at its own 8 bits
EMBED_BATCH = 16  # images per extractor call (also data_tools.embed's default)
DEAD_LETTER_NAME = "failed.tsv"  # inside OUT for colorize; OUT.failed.tsv beside the cache OUT for embed
SHARDS_SUFFIX = ".shards"  # embed's shard folder by default: OUT.shards beside the cache OUT (e.g. embeddings.h5.shards)
