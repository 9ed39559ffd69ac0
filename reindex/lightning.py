"""A Lightning 2.x callback that keeps chosen embedding rows exact while the rest train (optional extra).

    pip install 'reindex-vocab[lightning]'
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn

from .errors import ReindexError
from .torch import SplitEmbedding

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
    the kept rows are exact from the first step and no optimizer holds state for them; when fitting
    ends the same `nn.Embedding` object is put back, holding the merged weight.

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
        self.split: SplitEmbedding | None = None
        self._original: nn.Embedding | None = None
        self._location: tuple[nn.Module, str] | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit" or self.split is not None:
            return
        parent, name = _locate(pl_module, self.embedding)
        original = getattr(parent, name)
        if not isinstance(original, nn.Embedding):
            raise ReindexError(f"{name!r} is a {type(original).__name__}, not an nn.Embedding")
        tied = [n for n, m in pl_module.named_modules() if m is not original
                and any(p is original.weight for p in m.parameters(recurse=False))]
        if tied:
            # The swap would untie them silently: the other module would keep training the old tensor.
            raise ReindexError(f"the embedding's weight is shared with {tied[0]!r}",
                               hint="tied input/output embeddings are not supported; untie them first")
        self.split = self._split(original)
        self._original, self._location = original, (parent, name)
        setattr(parent, name, self.split)

    def _split(self, original: nn.Embedding) -> SplitEmbedding:
        if self.rows is not None:
            return SplitEmbedding.from_embedding(original, self.rows, sparse=self.sparse)
        weight, kept = original.weight.detach(), self.constraint
        if kept.shape[0] > weight.shape[0] or kept.shape[1] != weight.shape[1]:
            raise ReindexError(f"the constraint has shape {list(kept.shape)} but the embedding "
                               f"{list(weight.shape)}", hint="the new vocabulary must extend the old one")
        # Kept rows are a prefix, so original ids are sorted ids: no lookup table on the fast path.
        return SplitEmbedding(kept.to(weight.device, weight.dtype), weight[kept.shape[0]:].clone(),
                              padding_idx=original.padding_idx,
                              sparse=original.sparse if self.sparse is None else self.sparse)

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        # Checkpoints keep the user's layout (`<name>.weight`), so the model class loads them without
        # this callback; SplitEmbedding accepts that key back when fitting resumes.
        if self.split is None or self._location is None or getattr(*self._location) is not self.split:
            return
        prefix = _prefix(pl_module, self.split)
        state = checkpoint.get("state_dict", {})
        for key in ("fixed", "trainable", "original_to_sorted"):
            state.pop(prefix + key, None)
        state[prefix + "weight"] = self.split.merged_weight(order=self.split.input).clone()

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._restore()

    def _restore(self) -> None:
        if self.split is None or self._original is None or self._location is None:
            return
        with torch.no_grad():
            self._original.weight.copy_(self.split.merged_weight(order=self.split.input))
        setattr(*self._location, self._original)
        self.split = None


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
    for path, module in root.named_modules():
        for name, child in module.named_children():
            if child is embedding:
                return module, name
    raise ReindexError(f"the embedding passed to EmbeddingConstraint is not inside {type(root).__name__}",
                       hint="pass the module's own embedding (model.embed) or its attribute name")


def _prefix(root: nn.Module, module: nn.Module) -> str:
    for path, candidate in root.named_modules():
        if candidate is module:
            return path + "." if path else ""
    return ""
