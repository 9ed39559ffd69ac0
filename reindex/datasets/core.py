"""The spec, the report and the flat gather every format shares. Arrays in, arrays out; no paths."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ReindexError, UsageError
from ..mapping import check_dtype_fits, describe_index, first_out_of_range

#: Ids remapped per chunk: 4 Mi int64 ids = 32 MB in + 32 MB out, so memory is bounded by the
#: chunk, not the file (measured: smaller chunks cost more in per-chunk overhead).
CHUNK_IDS = 1 << 22

OUT_OF_RANGE_HINT = "was the file tokenized with this vocabulary, or is it already remapped?"


def check_columns(columns: Sequence[str]) -> None:
    """Refuse a column named twice: it would be remapped twice, a silently wrong result.

    >>> check_columns(["input_ids", "labels"])
    """
    columns = list(columns)
    repeated = [c for i, c in enumerate(columns) if c in columns[:i]]
    if repeated:
        raise UsageError(f"--column {repeated[0]!r} is given more than once", hint="name each column once")


def ignore_in_vocab(ignore: Sequence[int], vocab_size: int) -> list[int]:
    """The `--ignore-index` values that are real ids of a vocabulary of `vocab_size` tokens.

    >>> ignore_in_vocab((-100, 2, 7), 5)
    [2]
    """
    return [int(v) for v in ignore if 0 <= int(v) < vocab_size]


def check_ignore(ignore: Sequence[int], vocab_size: int, tokens: Sequence[str] | None = None) -> None:
    """Refuse an ignore value that is a real id: its ids and the token's would become one (UsageError).

    Every command that takes `--ignore-index` makes a `RemapSpec`, so this is its one check; `tokens`
    (in input-id order) names the token.

    >>> check_ignore((-100,), 5)
    """
    bad = ignore_in_vocab(ignore, vocab_size)
    if not bad:
        return
    value = bad[0]
    token = f"the token {tokens[value]!r}" if tokens is not None and value < len(tokens) else "a token"
    raise UsageError(f"--ignore-index {value} is the id of {token}: ignore values must lie outside the vocabulary "
                     f"[0, {vocab_size})", hint="use a value such as -100")


@dataclass
class RemapSpec:
    """What to remap and how.

    >>> spec = RemapSpec(table=np.array([2, 0, 1]))      # original id -> sorted id
    >>> spec.vocab_size
    3
    """

    table: np.ndarray                     # int64 [V]: input id -> output id
    columns: tuple[str, ...] = ("input_ids",)
    id_dtype: str | None = None           # "int32" | "int64" | None = keep the input's dtype
    tokens: Sequence[str] | None = None   # vocabulary in INPUT-id order, for whitespace text
    unk: str | None = None                # text: token for unknown words (else an error)
    counts: np.ndarray | None = None      # int64 [V]; += bincount of the output ids
    ignore: tuple[int, ...] = ()          # ids written through unchanged and not counted (e.g. -100)
    # `table` converted to each output dtype, made once per spec rather than once per record batch
    tables: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_columns(self.columns)
        check_ignore(self.ignore, self.vocab_size, self.tokens)

    @property
    def vocab_size(self) -> int:
        return int(self.table.shape[0])


@dataclass
class FileReport:
    """One remapped file: where from, where to, what format, how many ids and rows."""

    source: Path
    output: Path
    format: str
    num_ids: int
    num_rows: int


class OutOfRange(Exception):
    """Internal: an id at flat `index` (in the array handed to `gather`) is outside [0, V)."""

    def __init__(self, index: int, value: int, inner: tuple[int, ...] = ()) -> None:
        super().__init__(index, value, inner)
        self.index = index
        self.value = value
        self.inner = inner  # positions inside nested lists, outermost first


def out_of_range_error(value: int, vocab_size: int, *, path: str | os.PathLike | None,
                       position: str) -> ReindexError:
    """The one message for a bad id, so every format words it the same way."""
    return ReindexError(f"id {value} is outside the vocabulary [0, {vocab_size})", path=path,
                        position=position, hint=OUT_OF_RANGE_HINT)


def output_dtype(input_dtype: np.dtype, spec: RemapSpec, *, path: object = None) -> np.dtype:
    """The dtype ids are written in: `spec.id_dtype`, else the input's; refused if too small.

    >>> output_dtype(np.dtype("int16"), RemapSpec(np.arange(5)), path="x.npy").name
    'int16'
    """
    input_dtype = np.dtype(input_dtype)
    where = None if path is None else str(path)
    if input_dtype.kind not in "iu":  # numpy counts timedelta64 as an integer type; ids it is not
        raise ReindexError(f"ids must be integers, got {input_dtype}", path=where,
                           hint="pass token ids, not floats, strings or times")
    dtype = input_dtype if spec.id_dtype is None else np.dtype(spec.id_dtype)
    if spec.id_dtype is not None and dtype.name not in ("int32", "int64"):
        raise ReindexError(f"id_dtype must be 'int32' or 'int64', got {spec.id_dtype!r}", path=where)
    check_dtype_fits(dtype, spec.vocab_size, path=where)
    return dtype


def table_as(table: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The lookup table in the output dtype, so the gather writes the output directly."""
    return np.ascontiguousarray(table).astype(dtype, copy=False)


