"""reindex: renumber a vocabulary so pretrained ("fixed") rows come first and trainable rows last.

The public API. Names load on first use, so `import reindex` (and `reindex --help`) stays light.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "ReindexError": "errors", "UsageError": "errors",
    "build_permutation": "mapping", "invert_permutation": "mapping", "remap": "mapping",
    "Run": "run", "load_run": "run",
    "Vocab": "vocab", "read_vocab": "vocab",
    "Vectors": "vectors", "read_vectors": "vectors",
    "build": "build", "BuildResult": "build",
    "remap_files": "transform", "invert_files": "transform",
    "export": "export", "verify_run": "verify",
    "SplitEmbedding": "torch",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:
    from .build import BuildResult, build
    from .errors import ReindexError, UsageError
    from .mapping import build_permutation, invert_permutation, remap
    from .run import Run, load_run
    from .vectors import Vectors, read_vectors
    from .vocab import Vocab, read_vocab
    from .export import export
    from .torch import SplitEmbedding
    from .transform import invert_files, remap_files
    from .verify import verify_run


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'reindex' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value
