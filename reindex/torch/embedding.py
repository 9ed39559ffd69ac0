"""SplitEmbedding: an embedding whose fixed rows live in a buffer and whose trainable rows are the only Parameter.

Both are views of one [V, D] block, so a lookup is one gather (as fast as nn.Embedding's) while
optimizers only ever see the trainable rows.
"""
from __future__ import annotations

import os
import weakref
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ReindexError
from ._autograd import BlockLookup
from ._checks import ID_DTYPES, check_permutation, check_rows, full, inverse, normalise_padding_idx, rows_to_mask
from .partition import partition_rows

from ..formats import TRAINABLE_FORMAT  # noqa: E402


class IdOutOfRangeError(ReindexError, IndexError):
    """An id outside [0, num_embeddings): both a ReindexError and the IndexError nn.Embedding raises."""


class SplitEmbedding(nn.Module):
    r"""A lookup table over `fixed` rows (a buffer, never trained) then `trainable` rows (the Parameter).

    `forward(ids)` returns what `F.embedding(ids, torch.cat([fixed, trainable]))` would, without
    building that concatenation; gradients (dense, or sparse with `sparse=True`) reach only the
    trainable rows, so no optimizer, weight decay or momentum can move a fixed row.

    Args:
        fixed: [F, D] rows that never change (sorted ids 0..F-1). Copied.
        trainable: [T, D] rows that train (sorted ids F..F+T-1). Copied.
        padding_idx: sorted id whose row gets no gradient (as in `nn.Embedding`).
        sparse: give the trainable rows a sparse gradient (for `SparseAdam` or `SGD`).
        original_to_sorted: optional [V] permutation; when given, `forward` takes original ids.

    Shape:
        - Input: :math:`(*)`, int32 or int64 ids of any shape.
        - Output: :math:`(*, D)`, with the dtype of `fixed`.

    >>> emb = SplitEmbedding(torch.zeros(2, 3), torch.ones(1, 3))
    >>> emb(torch.tensor([[0, 2]])).tolist()
    [[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]]
    """

    fixed: Tensor
    original_to_sorted: Tensor | None

    def __init__(self, fixed: Tensor, trainable: Tensor, *, padding_idx: int | None = None,
                 sparse: bool = False, original_to_sorted: Tensor | None = None) -> None:
        super().__init__()
        check_rows(fixed, trainable)
        # Both live in one [V, D] block (fixed rows, then trainable rows) so that forward can read
        # any id with a single gather, as nn.Embedding does, while the optimizer sees only a view
        # of the trainable rows: the block is stored once, never concatenated per step.
        self._adopt(torch.cat([fixed.detach(), trainable.detach()]), fixed.shape[0], padding_idx=padding_idx,
                    sparse=sparse, original_to_sorted=original_to_sorted)

    @classmethod
    def _from_block(cls, block: Tensor, num_fixed: int, **kwargs: Any) -> SplitEmbedding:
        """A module whose rows are `block` itself (not copied): fixed rows [:num_fixed], then trainable."""
        check_rows(block[:num_fixed], block[num_fixed:])
        module = cls.__new__(cls)
        nn.Module.__init__(module)
        module._adopt(block.detach(), num_fixed, **kwargs)
        return module

    def _adopt(self, block: Tensor, num_fixed: int, *, padding_idx: int | None, sparse: bool,
               original_to_sorted: Tensor | None) -> None:
        vocab_size = block.shape[0]
        self.register_buffer("fixed", block[:num_fixed])
        self.trainable = nn.Parameter(block[num_fixed:])
        self.padding_idx = normalise_padding_idx(padding_idx, vocab_size)
        self.sparse = sparse
        if original_to_sorted is not None:
            original_to_sorted = check_permutation(original_to_sorted, vocab_size, device=block.device)
        # Persistent: the table is part of what the module computes, so checkpoints must carry it.
        self.register_buffer("original_to_sorted", original_to_sorted)
        # The same table when forward takes sorted ids: not saved (forward does not use it), but it
        # lets merged_weight(order="original") export in the user's original order.
        self.register_buffer("_export_table", None, persistent=False)

    # -- sizes ----------------------------------------------------------------------------------
    @property
    def num_fixed(self) -> int:
        return self.fixed.shape[0]

    @property
    def num_trainable(self) -> int:
        return self.trainable.shape[0]

    @property
    def num_embeddings(self) -> int:
        return self.num_fixed + self.num_trainable

    @property
    def embedding_dim(self) -> int:
        return self.fixed.shape[1]

    @property
    def input(self) -> str:
        """"original" if `forward` takes original ids (it carries the lookup table), else "sorted"."""
        return "sorted" if self.original_to_sorted is None else "original"

    # -- nn.Module habits -----------------------------------------------------------------------
    def reset_parameters(self) -> None:
        """Re-initialise the trainable rows as `nn.Embedding` does (N(0, 1), padding row zero)."""
        nn.init.normal_(self.trainable)
        with torch.no_grad():
            if self.padding_idx is not None and self.padding_idx >= self.num_fixed:
                self.trainable[self.padding_idx - self.num_fixed].fill_(0)

    def extra_repr(self) -> str:
        s = f"{self.num_fixed} fixed + {self.num_trainable} trainable, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.sparse:
            s += ", sparse=True"
        if self.original_to_sorted is not None:
            s += ", input='original'"
        return s

    def forward(self, ids: Tensor) -> Tensor:
        if ids.dtype not in ID_DTYPES:
            raise ReindexError(f"ids must be int32 or int64, got {ids.dtype}", hint="pass token ids, e.g. ids.long()")
        if ids.device.type != "cpu" or self.num_embeddings == 0:
            # A device-side assert could not be caught and explained; an emptied module (its rows
            # handed back by an in-place merge) would fail with a less clear error.
            self._check_ids(ids)
        try:
            return self._lookup(ids)
        except IndexError as e:
            # The lookups refuse bad ids themselves (on the CPU), so the happy path pays for no
            # extra pass over the ids; only now find the position and say it clearly.
            try:
                self._check_ids(ids)
            except IdOutOfRangeError as clear:
                raise clear from e
            raise

    def _lookup(self, ids: Tensor) -> Tensor:
        if self.original_to_sorted is not None:
            # index_select, not indexing: a negative id must fail, not wrap around.
            ids = self.original_to_sorted.index_select(0, ids.reshape(-1)).view(ids.shape)
        block = self._block()
        if block is None:   # the rows were moved apart (e.g. load_state_dict(assign=True))
            self._check_ids(ids)
            return self._two_lookups(ids)
        if not (torch.is_grad_enabled() and self.trainable.requires_grad):
            return F.embedding(ids, block)
        pad = None if self.padding_idx is None or self.padding_idx < self.num_fixed else self.padding_idx - self.num_fixed
        return BlockLookup.apply(ids, block, self.trainable, self.num_fixed, pad, self.sparse)

    def _block(self) -> Tensor | None:
        """The [V, D] block under `fixed` and `trainable`, or None if they no longer share one."""
        fixed, trainable, cached = self.fixed, self.trainable, self.__dict__.get("_cached_block")
        key = (fixed.data_ptr(), trainable.data_ptr(), fixed.shape, trainable.shape, fixed.dtype, trainable.dtype)
        # The cached view keeps its storage alive, so matching pointers mean the same memory.
        if cached is not None and cached[1] == key:
            return cached[0]
        self.__dict__["_cached_block"] = None
        if (fixed.dtype != trainable.dtype or fixed.device != trainable.device
                or not (fixed.is_contiguous() and trainable.is_contiguous())
                or fixed.untyped_storage().data_ptr() != trainable.untyped_storage().data_ptr()
                or trainable.storage_offset() != fixed.storage_offset() + fixed.numel()):
            return None
        block = fixed.as_strided((self.num_embeddings, self.embedding_dim), (self.embedding_dim, 1),
                                 fixed.storage_offset())
        self.__dict__["_cached_block"] = (block, key)
        return block

    def _pack(self) -> None:
        """Put `fixed` and `trainable` back into one block (the same Parameter object, new storage)."""
        if self._block() is not None:
            return
        block = torch.cat([self.fixed, self.trainable.detach().to(self.fixed.dtype)])
        self.fixed = block[: self.num_fixed]
        self.trainable.data = block[self.num_fixed:]

    def _apply(self, fn: Any, recurse: bool = True) -> SplitEmbedding:
        # .to() / .half() / .cuda() convert each tensor on its own; re-join them afterwards.
        super()._apply(fn, recurse)
        self._pack()
        return self

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_weight_ref", None)   # a weak reference cannot be pickled
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # copy.deepcopy and pickle rebuild the tensors one by one; re-join them.
        state.pop("_cached_block", None)
        state.pop("_weight_ref", None)
        super().__setstate__(state)
        self._pack()

    def _two_lookups(self, ids: Tensor) -> Tensor:
        """The same result without the block: fixed lookup, then trainable positions overwritten."""
        num_fixed, flat = self.num_fixed, ids.reshape(-1)
        if num_fixed == 0:
            return F.embedding(ids, self.trainable, self.padding_idx, sparse=self.sparse)
        out = F.embedding(flat.clamp(max=num_fixed - 1), self.fixed)
        positions = (flat >= num_fixed).nonzero().squeeze(1)
        pad = None if self.padding_idx is None or self.padding_idx < num_fixed else self.padding_idx - num_fixed
        rows = F.embedding(flat.index_select(0, positions) - num_fixed, self.trainable, pad, sparse=self.sparse)
        return out.index_copy(0, positions, rows).view(*ids.shape, self.embedding_dim)

    def _check_ids(self, ids: Tensor) -> None:
        """Raise IdOutOfRangeError naming the first id outside [0, V) and its position."""
        if ids.numel():
            low, high = torch.aminmax(ids)
            low, high = int(low), int(high)
            if low < 0 or high >= self.num_embeddings:
                flat = ids.reshape(-1)
                bad = int(((flat < 0) | (flat >= self.num_embeddings)).nonzero()[0, 0])
                where = f"index {bad}"   # named as reindex.mapping names positions
                if ids.dim() > 1:
                    where = "index [" + ", ".join(str(int(i)) for i in torch.unravel_index(torch.tensor(bad), ids.shape)) + "]"
                raise IdOutOfRangeError(
                    f"{self.input} id {int(flat[bad])} is outside the vocabulary [0, {self.num_embeddings})",
                    position=where,
                    hint="ids must come from the same run/vocabulary as this embedding")

    # -- the merged matrix and the trainable rows alone --------------------------------------------
    @property
    def weight(self) -> Tensor:
        """The merged [V, D] weight in the order `forward` takes ids (detached; built when read).

        For code that reads `.weight` (its dtype or device, a state-dict tool walking the keys).
        While someone holds it, reading again returns the same tensor, so a tied head's `weight`
        is this very tensor (savers that drop aliases see the tie).
        """
        key = (id(self.trainable), self.trainable._version, id(self.fixed), self.fixed._version)
        cached = self.__dict__.get("_weight_ref")
        weight = cached[1]() if cached is not None and cached[0] == key else None
        if weight is None:
            weight = self.merged_weight(order=self.input)
            # A weak reference: the module never keeps a second [V, D] copy alive on its own.
            self.__dict__["_weight_ref"] = (key, weakref.ref(weight))
        return weight

    def merged_weight(self, *, order: str = "sorted") -> Tensor:
        """The [V, D] matrix (detached), in "sorted" or "original" id order.

        >>> SplitEmbedding(torch.zeros(1, 2), torch.ones(1, 2)).merged_weight().tolist()
        [[0.0, 0.0], [1.0, 1.0]]
        """
        if order not in ("sorted", "original"):
            raise ReindexError(f"order must be 'sorted' or 'original', got {order!r}")
        table = self._original_order()
        if order == "original" and table is None:
            raise ReindexError("this SplitEmbedding does not know the original order",
                               hint="build it with from_run or from_embedding, or use order='sorted'")
        block = self._block() if type(self.trainable.data) is Tensor else None   # not a sharded DTensor
        if block is not None:
            # Read the block directly: one new [V, D] tensor, not a concatenation and then a gather.
            return block.detach().clone() if order == "sorted" else block.detach().index_select(0, table)
        merged = torch.cat([self.fixed, full(self.trainable).to(self.fixed.dtype)])
        return merged if order == "sorted" else merged[table]

    def _original_order(self) -> Tensor | None:
        return self.original_to_sorted if self.original_to_sorted is not None else self._export_table

    def to_embedding(self, *, order: str | None = None) -> nn.Embedding:
        """A plain, fully trainable `nn.Embedding` holding the merged weight (original order if known)."""
        order = order or self.input
        weight = self.merged_weight(order=order).clone()
        pad = self.padding_idx
        if pad is not None and order == "original":
            pad = int((self._original_order() == pad).nonzero()[0, 0])
        return nn.Embedding.from_pretrained(weight, freeze=False, padding_idx=pad, sparse=self.sparse)

    def save_trainable(self, path: str | os.PathLike) -> None:
        """Write only the trainable rows: a safetensors file with one float32 tensor `trainable`.

        emb.save_trainable("runs/demo/trainable.safetensors")
        """
        from safetensors.torch import save_file

        from ..io.atomic import as_new_file, atomic_file
        from ..io.outputs import replacer
        from ..io.tensorfile import canonicalize

        metadata = {"format": TRAINABLE_FORMAT, "format_version": "1", "num_fixed": str(self.num_fixed),
                    "num_trainable": str(self.num_trainable), "dim": str(self.embedding_dim)}
        tensor = self.trainable.detach().to("cpu", torch.float32).contiguous()
        # Overwriting is the normal case for a checkpoint; a crash never leaves half a file behind.
        # Only an earlier save_trainable file is replaced, never a file of the user's.
        with atomic_file(path, force=True, replace=replacer("trainable")) as temporary:
            save_file({"trainable": tensor}, str(temporary), metadata=metadata)
            canonicalize(temporary)   # sorted header keys: the same rows give the same bytes
            as_new_file(temporary)

    def load_trainable(self, path: str | os.PathLike) -> None:
        """Read the trainable rows back from `save_trainable`'s file (or an embedding.safetensors)."""
        from safetensors import safe_open

        try:
            with safe_open(os.fspath(path), framework="pt") as f:
                metadata = dict(f.metadata() or {})
                if "trainable" not in f.keys():
                    raise ReindexError(f"no tensor 'trainable' (has {sorted(f.keys())})", path=path,
                                       hint="write the file with SplitEmbedding.save_trainable")
                tensor = f.get_tensor("trainable")
        except ReindexError:
            raise
        except Exception as e:  # missing file, corrupt header: safetensors has its own types
            raise ReindexError(f"cannot read safetensors file: {e}", path=path) from e
        expected = (self.num_trainable, self.embedding_dim)
        if tuple(tensor.shape) != expected:
            raise ReindexError(f"tensor 'trainable' has shape {list(tensor.shape)}, this embedding "
                               f"needs {list(expected)}", path=path, hint="was it saved from another run?")
        if metadata.get("num_fixed", str(self.num_fixed)) != str(self.num_fixed):
            raise ReindexError(f"saved with {metadata['num_fixed']} fixed rows, this embedding has "
                               f"{self.num_fixed}", path=path, hint="was it saved from another run?")
        with torch.no_grad():
            self.trainable.copy_(tensor)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # Accept a plain nn.Embedding checkpoint (`weight`, in the order forward's ids use), so a
        # model saved after the Lightning callback swapped the embedding back can resume.
        weight = state_dict.get(prefix + "weight")
        if weight is not None and prefix + "trainable" not in state_dict:
            del state_dict[prefix + "weight"]
            if self.original_to_sorted is not None:
                weight = weight[inverse(self.original_to_sorted.to(weight.device))]
            state_dict[prefix + "fixed"] = weight[: self.num_fixed]
            state_dict[prefix + "trainable"] = weight[self.num_fixed:]
            if self.original_to_sorted is not None:
                state_dict.setdefault(prefix + "original_to_sorted", self.original_to_sorted)
        super()._load_from_state_dict(state_dict, prefix, *args)
        self._pack()   # load_state_dict(assign=True) replaces the tensors

    # -- constructors -----------------------------------------------------------------------------
    @classmethod
    def from_run(cls, path: str | os.PathLike, *, input: str = "sorted", sparse: bool = False) -> SplitEmbedding:
        """Load a run directory written by `reindex build` (or its embedding.safetensors).

        With `input="original"` the module carries the original->sorted table and takes original ids.
        The pad token (metadata `pad_id`, a sorted id) becomes `padding_idx`.

        emb = SplitEmbedding.from_run("runs/demo", input="original")
        """
        from ..mapping import invert_permutation
        from ..run import read_embedding

        if input not in ("sorted", "original"):
            raise ReindexError(f"input must be 'sorted' or 'original', got {input!r}")
        tensors, metadata = read_embedding(path)
        fixed = torch.from_numpy(tensors["fixed"])
        trainable = torch.from_numpy(tensors["trainable"])
        try:
            check_rows(fixed, trainable)
        except ReindexError as e:
            raise ReindexError(e.message, path=path, hint="rebuild the run") from e
        pad = metadata.get("pad_id")
        table = torch.from_numpy(invert_permutation(tensors["sorted_to_original"]))
        module = cls(fixed, trainable, padding_idx=None if pad in (None, "") else int(pad), sparse=sparse,
                     original_to_sorted=table if input == "original" else None)
        module._export_table = table
        return module

    @classmethod
    def from_embedding(cls, embedding: nn.Embedding, frozen_rows: Tensor | Sequence[int], *,
                       sparse: bool | None = None, in_place: bool = False) -> SplitEmbedding:
        """Freeze any set of rows of an `nn.Embedding`; the result takes the same (original) ids.

        `frozen_rows` holds row indices, or is a boolean mask over the rows. `in_place=True` reuses
        the embedding's own memory for the rows (no second [V, D] copy) and so scrambles
        `embedding.weight`: pass it only when `embedding` is discarded (as `reindex.hf.train_only` does).

        >>> emb = SplitEmbedding.from_embedding(nn.Embedding(5, 2), [0, 3])
        >>> emb.num_fixed, emb.input
        (2, 'original')
        """
        if embedding.max_norm is not None or embedding.scale_grad_by_freq:
            raise ReindexError("max_norm and scale_grad_by_freq are not supported",
                               hint="build the nn.Embedding without them")
        weight = embedding.weight.detach()
        check_rows(weight, weight)   # before the rows move: a refused embedding stays as it was
        vocab_size = weight.shape[0]
        is_fixed = rows_to_mask(frozen_rows, vocab_size, device=weight.device)
        # Stable partition, the same order `reindex build` uses: fixed rows first, then trainable.
        sorted_to_original = torch.cat([is_fixed.nonzero().squeeze(1), (~is_fixed).nonzero().squeeze(1)])
        num_fixed = int(is_fixed.sum())
        original_to_sorted = inverse(sorted_to_original)
        pad = embedding.padding_idx
        identity = bool(torch.equal(sorted_to_original, torch.arange(vocab_size, device=weight.device)))
        module = cls._from_block(partition_rows(weight, is_fixed, in_place=in_place), num_fixed,
                                 padding_idx=None if pad is None else int(original_to_sorted[pad]),
                                 sparse=embedding.sparse if sparse is None else sparse,
                                 # A prefix of rows needs no table: original ids are already sorted ids.
                                 original_to_sorted=None if identity else original_to_sorted)
        module._export_table = original_to_sorted
        return module
