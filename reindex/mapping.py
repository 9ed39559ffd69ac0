"""The permutation: build it, invert it, apply it to id arrays. Arrays in, arrays out; no paths.

Sorted order puts every fixed token (one with a pretrained vector) first, then every trainable
token, each group in its original relative order (a stable partition).
"""
from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from .errors import ReindexError

#: Ids per chunk of the numpy gather: 128 Ki ids (1 MiB of int64) stay in the L2 cache between the
#: bounds check that reads them and the gather that reads them again.
CHUNK_IDS = 1 << 17
#: Inputs of at least this many ids per thread are split over threads (up to MAX_THREADS).
PARALLEL_IDS = 1 << 22
MAX_THREADS = 8


def build_permutation(is_fixed: np.ndarray, *, pad: int | None = None, head: np.ndarray | None = None) -> np.ndarray:
    """Return `sorted_to_original` (int64) for a boolean mask over original ids: the one stable partition.

    `head` (original ids) comes first as given, then the other fixed ids, then the other trainable ids,
    each in original order; `pad` alone is the head when `head` is None.

    >>> build_permutation(np.array([False, True, False, True])).tolist()
    [1, 3, 0, 2]
    >>> build_permutation(np.array([False, True, False, True]), pad=2).tolist()
    [2, 1, 3, 0]
    >>> build_permutation(np.array([True, True, False, True]), head=np.array([3, 2])).tolist()
    [3, 2, 0, 1]
    """
    is_fixed = np.asarray(is_fixed, dtype=bool)
    if head is None:
        head = np.array([] if pad is None else [pad], dtype=np.int64)
    rest = np.ones(is_fixed.shape[0], dtype=bool)
    rest[head] = False
    parts = [np.asarray(head, dtype=np.int64), np.flatnonzero(rest & is_fixed), np.flatnonzero(rest & ~is_fixed)]
    return np.concatenate(parts).astype(np.int64, copy=False)


def invert_permutation(permutation: np.ndarray) -> np.ndarray:
    """Return the inverse permutation, so `inverse[permutation[i]] == i`.

    >>> invert_permutation(np.array([2, 0, 1])).tolist()
    [1, 2, 0]
    """
    permutation = np.asarray(permutation)
    inverse = np.empty(permutation.shape[0], dtype=np.int64)
    inverse[permutation] = np.arange(permutation.shape[0], dtype=np.int64)
    return inverse


def check_permutation(permutation: np.ndarray, *, what: str = "sorted_to_original") -> None:
    """Raise ReindexError unless `permutation` holds each of 0..n-1 exactly once."""
    permutation = np.asarray(permutation)
    n = permutation.shape[0]
    if permutation.ndim != 1 or not np.issubdtype(permutation.dtype, np.integer):
        raise ReindexError(f"{what} must be a 1-D integer array, got {permutation.dtype} {permutation.shape}")
    seen = np.zeros(n, dtype=bool)
    inside = (permutation >= 0) & (permutation < n)
    if not inside.all():
        i = int(np.flatnonzero(~inside)[0])
        raise ReindexError(f"{what}[{i}] = {int(permutation[i])} is outside [0, {n})")
    seen[permutation] = True
    if not seen.all():
        missing = int(np.flatnonzero(~seen)[0])
        raise ReindexError(f"{what} is not a permutation: {missing} never appears")


def id_dtype_for(vocab_size: int) -> np.dtype:
    """The smallest of int32/int64 that holds ids below `vocab_size`.

    >>> id_dtype_for(10).name, id_dtype_for(2**31 + 1).name
    ('int32', 'int64')
    """
    return np.dtype(np.int32) if vocab_size <= np.iinfo(np.int32).max + 1 else np.dtype(np.int64)


def check_dtype_fits(dtype: np.dtype, vocab_size: int, *, path: str | None = None) -> None:
    """Refuse an integer output dtype that cannot hold every id below `vocab_size`."""
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.integer):
        raise ReindexError(f"ids must be integers, got {dtype}", path=path,
                           hint="pass token ids, not floats or strings")
    if vocab_size - 1 > np.iinfo(dtype).max:
        raise ReindexError(f"{dtype} cannot hold ids up to {vocab_size - 1}", path=path,
                           hint="use --id-dtype int32 or int64")


def first_out_of_range(ids: np.ndarray, vocab_size: int) -> tuple[int, int] | None:
    """Return (flat position, value) of the first id outside [0, vocab_size), or None.

    >>> first_out_of_range(np.array([[0, 1], [5, -1]]), 3)
    (2, 5)
    """
    flat = np.asarray(ids).reshape(-1)
    for start in range(0, flat.size, CHUNK_IDS):
        chunk = flat[start:start + CHUNK_IDS]
        if not _in_range(chunk, vocab_size):
            position = start + int(np.argmax(_as_unsigned(chunk) >= vocab_size))
            return position, int(flat[position])
    return None


