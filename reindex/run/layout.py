"""A run directory read back: `Run` (the mapping, and the tokens and vectors read on first use) and `load_run`.

Layout (the contract every command and the docs share):

    RUN/embedding.safetensors  tensors `fixed` [F, D] float32, `trainable` [T, D] float32,
                               `sorted_to_original` [V] int64; string metadata (format, counts, dim)
    RUN/vocab.txt              line s = the token with sorted id s (UTF-8)
    RUN/manifest.json          format version, inputs (path, size, sha256), options, counts, outputs
    RUN/data/<file name>       each dataset, remapped to sorted ids, in its input's format
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ReindexError, UsageError
from ..formats import EMBEDDING_FILE, VOCAB_FILE
from ..io.tensorfile import safetensors_errors
from ..mapping import INTEGER_DTYPES, check_permutation, invert_permutation, lookup_table, remap
from .manifest import read_manifest

MEMBER_HINT = "the run directory is incomplete or was modified; rebuild it with `reindex build`"


def read_embedding(path: str | os.PathLike, *, keys: tuple[str, ...] | None = None
                   ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read `embedding.safetensors` (or a run directory holding it): (tensors, metadata).

    With `keys`, only those tensors are read; the others' shapes are still checked by `load_run`.
    """
    tensors, metadata, _ = _read_safetensors(path, keys)
    return tensors, metadata


def _read_safetensors(path: str | os.PathLike, keys: tuple[str, ...] | None
                      ) -> tuple[dict[str, np.ndarray], dict[str, str], dict[str, list[int]]]:
    from safetensors import safe_open

    path = Path(path)
    if path.is_dir():
        path = path / EMBEDDING_FILE
    if not path.exists():
        raise ReindexError("no such file", path=path, hint="is this a run directory written by `reindex build`?")
    with safetensors_errors(path):
        with safe_open(str(path), framework="numpy") as f:
            metadata = dict(f.metadata() or {})
            names = list(f.keys())
            shapes = {key: list(f.get_slice(key).get_shape()) for key in names}
            missing = [k for k in ("fixed", "trainable", "sorted_to_original") if k not in names]
            if missing:
                raise ReindexError(f"missing tensor {missing[0]!r} (has {sorted(names)})", path=path,
                                   hint="this file was not written by `reindex build`")
            tensors = {key: f.get_tensor(key) for key in (names if keys is None else keys)}
    return tensors, metadata, shapes


