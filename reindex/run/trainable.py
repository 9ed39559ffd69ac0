"""Files of trained rows: the one reader and checker, for the command line (numpy) and the torch side alike.

Two safetensors formats (names in `reindex.formats`):
- `SplitEmbedding.save_trainable` (TRAINABLE_FORMAT): one float32 tensor `trainable` [T, D];
  metadata `num_fixed`, `num_trainable`, `dim`. A run's embedding.safetensors, or a whole state dict
  holding one `*.trainable` tensor, reads the same way (`split_rows`).
- `reindex.hf.save_trainable` (HF_TRAINABLE_FORMAT): `ids` [T] int64, `embedding` [T, D], for an
  untied head `head` [T, D], and `head_bias` [T]; metadata `vocab_size`, `dim`, `tied` and
  `frozen_sha256`, a hash of the frozen rows (`fingerprint`) so that loading onto another base model
  is refused (`model_rows`).

No torch here: the torch side hands in numpy views and copies the checked arrays into its tensors.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np

from ..checkpoint.tensors import fit_float32
from ..errors import ReindexError
from ..formats import HF_TRAINABLE_FORMAT, TRAINABLE_FORMAT

Arrays = dict[str, np.ndarray]


def unreadable(path: str | os.PathLike, error: BaseException) -> ReindexError:
    """The one error for a safetensors file that cannot be read (missing, truncated, not safetensors)."""
    return ReindexError(f"cannot read safetensors file: {error}", path=path,
                        hint="give a .safetensors file written by reindex or safetensors")


def read_safetensors(path: str | os.PathLike) -> tuple[Arrays, dict[str, str]]:
    """(tensors as numpy arrays, metadata) of a safetensors file; bfloat16 is widened to float32 (exactly)."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    try:
        with safe_open(os.fspath(path), framework="numpy") as f:
            metadata = dict(f.metadata() or {})
        try:
            return load_file(os.fspath(path)), metadata
        except (TypeError, ValueError) as e:
            if "bf16" not in str(e).lower() and "bfloat16" not in str(e).lower():
                raise
        return _read_with_bfloat16(Path(path)), metadata
    except ReindexError:
        raise
    except Exception as e:  # missing file, corrupt header: safetensors has its own error types
        raise unreadable(path, e) from e


_RAW = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
        "I8": "i1", "U8": "u1", "BOOL": "?"}