def remap(ids: Any, table: Any, *, dtype: Any = None, out: Any = None) -> Any:
    """Return `table[ids]` (a numpy array or, for a torch tensor, a tensor), refusing ids outside
    [0, len(table)) with their position and value.

    `table` is `original_to_sorted` to encode and `sorted_to_original` to decode. The output dtype
    is `dtype`, else `out`'s, else the table's; `out`, when given, receives the result (no
    allocation; on an error its contents are unspecified). Torch is used only for torch tensors.

    >>> remap(np.array([[0, 2], [1, 0]]), np.array([2, 0, 1], dtype=np.int32)).tolist()
    [[2, 1], [0, 2]]
    """
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(ids, torch.Tensor):
        return _remap_torch(torch, ids, table, dtype=dtype, out=out)
    ids = np.asarray(ids)
    _check_integer(ids.dtype)
    table = lookup_table(table, ids, dtype=dtype if dtype is not None or out is None else out.dtype)
    out_dtype = table.dtype
    if out is None:
        out = np.empty(ids.shape, dtype=out_dtype)
    elif out.shape != ids.shape or out.dtype != out_dtype or not out.flags.c_contiguous:
        raise ReindexError(f"out must be a C-contiguous {out_dtype} array of shape {ids.shape}, "
                           f"got {out.dtype} {out.shape}")
    _gather_chunks(ids, table, out.reshape(-1))
    return out


