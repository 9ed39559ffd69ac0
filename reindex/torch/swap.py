"""Swap a model's embedding (and output head, tied or not) for split modules in place, and back.

The one core under `reindex.hf.train_only` and the Lightning callback: it knows module trees, not
libraries. While swapped, `state_dict()` keeps the model's plain layout (`<embedding>.weight`,
`<head>.weight`, `<head>.bias`, tied heads sharing one tensor), and `load_state_dict` takes it back.
"""
from __future__ import annotations

from typing import Any, Sequence, cast

import torch
from torch import Tensor, nn

from ..errors import ReindexError
from ._merged import state_weight
from .embedding import SplitEmbedding
from .head import SplitLinear
from .partition import can_reuse


class ScaledSplitEmbedding(SplitEmbedding):
    """A SplitEmbedding that multiplies its rows by `embed_scale`, as Gemma's or BART's scaled embeddings do."""

    embed_scale: Tensor

    def forward(self, ids: Tensor) -> Tensor:
        out = super().forward(ids)
        return out * self.embed_scale.to(out.dtype)


class Swap:
    """The split modules standing in for a model's embedding and head, and how to put the originals back.

    swap = swap_in(model, model.embed, frozen_rows=old_ids, head=model.lm_head)
    ...train...
    swap.restore()   # model.embed / model.lm_head are plain modules again, holding the merged weights
    """

    def __init__(self, root: nn.Module, embedding: nn.Module, split: SplitEmbedding,
                 head: nn.Module | None, split_head: SplitLinear | None) -> None:
        self.root, self.embedding, self.head = root, split, split_head
        self._originals: list[tuple[nn.Module, SplitEmbedding | SplitLinear, list[tuple[nn.Module, str]]]] = [
            (embedding, split, _places(root, embedding))]
        if head is not None and split_head is not None:
            self._originals.append((head, split_head, _places(root, head)))
        self._hooks: list[Any] = []
        # Each original parameter's requires_grad, given back by restore(): the split modules'
        # trainable rows always train, whatever the rest of the model does (LoRA freezes it).
        # Keyed by name, not id(): a deep copy of the model must restore just as well.
        self._requires_grad = [{name: p.requires_grad for name, p in original.named_parameters(recurse=False)}
                               for original, _, _ in self._originals]

    @property
    def tied(self) -> bool:
        return self.head is not None and self.head.tied

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The Parameters that train: the embedding's rows, an untied head's rows, a head bias's rows."""
        params = [self.embedding.trainable]
        if self.head is not None and not self.tied:
            params.append(self.head.rows.trainable)
        if self.head is not None and self.head.bias_trainable is not None:
            params.append(self.head.bias_trainable)
        return params

    def num_frozen(self) -> int:
        """How many values the frozen rows hold (buffers, so `parameters()` does not count them)."""
        count = self.embedding.fixed.numel()
        if self.head is not None and not self.tied:
            count += self.head.rows.fixed.numel()
        if self.head is not None and self.head.bias_fixed is not None:
            count += self.head.bias_fixed.numel()
        return count

    def keep(self, handle: Any) -> None:
        """Remove this hook handle when the swap is undone."""
        self._hooks.append(handle)

    def trainable_ids(self) -> Tensor:
        """The model's ids of the trainable rows, ascending."""
        split = self.embedding
        table = split.original_order
        if table is None:
            return torch.arange(split.num_fixed, split.num_embeddings)
        return torch.argsort(table)[split.num_fixed:].sort().values

    def apply(self, *, plain_state: bool) -> None:
        for original, split, places in self._originals:
            for parent, name in places:
                setattr(parent, name, split)
            # The originals leave the model; free their [V, D] storage (the Parameter objects stay,
            # so restore() gives back the very objects an outer optimizer or a tie refers to).
            for param in original.parameters(recurse=False):
                param.data = param.data.new_empty(0)
        if plain_state:
            self._hooks += [self.embedding._register_state_dict_hook(_plain_embedding_state)]
            if self.head is not None:
                self._hooks += [self.head._register_state_dict_hook(_plain_head_state),
                                self.head._register_load_state_dict_pre_hook(_load_plain_head, with_module=True)]

    def restore(self, *, in_place: bool = False) -> None:
        """Put the plain modules back, holding the merged weights (ties restored).

        `in_place=True` hands the split blocks' memory back to the plain modules when their rows are
        already in the model's order (the trainable rows are a suffix: no second [V, D] copy) and
        then leaves the split modules empty: for callers that discard them.
        """
        for handle in self._hooks:
            handle.remove()
        self._hooks = []
        restored: list[Tensor] = []
        for (original, split, places), requires_grad in zip(self._originals, self._requires_grad, strict=True):
            rows = split.rows if isinstance(split, SplitLinear) else split
            original.to(rows.fixed.device)   # its own buffers (e.g. embed_scale) follow the rows
            # A tied head's Parameter is the embedding's, already restored: one merged copy, not two.
            weight = cast(Tensor, original.weight)
            if not any(weight is done for done in restored):
                block = rows.block() if in_place and type(rows.trainable.data) is Tensor else None
                if block is not None and rows.input == "sorted" and can_reuse(block):
                    # Sorted order is the model's own (the trainable rows are a suffix): the block
                    # itself is the merged weight, no row moves and no second [V, D] copy.
                    weight.data = block
                    rows.release()
                else:
                    # A fresh merge (not the cached `weight`, which someone may hold).
                    weight.data = rows.merged_weight(order=rows.input)
                    if in_place:
                        rows.release()   # its caller discards the split modules: free their block now
                restored.append(weight)
            bias = split.merged_bias() if isinstance(split, SplitLinear) else None
            if bias is not None:
                cast(Tensor, original.bias).data = bias
            for name, param in original.named_parameters(recurse=False):
                param.requires_grad_(requires_grad[name])
            for parent, name in places:
                setattr(parent, name, original)


