"""The torch side of reindex: split modules whose fixed rows no optimizer ever sees.

The only part of `reindex` that imports torch when imported.

    from reindex.torch import SplitEmbedding
"""
from __future__ import annotations

from .embedding import TRAINABLE_FORMAT, IdOutOfRangeError, SplitEmbedding

__all__ = ["IdOutOfRangeError", "SplitEmbedding", "TRAINABLE_FORMAT"]
