"""What every file reindex writes calls itself: format names, versions and the run directory's members.

One home for these facts: the writers stamp them, the readers and `verify` check them, and the output
rule (`reindex.io.outputs`) recognises earlier outputs by them, without importing any writer.
"""
from __future__ import annotations

FORMAT_VERSION = 1                       # of every reindex format below

RUN_FORMAT = "reindex.run"               # RUN/manifest.json
EMBEDDING_FORMAT = "reindex.embedding"   # RUN/embedding.safetensors
DATASETS_FORMAT = "reindex.datasets"     # the marker in a `remap`/`invert` output directory
EXPORT_FORMAT = "reindex.export"         # `reindex export`
TRAINABLE_FORMAT = "reindex.trainable"   # `SplitEmbedding.save_trainable`
HF_TRAINABLE_FORMAT = "reindex.hf.trainable"   # `reindex.hf.save_trainable`
PLOT_FORMAT = "reindex.plot"             # `reindex inspect --plot`

# The run directory (the contract every command and the docs share).
EMBEDDING_FILE = "embedding.safetensors"
VOCAB_FILE = "vocab.txt"
MANIFEST_FILE = "manifest.json"
DATA_DIR = "data"
CORPUS_COUNTS_FILE = "corpus_counts.npy"
#: Written into every `remap`/`invert` output directory (a dot-name, so listing it as a dataset skips it).
DATASETS_MARKER = ".reindex-output.json"
