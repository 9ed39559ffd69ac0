"""The stable partition of a [V, D] weight: fixed rows first, then trainable rows, each group in id order.

The order is `reindex.mapping.build_permutation`'s, the one every run uses. When the trainable rows
already sit at the end (new tokens appended by a resize: the common case) the order is the identity,
and the weight's own memory can serve as the split block: no row moves, no second [V, D] copy. Any
other order is a copy, never a reordering in place, so a view of the old weight that someone holds
(`w = emb.weight.detach()`) keeps its rows where they were.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..mapping import build_permutation


def stable_order(is_fixed: Tensor) -> Tensor:
    """`sorted_to_original` (int64, on `is_fixed`'s device): fixed ids ascending, then trainable ids.

    >>> stable_order(torch.tensor([False, True, False, True])).tolist()
    [1, 3, 0, 2]
    """
    order = build_permutation(is_fixed.detach().cpu().numpy())
    return torch.from_numpy(order).to(is_fixed.device)


def is_suffix(is_fixed: Tensor) -> bool:
    """Whether every trainable row comes after every fixed row (the stable order is the identity).

    >>> is_suffix(torch.tensor([True, True, False])), is_suffix(torch.tensor([False, True]))
    (True, False)
    """
    num_fixed = int(is_fixed.sum())
    return bool(is_fixed[:num_fixed].all())


def partition_rows(weight: Tensor, is_fixed: Tensor, *, reuse: bool = False) -> Tensor:
    """The rows of `weight` with `is_fixed` rows first, then the others, each group in ascending order.

    With `reuse=True`, a weight whose trainable rows are already a suffix (and whose memory may be
    reused, see `can_reuse`) is returned itself; otherwise the result is a new tensor and `weight`
    is left as it was.

    >>> partition_rows(torch.arange(4.).view(4, 1), torch.tensor([False, True, False, True])).view(-1).tolist()
    [1.0, 3.0, 0.0, 2.0]
    """
    weight = weight.detach()
    if reuse and can_reuse(weight) and is_suffix(is_fixed):
        return weight
    return weight.index_select(0, stable_order(is_fixed).to(weight.device))


def can_reuse(weight: Tensor) -> bool:
    """Whether `weight`'s memory may become a split block: a plain, contiguous, writable tensor."""
    if not (type(weight) is Tensor and weight.dim() == 2 and weight.is_contiguous()
            and not weight.is_quantized and weight.numel() > 0):
        return False
    # On the CPU: storage torch allocated itself, or a private writable file mapping (a safetensors
    # checkpoint loaded without a cast). Other buffers (frombuffer, a shared or read-only mapping)
    # may be read-only or belong to someone else.
    storage = weight.untyped_storage()
    return weight.device.type != "cpu" or storage.resizable() or private_mapping(storage.data_ptr(), storage.nbytes())


def private_mapping(address: int, size: int, maps: str = "/proc/self/maps") -> bool:
    """Whether [address, address + size) lies in one private, writable mapping of a file (Linux).

    Writes to such memory reach private copy-on-write pages: never the file, never another
    process, and only the written pages are copied. So a memory-mapped checkpoint's rows can be the
    split block (the fixed rows are never written, the trainable ones are): no second [V, D] copy.
    Elsewhere (no /proc) the answer is False, and the rows are copied.
    """
    try:
        with open(maps, encoding="ascii") as lines:
            for line in lines:
                span, perms, _, _, inode = line.split(maxsplit=5)[:5]
                start, end = (int(x, 16) for x in span.split("-"))
                if start <= address < end:
                    # inode 0: anonymous memory (the heap, a bytearray): someone else's object, not a file.
                    return address + size <= end and perms.startswith("rw") and perms[3] == "p" and inode != "0"
    except (OSError, ValueError):
        return False
    return False
