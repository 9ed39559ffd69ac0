"""A Lightning 2.x callback that keeps chosen embedding rows exact while the rest train (optional extra).

The public import path; the code lives in `reindex.torch.lightning`.

    from reindex.lightning import EmbeddingConstraint
"""
from __future__ import annotations

from .torch.lightning import EmbeddingConstraint

__all__ = ["EmbeddingConstraint"]
