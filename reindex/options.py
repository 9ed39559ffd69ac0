"""Typed option groups: one frozen dataclass per group, shared by the CLI, the library and the manifest.

A field's name is its manifest key (`RUN/manifest.json`'s `options`) and, with `-` for `_`, its CLI
flag. A field marked with `path()` names a file the command reads: `reindex.io.inputs` registers every
such field, so the output rule checks `--out` against a new path option without anyone listing it.

    BuildOptions(pad="<pad>", match=MatchOptions(case_fallback=True)).manifest()["case_fallback"]
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .errors import UsageError

INITS = ("normal", "uniform", "zeros", "mean", "subwords", "pieces")
NORMALIZE = ("none", "nfc", "nfkc")
VECTORS_FORMATS = ("glove", "word2vec-text", "word2vec-binary", "fasttext-bin")
DUPLICATES = ("first", "last", "error")
UNICODE_ERRORS = ("strict", "replace", "ignore")
ID_DTYPES = ("int32", "int64")
ENGINES = ("local", "ray")
EXPORT_FORMATS = ("safetensors", "npy", "pt", "word2vec", "word2vec-binary", "glove", "word2vec-gz", "glove-gz")


def path(*, default: Any = None) -> Any:
    """A field naming an input file (or folder): registered as an input, stored as a `Path`."""
    return field(default=default, metadata={"input": True})


def _choose(value: Any, name: str, allowed: tuple[str, ...], *, optional: bool = False) -> None:
    if (value is None and optional) or value in allowed:
        return
    raise UsageError(f"--{name.replace('_', '-')} must be one of {', '.join(allowed)}, got {value!r}")


class _Group:
    """What every group shares: paths made `Path`, sequences made tuples, choices checked."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.metadata.get("input") and value is not None and not isinstance(value, Path):
                object.__setattr__(self, f.name, Path(os.fspath(value)))
            elif isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))
        self.check()

    def check(self) -> None:
        """Refuse a value outside its choices (UsageError, exit 2)."""

    def manifest(self) -> dict[str, Any]:
        """The group as the manifest's `options` records it: paths as given, tuples as lists."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, _Group):
                out.update(value.manifest())
            elif isinstance(value, tuple):
                out[f.name] = list(value)
            else:
                out[f.name] = str(value) if isinstance(value, Path) else value
        return out

    def input_paths(self) -> Iterator[tuple[str, Path]]:
        """(flag, path) of every input this group names, nested groups included."""
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, _Group):
                yield from value.input_paths()
            elif f.metadata.get("input") and value is not None:
                yield f"--{f.name.replace('_', '-')}", value


@dataclass(frozen=True)
class MatchOptions(_Group):
    """How a vocabulary token finds its vector: exact first, then these fallbacks (`reindex.matching`)."""

    lowercase_fallback: bool = False
    case_fallback: bool = False
    normalize: str = "none"

    def check(self) -> None:
        _choose(self.normalize, "normalize", NORMALIZE)


@dataclass(frozen=True)
class VectorOptions(_Group):
    """How `--vectors` is read."""

    limit: int | None = None
    vectors_format: str | None = None
    duplicates: str = "first"
    unicode_errors: str = "strict"
    vectors_key: str | None = None
    weights: Path | None = path()          # with an old RUN as --vectors: its trained rows

    def check(self) -> None:
        _choose(self.vectors_format, "vectors_format", VECTORS_FORMATS, optional=True)
        _choose(self.duplicates, "duplicates", DUPLICATES)
        _choose(self.unicode_errors, "unicode_errors", UNICODE_ERRORS)
        if self.limit is not None and self.limit < 1:
            raise UsageError(f"--limit must be at least 1, got {self.limit}")


@dataclass(frozen=True)
class InitOptions(_Group):
    """How the trainable rows start."""

    init: str = "normal"
    seed: int = 0
    subword_model: Path | None = path()    # with --init subwords: the fastText .bin (default: --vectors)

    def check(self) -> None:
        _choose(self.init, "init", INITS)
        if self.subword_model is not None and self.init != "subwords":
            raise UsageError("--subword-model goes with --init subwords", path=self.subword_model,
                             hint="add --init subwords, or drop --subword-model")


@dataclass(frozen=True)
class DataOptions(_Group):
    """How datasets are read and remapped (`build`, `remap`, `invert`, `inspect`)."""

    columns: tuple[str, ...] = ("input_ids",)
    id_dtype: str | None = None
    unk: str | None = None
    ignore_index: tuple[int, ...] = ()
    include: tuple[str, ...] = ()

    def check(self) -> None:
        _choose(self.id_dtype, "id_dtype", ID_DTYPES, optional=True)
        object.__setattr__(self, "ignore_index", tuple(int(i) for i in self.ignore_index))


@dataclass(frozen=True)
class EngineOptions(_Group):
    """Where remapping runs; never recorded in the manifest (the output does not depend on it)."""

    engine: str = "local"
    workers: int | None = None
    ray_address: str | None = None

    def check(self) -> None:
        _choose(self.engine, "engine", ENGINES)


@dataclass(frozen=True)
class BuildOptions(_Group):
    """Everything `build` is told besides its vocabulary, vectors, datasets and `--out`."""

    pad: str | None = None
    match: MatchOptions = MatchOptions()
    vectors: VectorOptions = VectorOptions()
    init: InitOptions = InitOptions()
    data: DataOptions = DataOptions()

    @classmethod
    def from_keywords(cls, **flat: Any) -> BuildOptions:
        """The groups from flat keywords, as `build_run(pad=..., case_fallback=True)` passes them."""
        groups: dict[str, dict[str, Any]] = {"match": {}, "vectors": {}, "init": {}, "data": {}}
        owner = {f.name: group for group, kind in (("match", MatchOptions), ("vectors", VectorOptions),
                                                   ("init", InitOptions), ("data", DataOptions))
                 for f in dataclasses.fields(kind)}
        pad = flat.pop("pad", None)
        for name, value in flat.items():
            if name not in owner:
                raise TypeError(f"build() got an unexpected keyword argument {name!r}")
            groups[owner[name]][name] = value
        return cls(pad=pad, match=MatchOptions(**groups["match"]), vectors=VectorOptions(**groups["vectors"]),
                   init=InitOptions(**groups["init"]), data=DataOptions(**groups["data"]))
