"""The run directory: embedding.safetensors + vocab.txt + manifest.json (+ data/), written atomically.

`layout` reads a run back (`Run`, `load_run`), `write` writes its members into a temporary directory that
`reindex.io.atomic` publishes, and `hashing` records inputs and outputs as the manifest lists them.
"""
from ..formats import (
                       CORPUS_COUNTS_FILE,
                       DATA_DIR,
                       EMBEDDING_FILE,
                       EMBEDDING_FORMAT,
                       FORMAT_VERSION,
                       MANIFEST_FILE,
                       RUN_FORMAT,
                       VOCAB_FILE,
)
from .hashing import FileHashes, describe_file, folder_files, sha256_file, size_of
from .layout import Run, load_run, read_embedding, read_sorted_vocab
from .write import describe_inputs, describe_report, input_files, write_embedding, write_run, write_vocab

__all__ = ["CORPUS_COUNTS_FILE", "DATA_DIR", "EMBEDDING_FILE", "EMBEDDING_FORMAT", "FORMAT_VERSION", "MANIFEST_FILE",
           "RUN_FORMAT", "VOCAB_FILE", "FileHashes", "Run", "describe_file", "describe_inputs", "describe_report",
           "folder_files", "input_files", "load_run", "read_embedding", "read_sorted_vocab", "sha256_file",
           "size_of", "write_embedding", "write_run", "write_vocab"]