def swap_in(root: nn.Module, embedding: nn.Embedding, *, frozen_rows: Tensor | Sequence[int] | None = None,
            split: SplitEmbedding | None = None, head: nn.Module | None = None,
            plain_state: bool = True) -> Swap:
    """Replace `embedding` (and `head`, or whichever module shares its weight) inside `root` by split modules.

    Give `frozen_rows` (ids or a boolean mask: those rows stay exact) or a ready `split`.
    `plain_state` keeps `state_dict()` in the model's own layout while swapped (`weight`, `bias`;
    a tied head's `weight` is the embedding's very tensor).
    """
    if isinstance(embedding, SplitEmbedding):
        raise ReindexError("the embedding is already split", hint="merge the model first")
    if not isinstance(embedding, nn.Embedding):
        raise ReindexError(f"the input embedding is a {type(embedding).__name__}, not an nn.Embedding")
    tied_with = [module for module in _unique_modules(root) if module is not embedding
                 and any(p is embedding.weight for p in module.parameters(recurse=False))]
    if head is None and tied_with:
        head = tied_with[0]
    if any(module is not head for module in tied_with):
        raise ReindexError("the embedding's weight is shared with a module that is not an output layer",
                           hint="untie it, or pass that module as head=")
    if head is not None and not isinstance(head, nn.Linear):
        raise ReindexError(f"the output head is a {type(head).__name__}, not an nn.Linear")
    # Every check before _split_embedding: it rewrites the embedding's rows in place.
    num_rows = embedding.weight.shape[0] if split is None else split.num_embeddings
    if head is not None and head.weight is not embedding.weight and head.weight.shape[0] != num_rows:
        raise ReindexError(f"the head has {head.weight.shape[0]} rows, the embedding {num_rows}",
                           hint="resize both to the tokenizer's length before splitting")
    if split is None:
        split = _split_embedding(embedding, frozen_rows, in_place=_owns_memory(root, embedding.weight))
    split_head = None
    if head is not None:
        if head.weight is embedding.weight:
            split_head = SplitLinear.tied_to(split, bias=head.bias)
        else:
            # In place: the plain head leaves the model (its storage is dropped by apply below).
            split_head = SplitLinear.from_linear(head, _frozen_mask(split), in_place=_owns_memory(root, head.weight))
    swap = Swap(root, embedding, split, head, split_head)
    swap.apply(plain_state=plain_state)
    return swap


def trainable_mask(token_ids: Tensor | Sequence[int], vocab_size: int, *, hint: str | None = None) -> Tensor:
    """A boolean mask over [0, vocab_size), True at `token_ids`.

    >>> trainable_mask([1, 3], 4).tolist()
    [False, True, False, True]
    """
    ids = torch.as_tensor(token_ids)
    if ids.is_floating_point() or ids.dtype == torch.bool or ids.dim() != 1 or ids.numel() == 0:
        raise ReindexError(f"token_ids must be a non-empty list of ints, got {ids.dtype} {list(ids.shape)}")
    bad = ids[(ids < 0) | (ids >= vocab_size)]
    if bad.numel():
        raise ReindexError(f"token id {int(bad[0])} is outside the model's vocabulary [0, {vocab_size})", hint=hint)
    mask = torch.zeros(vocab_size, dtype=torch.bool)
    mask[ids.long()] = True
    return mask