def _gather_chunks(ids: np.ndarray, table: np.ndarray, flat_out: np.ndarray) -> None:
    """`flat_out[:] = table[ids.ravel()]`, checking bounds first; large inputs on several threads
    (numpy's `max` and `take` release the GIL)."""
    flat = ids.reshape(-1)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = max(1, min(cpus, MAX_THREADS, flat.size // PARALLEL_IDS))
    if workers == 1:
        clean = _gather_range(flat, table, flat_out)
    else:
        from concurrent.futures import ThreadPoolExecutor

        step = -(-flat.size // workers // CHUNK_IDS) * CHUNK_IDS
        parts = [slice(start, start + step) for start in range(0, flat.size, step)]
        with ThreadPoolExecutor(len(parts) - 1, thread_name_prefix="reindex-remap") as pool:
            futures = [pool.submit(_gather_range, flat[part], table, flat_out[part]) for part in parts[1:]]
            clean = _gather_range(flat[parts[0]], table, flat_out[parts[0]])
            clean = all([f.result() for f in futures]) and clean
    found = None if clean else first_out_of_range(flat, table.shape[0])
    if found is not None:
        raise _out_of_range(found[1], table.shape[0], ids.shape, found[0])


def _gather_range(flat: np.ndarray, table: np.ndarray, flat_out: np.ndarray) -> bool:
    """Check, then gather, cache chunk by cache chunk; False (and stop) at a chunk with a bad id."""
    # np.take casts non-intp indices to a fresh intp array; one reused chunk-sized buffer avoids that.
    scratch = np.empty(min(CHUNK_IDS, flat.size), np.intp) if flat.dtype != np.intp else None
    for start in range(0, flat.size, CHUNK_IDS):
        chunk = flat[start:start + CHUNK_IDS]
        if not _in_range(chunk, table.shape[0]):
            return False
        if scratch is not None:
            np.copyto(scratch[:chunk.size], chunk, casting="unsafe")
            chunk = scratch[:chunk.size]
        # Bounds were checked just above, so "clip" never clips: it only skips numpy's (slower,
        # negative-wrapping) bounds handling.
        np.take(table, chunk, out=flat_out[start:start + chunk.size], mode="clip")
    return True


def lookup_table(table: Any, like: Any, *, dtype: Any = None) -> Any:
    """`table` as `remap` gathers from it for ids like `like`: numpy, or torch on `like`'s device;
    in `dtype` (default: the table's), refused if too small. Keep it to skip the conversion on
    every call (a 75,000-entry cast costs 40 us to 1.5 ms, more than remapping a batch).

    >>> lookup_table(np.arange(3), np.zeros(2, np.int64), dtype="int32").dtype
    dtype('int32')
    """
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(like, torch.Tensor):
        if not isinstance(table, torch.Tensor):
            table = torch.from_numpy(np.ascontiguousarray(table))
        dtype = table.dtype if dtype is None else getattr(torch, _dtype_name(dtype))
        if dtype != table.dtype:
            check_dtype_fits(np.dtype(_dtype_name(dtype)), table.shape[0])
        return table.to(device=like.device, dtype=dtype)
    table = np.asarray(table)
    dtype = table.dtype if dtype is None else np.dtype(_dtype_name(dtype))
    if dtype != table.dtype:
        check_dtype_fits(dtype, table.shape[0])
        table = table.astype(dtype)
    return table


def _dtype_name(dtype: Any) -> str:
    """'int32' for np.int32, "int32", np.dtype("int32") and torch.int32 alike; an output dtype must be
    an integer type that numpy knows."""
    text = str(dtype)
    try:
        name = np.dtype(text.removeprefix("torch.") if text.startswith("torch.") else dtype).name
    except TypeError:
        name = text
    if name not in INTEGER_DTYPES:
        raise ReindexError(f"the output dtype must be an integer type, got {text}",
                           hint=f"pass one of {', '.join(INTEGER_DTYPES)}")
    return name


INTEGER_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


def _remap_torch(torch: Any, ids: Any, table: Any, *, dtype: Any, out: Any) -> Any:
    """`remap` for a torch tensor: one multithreaded `index_select`, which checks bounds itself.

    `index_select` has no kernel for torch's unsigned types above 8 bits (uint16/32/64), neither as ids
    nor as the table: such ids are gathered as int64 (a uint64 above 2**63 turns negative, so it is
    still refused), and such a table gathers in int64 and is cast to its dtype after."""
    given = ids
    if ids.dtype not in (torch.int32, torch.int64):
        if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
            raise ReindexError(f"ids must be integers, got {ids.dtype}", hint="pass token ids, not floats")
        ids = ids.long()
    lookup = lookup_table(table, ids, dtype=dtype if dtype is not None or out is None else out.dtype)
    dtype = lookup.dtype
    if out is not None and (out.shape != ids.shape or out.dtype != dtype or not out.is_contiguous()):
        raise ReindexError(f"out must be a contiguous {dtype} tensor of shape {tuple(ids.shape)}, "
                           f"got {out.dtype} {tuple(out.shape)}")
    if str(dtype) in ("torch.uint16", "torch.uint32", "torch.uint64"):
        wide = _remap_torch(torch, given, lookup.long(), dtype=None, out=None)
        return wide.to(dtype) if out is None else out.copy_(wide)
    flat = ids.reshape(-1)
    try:
        if out is None:
            out = _empty_torch(torch, ids.shape, dtype, ids.device)
        torch.index_select(lookup, 0, flat, out=out.view(-1))
        return out
    except IndexError:
        # index_select refuses negative and too large ids itself; only now find the first one.
        bad = ((flat < 0) | (flat >= lookup.shape[0])).to(torch.uint8)
        position = int(torch.argmax(bad))
        one = given.reshape(-1)[position:position + 1]
        if one.dtype == torch.uint64:  # int() of a uint64 above 2**63 overflows: read its bits
            value = int(one.view(torch.int64)) % 2**64
        else:
            value = int(one)
        raise _out_of_range(value, lookup.shape[0], tuple(ids.shape), position) from None


def _empty_torch(torch: Any, shape: Any, dtype: Any, device: Any) -> Any:
    """A fresh output tensor. On the CPU it is numpy's: numpy asks the kernel for huge pages for
    large arrays, which halves the page-fault cost of a fresh 300-600 MB output, the largest
    part of the remap; the tensor shares that memory (it cannot be `resize_`d)."""
    if device.type != "cpu":
        return torch.empty(shape, dtype=dtype, device=device)
    return torch.from_numpy(np.empty(tuple(shape), dtype=str(dtype).removeprefix("torch.")))


def _check_integer(dtype: np.dtype) -> None:
    if not np.issubdtype(dtype, np.integer):
        raise ReindexError(f"ids must be integers, got {dtype}", hint="pass token ids, not floats")


def _as_unsigned(ids: np.ndarray) -> np.ndarray:
    """The same bytes as unsigned integers: a negative id becomes huge, so one `max` bounds both ends."""
    return ids.view(ids.dtype.str.replace("i", "u")) if ids.dtype.kind == "i" else ids


def _in_range(ids: np.ndarray, vocab_size: int) -> bool:
    """True if every id lies in [0, vocab_size), in one pass."""
    return ids.size == 0 or int(_as_unsigned(ids).max()) < vocab_size


def _out_of_range(value: int, vocab_size: int, shape: tuple[int, ...], position: int) -> ReindexError:
    return ReindexError(f"id {value} is outside the vocabulary [0, {vocab_size})",
                        position=describe_index(shape, position))


def describe_index(shape: tuple[int, ...], flat: int, *, fortran: bool = False) -> str:
    """Name a flat position as an index: `describe_index((2, 3), 4)` -> 'index [1, 1]'."""
    if len(shape) <= 1:
        return f"index {flat}"
    index = np.unravel_index(flat, shape, order="F" if fortran else "C")
    return "index [" + ", ".join(str(int(i)) for i in index) + "]"
