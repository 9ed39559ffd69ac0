"""reindex: renumber a vocabulary so pretrained ("fixed") rows come first and trainable rows last.

The public API. Names load on first use, so `import reindex` (and `reindex --help`) stays light.

    run = reindex.build_run(vocab="vocab.txt", vectors="glove.txt", out="run", data=["train.parquet"])
    loaded = reindex.load_run("run"); loaded.to_sorted(ids); loaded.to_original(sorted_ids)
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

# public name -> (module, attribute). Public names never equal a submodule's name: importing
# `reindex.build` would otherwise replace a function `reindex.build` with the module.
_EXPORTS = {
    "ReindexError": ("errors", "ReindexError"), "UsageError": ("errors", "UsageError"),
    "build_permutation": ("mapping", "build_permutation"),
    "invert_permutation": ("mapping", "invert_permutation"), "remap": ("mapping", "remap"),
    "Run": ("run", "Run"), "load_run": ("run", "load_run"),
    "Vocab": ("vocab", "Vocab"), "read_vocab": ("vocab", "read_vocab"),
    "Vectors": ("vectors", "Vectors"), "read_vectors": ("vectors", "read_vectors"),
    "build_run": ("commands.build", "build"), "BuildResult": ("commands.build", "BuildResult"),
    "remap_files": ("commands.remap", "remap_files"), "invert_files": ("commands.remap", "invert_files"),
    "export_run": ("commands.export", "export"), "verify_run": ("commands.verify", "verify_run"),
    "SplitEmbedding": ("torch", "SplitEmbedding"), "SplitLinear": ("torch", "SplitLinear"),
}

__all__ = ["__version__", "ReindexError", "UsageError", "build_permutation", "invert_permutation", "remap",
           "Run", "load_run", "Vocab", "read_vocab", "Vectors", "read_vectors", "build_run", "BuildResult",
           "remap_files", "invert_files", "export_run", "verify_run", "SplitEmbedding", "SplitLinear"]

if TYPE_CHECKING:
    from .commands.build import BuildResult
    from .commands.build import build as build_run
    from .commands.export import export as export_run
    from .commands.remap import invert_files, remap_files
    from .commands.verify import verify_run
    from .errors import ReindexError, UsageError
    from .mapping import build_permutation, invert_permutation, remap
    from .run import Run, load_run
    from .torch import SplitEmbedding, SplitLinear
    from .vectors import Vectors, read_vectors
    from .vocab import Vocab, read_vocab


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'reindex' has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(f".{module}", __name__), attribute)
    globals()[name] = value
    return value
