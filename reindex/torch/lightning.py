"""A Lightning 2.x callback that keeps chosen embedding rows exact while the rest train (optional extra).

    pip install 'reindex-vocab[lightning]'
"""
from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from ..errors import ReindexError
from .embedding import SplitEmbedding
from .swap import Swap, swap_in

try:
    from lightning.pytorch import Callback, LightningModule, Trainer
except ImportError as e:  # the extra is optional: say how to get it
    raise ImportError("reindex.lightning needs Lightning 2.x: pip install 'reindex-vocab[lightning]'") from e


class EmbeddingConstraint(Callback):
    """Keep some rows of an `nn.Embedding` exact during `trainer.fit`, training only the others.

    Called like the `EmbeddingConstraint` callback it replaces: `embedding` is the module (or its
    attribute name, e.g. "encoder.embed") inside the LightningModule, and `constraint` is the old
    embedding or a [n, D] tensor, whose rows become rows 0..n-1 (a grown vocabulary appends new
    tokens after the old ones). Or pass `rows=` to keep any set of rows at their current values.

    At `setup` (before `configure_optimizers`) the embedding is swapped for a `SplitEmbedding`, so
    the kept rows are exact from the first step and no optimizer holds state for them; an output
    layer tied to it (sharing its weight) becomes a `SplitLinear` on the same rows and stays tied.
    Checkpoints keep the model's plain layout. When fitting ends the same module objects are put
    back, holding the merged weights.

    model = Classifier(vocab_size=12_000)
    keep = EmbeddingConstraint(model.embed, old_model.embed)
    Trainer(callbacks=[keep]).fit(model, loader)
    """

    def __init__(self, embedding: nn.Embedding | str, constraint: nn.Embedding | Tensor | None = None, *,
                 rows: Tensor | Sequence[int] | None = None, sparse: bool | None = None) -> None:
        super().__init__()
        if (constraint is None) == (rows is None):
            raise ReindexError("pass exactly one of `constraint` (old embedding or tensor of rows) and `rows=`")
        if isinstance(constraint, nn.Embedding):
            constraint = constraint.weight
        if constraint is not None and (not isinstance(constraint, Tensor) or constraint.dim() != 2
                                       or not constraint.is_floating_point()):
            raise ReindexError("`constraint` must be an nn.Embedding or a 2-D float tensor [n, D]",
                               hint="to keep rows by index, pass rows=[...]")
        # A copy: the old model may keep training or be freed; the kept rows must not follow it.
        self.constraint = None if constraint is None else constraint.detach().clone()
        self.rows = rows
        self.embedding = embedding
        self.sparse = sparse
        self.swap: Swap | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit" or self.swap is not None:
            return
        parent, name = _locate(pl_module, self.embedding)
        original = getattr(parent, name)
        if not isinstance(original, nn.Embedding):
            raise ReindexError(f"{name!r} is a {type(original).__name__}, not an nn.Embedding")
        # The shared core (as reindex.hf.train_only): a head tied to this embedding becomes a
        # SplitLinear on the same rows, and checkpoints keep the plain layout (`<name>.weight`).
        self.swap = swap_in(pl_module, original, split=self._split(original))

    @property
    def split(self) -> SplitEmbedding | None:
        """The SplitEmbedding standing in for the embedding while fitting (None outside fit)."""
        return None if self.swap is None else self.swap.embedding

    def _split(self, original: nn.Embedding) -> SplitEmbedding:
        if self.rows is not None:
            return SplitEmbedding.from_embedding(original, self.rows, sparse=self.sparse)
        weight, kept = original.weight.detach(), self.constraint
        if kept is None:
            raise ReindexError("pass `constraint` or `rows=`")
        if kept.shape[0] > weight.shape[0] or kept.shape[1] != weight.shape[1]:
            raise ReindexError(f"the constraint has shape {list(kept.shape)} but the embedding "
                               f"{list(weight.shape)}", hint="the new vocabulary must extend the old one")
        # Kept rows are a prefix, so original ids are sorted ids: no lookup table on the fast path.
        return SplitEmbedding(kept.to(weight.device, weight.dtype), weight[kept.shape[0]:].clone(),
                              padding_idx=original.padding_idx,
                              sparse=original.sparse if self.sparse is None else self.sparse)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._restore()

    def _restore(self) -> None:
        if self.swap is not None:
            self.swap.restore()
            self.swap = None


def _locate(root: nn.Module, embedding: nn.Module | str) -> tuple[nn.Module, str]:
    """(parent module, attribute name) of `embedding` inside `root`."""
    if isinstance(embedding, str):
        parent_path, _, name = embedding.rpartition(".")
        try:
            parent = root.get_submodule(parent_path)
        except AttributeError as e:
            raise ReindexError(f"no submodule {parent_path!r} in {type(root).__name__}") from e
        if not hasattr(parent, name):
            raise ReindexError(f"no attribute {embedding!r} in {type(root).__name__}")
        return parent, name
    for module in root.modules():
        for name, child in module.named_children():
            if child is embedding:
                return module, name
    raise ReindexError(f"the embedding passed to EmbeddingConstraint is not inside {type(root).__name__}",
                       hint="pass the module's own embedding (model.embed) or its attribute name")
