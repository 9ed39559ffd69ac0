"""What `--vectors` names, decided once: an old run, a Hugging Face checkpoint, a reindex export, a
fastText `.bin`, or a vector file. Every later step (matching, `--init`, hashing, the inputs registry)
asks the `VectorSource` instead of looking at the path again.

    classify("data/vectors.txt").kind   # 'file'
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..checkpoint.files import is_hf_model, source_file
from ..errors import ReindexError, UsageError
from ..formats import EMBEDDING_FILE, MANIFEST_FILE
from ..io.inputfile import check_regular
from ._format import is_fasttext_head

KINDS = ("run", "hf-model", "export", "fasttext", "file")


@dataclass(frozen=True)
class VectorSource:
    """`kind` (one of KINDS) of the path the user gave (`path`)."""

    kind: str
    path: Path

    @property
    def recorded_file(self) -> Path:
        """The file the manifest hashes for it: a run's manifest, a checkpoint's index or safetensors file."""
        if self.kind == "run":
            return self.path / MANIFEST_FILE
        if self.kind == "hf-model":
            return source_file(self.path)
        return self.path


def is_run_directory(path: Path) -> bool:
    """A folder holding a run's embedding or manifest: a run missing the other is still refused as a run."""
    return path.is_dir() and ((path / EMBEDDING_FILE).exists() or (path / MANIFEST_FILE).exists())


def _is_fasttext(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return is_fasttext_head(f.read(76))
    except OSError:
        return False


def classify(vectors: str | os.PathLike, *, key: str | None = None) -> VectorSource:
    """The kind of `vectors`, refusing a path that is missing or not a file or folder (a FIFO would hang)."""
    path = Path(vectors)
    if not path.exists():
        raise ReindexError("no such file or directory", path=path, hint="check the --vectors path")
    check_regular(path, what="a vector", allow_dir=True)
    if is_run_directory(path):
        if key is not None:
            raise UsageError("--vectors-key goes with a Hugging Face model, not a run directory", path=path)
        return VectorSource("run", path)
    if key is not None or path.is_dir() or is_hf_model(path):
        return VectorSource("hf-model", path)
    if path.suffix == ".safetensors":
        return VectorSource("export", path)
    return VectorSource("fasttext" if _is_fasttext(path) else "file", path)
