"""The torch side of reindex: split modules whose fixed rows no optimizer ever sees.

The only part of `reindex` that imports torch when imported.

    from reindex.torch import SplitEmbedding, SplitLinear
"""
from __future__ import annotations

from .embedding import TRAINABLE_FORMAT, IdOutOfRangeError, SplitEmbedding
from .head import SplitLinear

__all__ = ["IdOutOfRangeError", "SplitEmbedding", "SplitLinear", "TRAINABLE_FORMAT"]