def _owns_memory(root: nn.Module, weight: Tensor) -> bool:
    """Whether no other parameter or buffer of `root` shares `weight`'s memory (its rows may then move in place).

    The plain module leaves the model (Swap.apply drops its storage) and restore() gives it the
    merged rows back, so its own [V, D] memory can become the split block: no second copy.
    """
    if weight.device.type != "cpu":
        return False
    where = weight.untyped_storage().data_ptr()
    return not any(t is not weight and t.device == weight.device and t.untyped_storage().data_ptr() == where
                   for t in [*root.parameters(), *root.buffers()])


def _split_embedding(embedding: nn.Embedding, frozen_rows: Tensor | Sequence[int] | None, *,
                     in_place: bool) -> SplitEmbedding:
    if frozen_rows is None:
        raise ReindexError("pass frozen_rows= or split=")
    scale = getattr(embedding, "embed_scale", None)
    if scale is None:
        return SplitEmbedding.from_embedding(embedding, frozen_rows, in_place=in_place)
    split = ScaledSplitEmbedding.from_embedding(embedding, frozen_rows, in_place=in_place)
    scale = torch.as_tensor(scale, device=embedding.weight.device)
    split.register_buffer("embed_scale", scale.detach().clone(), persistent=False)
    return split


def _frozen_mask(split: SplitEmbedding) -> Tensor:
    """A boolean mask over the model's ids: True where `split` keeps the row fixed."""
    table = split.original_order
    if table is None:
        table = torch.arange(split.num_embeddings)
    return table < split.num_fixed


def _plain_embedding_state(module: SplitEmbedding, state: dict[str, Any], prefix: str, metadata: Any) -> None:
    for key in ("fixed", "trainable", "original_to_sorted"):
        state.pop(prefix + key, None)
    state[prefix + "weight"] = state_weight(module.rows if isinstance(module, SplitLinear) else module, state)


def _plain_head_state(module: SplitLinear, state: dict[str, Any], prefix: str, metadata: Any) -> None:
    own_rows = [k for k in state if k.startswith(prefix + "_own_rows.")]
    for key in [*own_rows, prefix + "bias_fixed", prefix + "bias_trainable"]:
        state.pop(key, None)
    state[prefix + "weight"] = state_weight(module.rows if isinstance(module, SplitLinear) else module, state)
    if module.bias_trainable is not None:
        state[prefix + "bias"] = module.merged_bias()


def _load_plain_head(module: SplitLinear, state: dict[str, Any], prefix: str, metadata: Any, strict: bool,
                     missing: list[str], *args: Any) -> None:
    weight = state.pop(prefix + "weight", None)
    if weight is not None and not module.tied:   # a tied head's rows load where the embedding lives
        state[prefix + "_own_rows.weight"] = weight
    if weight is None and module.tied:
        # As for the plain tied model: its `weight` key is missing. Loaders that drop one name of
        # a shared pair (safetensors' load_model, Accelerate's load_state) rely on seeing it missing.
        missing.append(prefix + "weight")
    bias = state.pop(prefix + "bias", None)
    if bias is not None and module.bias_trainable is not None:
        ordered = bias[module._sorted_to_original(bias.device)]
        state[prefix + "bias_fixed"] = ordered[: module.rows.num_fixed]
        state[prefix + "bias_trainable"] = ordered[module.rows.num_fixed:]


def _unique_modules(root: nn.Module) -> list[nn.Module]:
    return [module for _, module in root.named_modules()]


def _places(root: nn.Module, target: nn.Module) -> list[tuple[nn.Module, str]]:
    """Every (parent, attribute) holding `target` (a module may sit in two places, as T5's `shared`)."""
    places = [(parent, name) for _, parent in root.named_modules(remove_duplicate=False)
              for name, child in parent.named_children() if child is target]
    if not places:
        raise ReindexError(f"the {type(target).__name__} to split is not inside {type(root).__name__}",
                           hint="pass the model's own module")
    # named_modules(remove_duplicate=False) may visit a parent twice; keep each place once.
    return list({(id(parent), name): (parent, name) for parent, name in places}.values())