def ignored(ids: np.ndarray, ignore: Sequence[int]) -> np.ndarray | None:
    """Where `ids` holds one of the `ignore` ids (`--ignore-index`), or None when nowhere.

    >>> ignored(np.array([5, -100, 2]), (-100,)).tolist()
    [False, True, False]
    """
    if not ignore or not ids.size:
        return None
    info = np.iinfo(ids.dtype)
    values = [v for v in ignore if info.min <= v <= info.max]  # an id the dtype cannot hold is never there
    if not values:
        return None
    mask = np.isin(ids, values)
    return mask if mask.any() else None


def gather(ids: np.ndarray, table: np.ndarray, out: np.ndarray, *,
           scratch: np.ndarray | None = None, check: bool = True,
           ignore: Sequence[int] = ()) -> np.ndarray | None:
    """`out[:] = table[ids]` for a 1-D chunk, raising OutOfRange for the first bad id.

    Ids in `ignore` are copied through unchanged; the mask of where they were is returned.

    >>> out = np.empty(3, np.int64); gather(np.array([2, 0, 2]), np.array([7, 8, 9]), out); out
    array([9, 7, 9])
    >>> gather(np.array([2, -100]), np.array([7, 8, 9]), out[:2], ignore=(-100,)).tolist(), out[:2]
    ([False, True], array([   9, -100]))
    """
    skipped = ignored(ids, ignore)
    if skipped is not None:
        gather(np.where(skipped, 0, ids), table, out, scratch=scratch, check=check)
        out[skipped] = ids[skipped]
        return skipped
    from .. import progress

    progress.tally("ids", int(ids.size))
    if check and ids.size and not in_range(ids, table.shape[0]):
        found = first_out_of_range(ids, table.shape[0])
        assert found is not None, "in_range refused, so some id is out of range"
        raise OutOfRange(*found)
    if ids.dtype != np.intp and scratch is not None:
        # np.take casts non-intp indices to a fresh array; a reused buffer avoids the allocation.
        idx = scratch[: ids.shape[0]]
        np.copyto(idx, ids, casting="unsafe")
        ids = idx
    # Bounds were checked (or the ids are hidden behind nulls), so "clip" never changes a
    # visible id: it only skips numpy's slower wrap-around handling and keeps memory safe.
    np.take(table, ids, out=out, mode="clip")
    return None


def in_range(ids: np.ndarray, vocab_size: int) -> bool:
    """True if every id is in [0, vocab_size): one pass, as negatives are huge when unsigned."""
    if ids.dtype.kind == "i":
        ids = ids.view(ids.dtype.str.replace("i", "u"))
    return int(ids.max()) < vocab_size


def add_counts(counts: np.ndarray | None, out_ids: np.ndarray, skipped: np.ndarray | None = None) -> None:
    """`counts += bincount(out_ids)` (output ids are in range by construction), leaving out `skipped`."""
    if skipped is not None:
        out_ids = out_ids[~skipped]
    if counts is not None and out_ids.size:
        counts += np.bincount(out_ids.reshape(-1), minlength=counts.shape[0])[: counts.shape[0]]


def remap_array(ids: np.ndarray, spec: RemapSpec, *, path: str | os.PathLike | None, key: str | None = None,
                chunk: int = CHUNK_IDS) -> np.ndarray:
    """Remap an in-memory integer array of any shape (C-contiguous result), chunk by chunk.

    >>> remap_array(np.array([[0, 2]]), RemapSpec(np.array([2, 0, 1])), path="x").tolist()
    [[2, 1]]
    """
    dtype = output_dtype(ids.dtype, spec, path=path)
    table = table_as(spec.table, dtype)
    flat_in = np.ascontiguousarray(ids).reshape(-1)
    out = np.empty(ids.shape, dtype=dtype)
    flat_out = out.reshape(-1)
    scratch = np.empty(min(chunk, flat_in.size), np.intp) if flat_in.dtype != np.intp else None
    for start in range(0, flat_in.size, chunk):
        try:
            skipped = gather(flat_in[start:start + chunk], table, flat_out[start:start + chunk], scratch=scratch,
                             ignore=spec.ignore)
        except OutOfRange as e:
            position = describe_index(ids.shape, start + e.index)
            if key is not None:
                position = f"key {key!r}, {position}"
            raise out_of_range_error(e.value, spec.vocab_size, path=path, position=position) from None
        add_counts(spec.counts, flat_out[start:start + chunk], skipped)
    return out