def read_sorted_vocab(path: Path) -> list[str]:
    """The tokens of `vocab.txt`, in sorted-id order; a file that is missing or not UTF-8 is one line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise ReindexError(f"no {path.name}", path=path.parent, hint=MEMBER_HINT) from e
    except OSError as e:
        raise ReindexError(f"cannot read: {e.strerror or e}", path=path) from e
    except UnicodeDecodeError as e:
        raise ReindexError(f"not UTF-8 at byte {e.start}", path=path, hint=MEMBER_HINT) from e
    if text.endswith("\n"):
        text = text[:-1]
    return text.split("\n") if text else []


class Run:
    """A loaded run directory: the mapping, and (read on first use) the tokens and the vectors.

    run = load_run("runs/demo")
    run.to_original(run.to_sorted(ids))
    """

    def __init__(self, *, path: Path, sorted_to_original: np.ndarray, num_fixed: int, num_trainable: int,
                 dim: int, manifest: dict[str, Any], metadata: dict[str, str], tokens: list[str] | None = None,
                 fixed: np.ndarray | None = None, trainable: np.ndarray | None = None) -> None:
        self.path = path
        self.sorted_to_original = sorted_to_original
        self.num_fixed, self.num_trainable, self.dim = num_fixed, num_trainable, dim
        self.manifest, self.metadata = manifest, metadata
        self._original_to_sorted: np.ndarray | None = None
        self._tokens: list[str] | None = tokens
        self._vectors: dict[str, np.ndarray] = {k: v for k, v in (("fixed", fixed), ("trainable", trainable))
                                                if v is not None}
        self._lookups: dict = {}   # converted tables, see _apply
        self._token_index: dict[str, int] | None = None

    def __repr__(self) -> str:
        return (f"Run({str(self.path)!r}, vocab_size={self.vocab_size}, num_fixed={self.num_fixed}, "
                f"num_trainable={self.num_trainable}, dim={self.dim})")

    @property
    def vocab_size(self) -> int:
        return int(self.sorted_to_original.shape[0])

    @property
    def tokens(self) -> list[str]:
        """Sorted order: tokens[s] has sorted id s."""
        if self._tokens is None:
            tokens = read_sorted_vocab(self.path / VOCAB_FILE)
            if len(tokens) != self.vocab_size:
                raise ReindexError(f"{len(tokens)} tokens for {self.vocab_size} ids", path=self.path / VOCAB_FILE,
                                   hint="the run directory was modified; rebuild it")
            self._tokens = tokens
        return self._tokens

    @property
    def fixed(self) -> np.ndarray:
        return self._vector("fixed")

    @fixed.setter
    def fixed(self, value: np.ndarray) -> None:
        self._vectors["fixed"] = value

    @property
    def trainable(self) -> np.ndarray:
        return self._vector("trainable")

    @trainable.setter
    def trainable(self, value: np.ndarray) -> None:
        self._vectors["trainable"] = value

    def _vector(self, key: str) -> np.ndarray:
        if key not in self._vectors:
            tensors, _ = read_embedding(self.path / EMBEDDING_FILE, keys=(key,))
            self._vectors[key] = tensors[key]
        return self._vectors[key]

    @property
    def original_to_sorted(self) -> np.ndarray:
        if self._original_to_sorted is None:
            self._original_to_sorted = invert_permutation(self.sorted_to_original)
        return self._original_to_sorted

    @property
    def original_tokens(self) -> list[str]:
        """Tokens in original-id order."""
        tokens = self.tokens
        return [tokens[s] for s in self.original_to_sorted.tolist()]

    def token_id(self, token: str, *, order: str = "sorted") -> int:
        """The id of `token` in "sorted" or "original" order; KeyError names a token not in the run.

        run.token_id("the"), run.token_id("the", order="original")
        """
        if self._token_index is None:
            self._token_index = {t: s for s, t in enumerate(self.tokens)}
        try:
            sorted_id = self._token_index[token]
        except KeyError:
            raise KeyError(f"{token!r} is not in the vocabulary of {self.path}") from None
        if order == "sorted":
            return sorted_id
        if order != "original":
            raise UsageError(f"order must be 'sorted' or 'original', got {order!r}")
        return int(self.sorted_to_original[sorted_id])

    def token_ids(self, tokens: Any, *, order: str = "sorted") -> np.ndarray:
        """int64 ids of several tokens: `run.token_ids("the cat sat".split())`."""
        return np.array([self.token_id(t, order=order) for t in tokens], dtype=np.int64)

    def to_sorted(self, ids: Any, *, dtype: Any = None, out: Any = None) -> Any:
        """Original ids -> sorted ids, for a numpy array or a torch tensor (same kind out).

        The output dtype is `dtype`, else `out`'s, else the input's; `out` is a preallocated result.
        """
        return _apply(self, "original_to_sorted", ids, dtype, out)

    def to_original(self, ids: Any, *, dtype: Any = None, out: Any = None) -> Any:
        """Sorted ids -> original ids, for a numpy array or a torch tensor (same kind out)."""
        return _apply(self, "sorted_to_original", ids, dtype, out)

    def weight(self, *, order: str = "original") -> np.ndarray:
        """The merged [V, D] matrix, in "sorted" or "original" id order."""
        merged = np.concatenate([self.fixed, self.trainable])
        if order == "sorted":
            return merged
        if order != "original":
            raise UsageError(f"order must be 'sorted' or 'original', got {order!r}")
        return merged[self.original_to_sorted]


def _apply(run: Run, which: str, ids: Any, dtype: Any, out: Any) -> Any:
    """`run.<which>[ids]` for a numpy array or a torch tensor (same kind out), by default in the
    ids' dtype. The table converted for each (kind, device, dtype) is kept: converting it costs
    more than remapping a training batch."""
    if not hasattr(ids, "dtype"):
        ids = _as_ids(ids)
    elif str(ids.dtype).removeprefix("torch.") not in INTEGER_DTYPES:
        raise ReindexError(f"ids must be integers, got {ids.dtype}", hint="pass token ids, not floats or strings")
    if dtype is None:
        dtype = ids.dtype if out is None else out.dtype
    key = (which, type(ids).__module__, str(getattr(ids, "device", "")), str(dtype))
    table = run._lookups.get(key)
    if table is None:
        table = run._lookups[key] = lookup_table(getattr(run, which), ids, dtype=dtype)
    return remap(ids, table, dtype=dtype, out=out)


def _as_ids(ids: Any) -> np.ndarray:
    """A Python list (or scalar) of ids as an array; an empty list is int64, not numpy's float64."""
    try:
        array = np.asarray(ids)
    except ValueError as e:  # a ragged list
        raise ReindexError(f"ids must form a rectangular array: {e}", hint="pad the rows to one length") from e
    if array.size == 0 and array.dtype.kind == "f":
        return array.astype(np.int64)
    if array.dtype.kind not in "iu":
        raise ReindexError(f"ids must be integers, got {array.dtype}", hint="pass token ids, not floats or strings")
    return array


def load_run(path: str | os.PathLike) -> Run:
    """Load a run directory written by `reindex build`, checking that its parts agree.

    Only the permutation is read now; tokens and vectors are read when first used.
    """
    path = Path(path)
    if not path.is_dir():
        raise ReindexError("not a run directory", path=path, hint="pass the --out directory of `reindex build`")
    tensors, metadata, shapes = _read_safetensors(path / EMBEDDING_FILE, ("sorted_to_original",))
    sorted_to_original = tensors["sorted_to_original"]
    check_permutation(sorted_to_original)
    manifest = read_manifest(path, vocab_size=int(sorted_to_original.shape[0]))
    if not (path / VOCAB_FILE).is_file():  # read on first use, but a run without it is no run
        raise ReindexError(f"no {VOCAB_FILE}", path=path, hint=MEMBER_HINT)
    fixed, trainable = shapes["fixed"], shapes["trainable"]
    if len(fixed) != 2 or len(trainable) != 2 or fixed[1] != trainable[1] \
            or fixed[0] + trainable[0] != sorted_to_original.shape[0]:
        raise ReindexError(
            f"counts disagree: {sorted_to_original.shape[0]} ids, fixed {fixed} + trainable {trainable} rows",
            path=path, hint="the run directory was modified; rebuild it")
    return Run(path=path, sorted_to_original=sorted_to_original, num_fixed=int(fixed[0]),
               num_trainable=int(trainable[0]), dim=int(fixed[1]), manifest=manifest, metadata=metadata)