def _read_with_bfloat16(path: Path) -> Arrays:
    """numpy has no bfloat16: read the raw halves and widen them (a bfloat16 is a float32's top 16 bits)."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        data = f.read()
    arrays = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = np.frombuffer(data[start:end], dtype=_RAW[info["dtype"]]).reshape(info["shape"])
        arrays[name] = (raw.astype(np.uint32) << 16).view(np.float32) if info["dtype"] == "BF16" else raw.copy()
    return arrays


def replaceable(path: Path) -> str | None:
    """None if `path` is a file an earlier `save_trainable` wrote (so saving again may replace it), else why not."""
    from safetensors import safe_open

    if path.is_symlink() or not path.is_file():
        return f"refusing to replace {path}: it is not a regular file"
    try:
        with safe_open(os.fspath(path), framework="numpy") as f:
            written = (f.metadata() or {}).get("format")
    except Exception:  # not safetensors at all: someone else's file
        written = None
    if written not in (TRAINABLE_FORMAT, HF_TRAINABLE_FORMAT):
        return f"refusing to replace {path}: it is not a file written by `save_trainable`"
    return None


def as_float32(array: np.ndarray, *, key: str, path: str | os.PathLike) -> np.ndarray:
    """`array` as float32, refusing NaN, infinities and values float32 cannot hold, naming the first bad row.

    >>> as_float32(np.array([[1.0, 2.0]]), key="trainable", path="w.pt").dtype
    dtype('float32')
    """
    array = np.asarray(array)
    if array.dtype.kind not in "fiu":
        raise ReindexError(f"`{key}` holds {array.dtype} values; weights must be floats", path=path)
    return fit_float32(array, key=key, path=path, hint="these weights diverged in training or were not saved "
                                                        "as floats")


def split_rows(state: Mapping[str, np.ndarray], *, path: str | os.PathLike, shape: tuple[int, int],
               metadata: Mapping[str, str] | None = None, fixed: np.ndarray | None = None,
               needed_by: str = "the run") -> np.ndarray:
    """The trained rows of a SplitEmbedding from `state` (a file's tensors), checked against the embedding.

    `state` holds `trainable` or one key ending in `.trainable` (a whole model's state_dict). The rows
    must have `shape`; a `num_fixed` in `metadata`, and `fixed` rows saved beside them (when `fixed` is
    given), must match those of `needed_by` (named in the messages).
    """
    keys = [k for k in state if k == "trainable" or k.endswith(".trainable")]
    if len(keys) != 1:
        raise ReindexError(f"expected one `trainable` tensor, found {keys or 'none'} among {sorted(state)[:8]}",
                           path=path, hint="save the module with SplitEmbedding.save_trainable")
    rows = as_float32(state[keys[0]], key=keys[0], path=path)
    if tuple(rows.shape) != tuple(shape):
        raise ReindexError(f"`{keys[0]}` has shape {tuple(rows.shape)}, {needed_by} needs {tuple(shape)}",
                           path=path, hint="these weights were trained on another run")
    num_fixed = None if fixed is None else fixed.shape[0]
    saved_fixed = (metadata or {}).get("num_fixed")
    if saved_fixed is not None and num_fixed is not None and saved_fixed != str(num_fixed):
        raise ReindexError(f"saved with {saved_fixed} fixed rows, {needed_by} has {num_fixed}", path=path,
                           hint="these weights were trained on another run")
    fixed_key = keys[0][: -len("trainable")] + "fixed"
    if fixed is not None and fixed_key in state and not np.array_equal(
            as_float32(state[fixed_key], key=fixed_key, path=path), fixed):
        raise ReindexError(f"`{fixed_key}` differs from the fixed rows of {needed_by}", path=path,
                           hint="these weights belong to another run")
    return rows


def fingerprint(chunks: Iterable[np.ndarray]) -> str:
    """sha256 over the bytes of `chunks` (the frozen rows as float32, in order), hex."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(np.ascontiguousarray(chunk).tobytes())
    return digest.hexdigest()


def _read_model_file(path: str | os.PathLike) -> tuple[Arrays, dict[str, str]]:
    tensors, metadata = read_safetensors(path)
    if metadata.get("format") != HF_TRAINABLE_FORMAT or "ids" not in tensors or "embedding" not in tensors:
        raise ReindexError(f"not a {HF_TRAINABLE_FORMAT} file (format {metadata.get('format')!r})", path=path,
                           hint="write it with reindex.hf.save_trainable")
    if tensors["ids"].ndim != 1 or tensors["ids"].dtype.kind not in "iu":
        raise ReindexError(f"tensor 'ids' is {tensors['ids'].dtype} {list(tensors['ids'].shape)}, expected "
                           "1-D integers", path=path)
    return tensors, metadata


def model_ids(path: str | os.PathLike) -> np.ndarray:
    """The ids (int64) whose rows a `reindex.hf.save_trainable` file holds."""
    return _read_model_file(path)[0]["ids"].astype(np.int64)


def model_rows(path: str | os.PathLike, *, ids: np.ndarray | None, names: set[str], dtype: str,
               fingerprint_as: Callable[[str], str]) -> Arrays:
    """The rows of a `reindex.hf.save_trainable` file, checked: ids (when given), tensor names, shapes, frozen rows.

    `fingerprint_as(name)` is the model's frozen-row fingerprint after a cast to the dtype `name`;
    `dtype` is the model's own. The frozen rows are compared in the coarser of the file's dtype and
    the model's, so a base cast to bfloat16 still matches a file saved from its float32 original.
    """
    tensors, metadata = _read_model_file(path)
    if ids is not None and not np.array_equal(tensors["ids"], ids):
        raise ReindexError(f"the file holds rows for {tensors['ids'].size} other ids than this model trains",
                           path=path, hint="call train_only with the same token ids")
    if not _same_frozen_rows(metadata, dtype, fingerprint_as):
        raise ReindexError("the frozen rows of this model differ from those the file was trained with", path=path,
                           hint="load it onto the same base model (and vocabulary) it was trained from")
    if set(tensors) != names | {"ids"}:
        raise ReindexError(f"the file holds {sorted(tensors)}, this model needs {sorted(names | {'ids'})}",
                           path=path, hint="a tied model's file cannot load into an untied one, or the other way")
    count = tensors["ids"].shape[0]
    for name in names:
        if tensors[name].shape[0] != count or tensors[name].dtype.kind != "f":
            raise ReindexError(f"tensor {name!r} is {tensors[name].dtype} {list(tensors[name].shape)}, "
                               f"expected {count} float rows", path=path)
    return tensors


def _same_frozen_rows(metadata: Mapping[str, str], dtype: str, fingerprint_as: Callable[[str], str]) -> bool:
    # Files written before `frozen_dtype` existed hashed the rows widened to float32.
    saved_dtype = metadata.get("frozen_dtype", "float32")
    if metadata.get("frozen_sha256") == fingerprint_as(saved_dtype):   # same dtype, or the file's is coarser
        return True
    # The model is coarser: the file also holds its frozen rows' fingerprint after a cast to that dtype.
    cast = metadata.get(f"frozen_sha256_{dtype}")
    return cast is not None and cast == fingerprint_as(dtype)


#: Coarser float dtypes a base model is commonly cast to, by the dtype it was saved in.
COARSER = {"float64": ("float32", "bfloat16", "float16"), "float32": ("bfloat16", "float16")}
