"""Which files to remap and where to: formats by suffix or content, directories, globs, collisions."""
from __future__ import annotations

import fnmatch
import glob
import os
from pathlib import Path
from typing import Sequence

from ..errors import ReindexError
from ..io.inputfile import check_regular

SUFFIXES = {
    ".npy": "npy", ".pt": "pt", ".pth": "pt", ".safetensors": "safetensors",
    ".parquet": "parquet", ".pq": "parquet",
    ".arrow": "arrow", ".feather": "arrow", ".ipc": "arrow", ".arrows": "arrow",
    ".txt": "text",
}
MAGIC = [(b"\x93NUMPY", "npy"), (b"PAR1", "parquet"), (b"ARROW1", "arrow"), (b"PK\x03\x04", "pt")]
HF_FILES = ("state.json", "dataset_info.json")


def is_hf_dataset(path: Path) -> bool:
    """A `save_to_disk` folder: a Dataset (state.json, with dataset_info.json) or a DatasetDict.

    state.json alone is enough: a missing dataset_info.json is then reported as such by the reader,
    not as a folder of files of unknown type."""
    return path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / HF_FILES[0]).is_file())


UNKNOWN_TYPE = "unknown file type"


def detect_format(path: Path) -> str:
    """The reader for `path`: by suffix, else by the first bytes; unknown -> ReindexError.

    >>> detect_format(Path("train.parquet"))
    'parquet'
    """
    if is_hf_dataset(path):
        return "hf-dataset"
    check_regular(path, what="a dataset")
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is not None:
        return kind
    if path.is_file():
        with open(path, "rb") as f:
            head = f.read(8)
        for magic, kind in MAGIC:
            if head.startswith(magic):
                return kind
    raise ReindexError(UNKNOWN_TYPE, path=path,
                       hint="use .npy, .pt, .safetensors, .parquet, .arrow/.feather, .txt or a `save_to_disk` folder")


def output_name(path: Path) -> str:
    """Text is written as Parquet: `a.txt` -> `a.parquet`; every other file keeps its name."""
    return path.stem + ".parquet" if path.is_file() and detect_format(path) == "text" else path.name


def plan_outputs(inputs: Sequence[str | Path], out_dir: Path, *,
                 include: Sequence[str] = ()) -> list[tuple[Path, Path]]:
    """Expand files, directories and globs into (source, output) pairs; writes nothing.

    In a directory, only files matching an `include` glob (on the name or the path below the
    directory) are taken when `include` is given; otherwise files of unknown type are skipped
    with a note. A file named directly must be of a known type.

    plan_outputs(["a.npy", "corpus/"], Path("run/data"))
    [(a.npy, run/data/a.npy), (corpus/x.parquet, run/data/corpus/x.parquet), ...]
    """
    out_dir = Path(out_dir)
    pairs: list[tuple[Path, Path]] = []
    for item in inputs:
        path = Path(item)
        if path.exists():
            pairs += _expand(path, out_dir, include=include)
        elif glob.has_magic(str(item)):
            pairs += _expand_glob(str(item), out_dir, include=include)
        else:
            raise ReindexError("no such file or directory", path=path)
    seen: dict[Path, Path] = {}
    for source, output in pairs:
        if output in seen:
            raise ReindexError(f"{seen[output]} and {source} would both be written to {output}",
                               hint="rename one of them or remap them in separate calls")
        seen[output] = source
    return pairs


def _expand(path: Path, out_dir: Path, *, include: Sequence[str] = ()) -> list[tuple[Path, Path]]:
    """A file or a `save_to_disk` folder maps to out_dir/<name>; a plain directory is mirrored."""
    if not path.is_dir() or is_hf_dataset(path):
        detect_format(path)  # refuse an unknown type now, before anything is written
        return [(path, out_dir / output_name(path))]
    name = path.name or path.resolve().name
    pairs = []
    for root, dirs, files in os.walk(path):
        root_path = Path(root)
        dirs.sort()
        keep = []
        for d in dirs:
            if d.startswith("."):
                continue
            if is_hf_dataset(root_path / d):
                pairs.append(root_path / d)
            else:
                keep.append(d)
        dirs[:] = keep  # a dataset folder is one unit: do not descend into it
        pairs += [root_path / f for f in sorted(files) if not f.startswith(".")]
    result = []
    for source in sorted(pairs):
        if not _wanted(source, path, include):
            continue
        relative = source.relative_to(path).parent
        result.append((source, out_dir / name / relative / output_name(source)))
    return result


def _wanted(source: Path, tree: Path, include: Sequence[str]) -> bool:
    """Whether a file found in the directory `tree` is remapped (`--include`, else: a known type)."""
    if include:
        relative = source.relative_to(tree).as_posix()
        if not any(fnmatch.fnmatchcase(source.name, g) or fnmatch.fnmatchcase(relative, g) for g in include):
            return False
        detect_format(source)  # included by the user: an unknown type is an error
        return True
    if source.suffix.lower() in SUFFIXES:
        detect_format(source)  # a dataset by its name: a FIFO or a broken one is an error, not a skip
        return True
    try:
        detect_format(source)
    except ReindexError as e:
        if e.message != UNKNOWN_TYPE:  # a FIFO, say: refused, never skipped
            raise
        from .. import progress

        progress.note(f"note: skipping {source}: unknown file type (pass --include GLOB to choose files)")
        return False
    return True


def _expand_glob(pattern: str, out_dir: Path, *, include: Sequence[str] = ()) -> list[tuple[Path, Path]]:
    """Matches keep their path below the pattern's fixed prefix: `c/**/*.npy` -> out/<sub>/x.npy."""
    matches = sorted(Path(m) for m in glob.glob(pattern, recursive=True))
    if not matches:
        raise ReindexError("no file matches this pattern", path=pattern)
    parts = Path(pattern).parts
    fixed = Path(*[p for p in parts[: next(i for i, p in enumerate(parts) if glob.has_magic(p))]] or ["."])
    pairs = []
    for match in matches:
        relative = match.relative_to(fixed).parent if match.is_relative_to(fixed) else Path()
        for source, output in _expand(match, out_dir / relative, include=include):
            pairs.append((source, output))
    return pairs
