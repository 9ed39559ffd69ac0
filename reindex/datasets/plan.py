"""Which files to remap and where to: formats by suffix or content, directories, globs, collisions."""
from __future__ import annotations

import fnmatch
import glob
import os
from dataclasses import dataclass, field
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


#: Formats whose files hold bare arrays: taken from a folder or glob only when their name says ids.
ARRAY_FORMATS = ("npy", "pt", "safetensors")
#: What an id file's name holds (case-insensitive), besides a `--column` name.
ID_NAME_WORDS = ("ids", "tokens")
NOT_IDS = ("not an id file by its name (a .npy/.pt/.safetensors file in a folder or glob is remapped when its "
           "name holds 'ids', 'tokens' or a --column name; pass --include GLOB or name it to take it)")


def is_id_name(path: Path, columns: Sequence[str] = ()) -> bool:
    """Whether a file's name says it holds ids: `input_ids.npy`, `train_tokens.pt`, or a `--column` name.

    >>> is_id_name(Path("input_ids.npy")), is_id_name(Path("labels.npy")), is_id_name(Path("labels.npy"), ["labels"])
    (True, False, True)
    """
    stem = path.name.lower()
    return any(word.lower() in stem for word in (*ID_NAME_WORDS, *columns))


@dataclass
class DataPlan:
    """The (source, output) pairs to remap and the files found but skipped, each with its reason."""

    pairs: list[tuple[Path, Path]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def plan_outputs(inputs: Sequence[str | Path], out_dir: Path, *, include: Sequence[str] = (),
                 columns: Sequence[str] = ("input_ids",)) -> list[tuple[Path, Path]]:
    """The (source, output) pairs of `plan_datasets`; writes nothing.

    plan_outputs(["a.npy", "corpus/"], Path("run/data"))
    [(a.npy, run/data/a.npy), (corpus/x.parquet, run/data/corpus/x.parquet), ...]
    """
    return plan_datasets(inputs, out_dir, include=include, columns=columns).pairs


def plan_datasets(inputs: Sequence[str | Path], out_dir: Path, *, include: Sequence[str] = (),
                  columns: Sequence[str] = ("input_ids",)) -> DataPlan:
    """Expand files, directories and globs into (source, output) pairs; writes nothing.

    A file named directly is always taken, and must be of a known type. In a directory, only files
    matching an `include` glob (on the name or the path below the directory) are taken when `include`
    is given; otherwise files of unknown type are skipped. A `.npy`/`.pt`/`.safetensors` file found in a
    directory or by a glob is taken only when its name says ids (`is_id_name`) or it matches `include`:
    a `labels.npy` beside `input_ids.npy` is skipped, never remapped for holding integers. Every skipped
    file gets a note. A directory or glob that yields no dataset is an error (ReindexError), never an
    empty output in silence.
    """
    planner = _Planner(Path(out_dir), tuple(include), tuple(columns))
    for item in inputs:
        path = Path(item)
        if path.exists():
            planner.expand(path, planner.out_dir)
        elif glob.has_magic(str(item)):
            planner.expand_glob(str(item))
        else:
            raise ReindexError("no such file or directory", path=path)
    seen: dict[Path, Path] = {}
    for source, output in planner.plan.pairs:
        if output in seen:
            raise ReindexError(f"{seen[output]} and {source} would both be written to {output}",
                               hint="rename one of them or remap them in separate calls")
        seen[output] = source
    from .. import progress

    for source, reason in planner.plan.skipped:
        progress.note(f"note: skipping {source}: {reason}")
    return planner.plan


def _files_below(path: Path) -> list[Path]:
    """Every file and `save_to_disk` folder below `path`, sorted; hidden ones left out."""
    found = []
    for root, dirs, files in os.walk(path):
        root_path = Path(root)
        dirs.sort()
        keep = []
        for d in dirs:
            if d.startswith("."):
                continue
            if is_hf_dataset(root_path / d):
                found.append(root_path / d)
            else:
                keep.append(d)
        dirs[:] = keep  # a dataset folder is one unit: do not descend into it
        found += [root_path / f for f in files if not f.startswith(".")]
    return sorted(found)


def _matches(source: Path, tree: Path, include: Sequence[str]) -> bool:
    relative = source.relative_to(tree).as_posix()
    return any(fnmatch.fnmatchcase(source.name, g) or fnmatch.fnmatchcase(relative, g) for g in include)


@dataclass
class _Planner:
    out_dir: Path
    include: tuple[str, ...]
    columns: tuple[str, ...]
    plan: DataPlan = field(default_factory=DataPlan)

    def skip(self, source: Path, reason: str) -> None:
        self.plan.skipped.append((source, reason))  # noted once the plan stands: a refusal is one line

    def expand(self, path: Path, out_dir: Path, *, by_glob: bool = False) -> int:
        """Plan one DATA item (a file, a `save_to_disk` folder or a directory); returns the pairs added."""
        if not path.is_dir() or is_hf_dataset(path):
            kind = detect_format(path)  # refuse an unknown type now, before anything is written
            if by_glob and kind in ARRAY_FORMATS and not is_id_name(path, self.columns) \
                    and not _matches(path, path.parent, self.include):
                self.skip(path, NOT_IDS)
                return 0
            self.plan.pairs.append((path, out_dir / output_name(path)))
            return 1
        name = path.name or path.resolve().name
        before, skipped = len(self.plan.pairs), len(self.plan.skipped)
        for source in _files_below(path):
            if self._wanted(source, path):
                relative = source.relative_to(path).parent
                self.plan.pairs.append((source, out_dir / name / relative / output_name(source)))
        if len(self.plan.pairs) == before:
            raise _empty(path, "directory", self.include, self.plan.skipped[skipped:])
        return len(self.plan.pairs) - before

    def _wanted(self, source: Path, tree: Path) -> bool:
        """Whether a file found in the directory `tree` is remapped (`--include`, else a known id file)."""
        if self.include:
            if not _matches(source, tree, self.include):
                return False
            detect_format(source)  # included by the user: an unknown type is an error
            return True
        if source.suffix.lower() in SUFFIXES:
            kind = detect_format(source)  # a dataset by its name: a FIFO or a broken one is an error, not a skip
        else:
            try:
                kind = detect_format(source)
            except ReindexError as e:
                if e.message != UNKNOWN_TYPE:  # a FIFO, say: refused, never skipped
                    raise
                self.skip(source, "unknown file type (pass --include GLOB to choose files)")
                return False
        if kind in ARRAY_FORMATS and not is_id_name(source, self.columns):
            self.skip(source, NOT_IDS)
            return False
        return True

    def expand_glob(self, pattern: str) -> None:
        """Matches keep their path below the pattern's fixed prefix: `c/**/*.npy` -> out/<sub>/x.npy."""
        matches = sorted(Path(m) for m in glob.glob(pattern, recursive=True))
        if not matches:
            raise ReindexError("no file matches this pattern", path=pattern)
        parts = Path(pattern).parts
        fixed = Path(*[p for p in parts[: next(i for i, p in enumerate(parts) if glob.has_magic(p))]] or ["."])
        skipped, added = len(self.plan.skipped), 0
        for match in matches:
            relative = match.relative_to(fixed).parent if match.is_relative_to(fixed) else Path()
            added += self.expand(match, self.out_dir / relative, by_glob=True)
        if not added:
            raise _empty(Path(pattern), "pattern", self.include, self.plan.skipped[skipped:])


def _empty(path: Path, what: str, include: Sequence[str], skipped: Sequence[tuple[Path, str]]) -> ReindexError:
    """The one line for a directory or glob that yields no dataset."""
    if include and what == "directory":
        return ReindexError(f"no file in this directory matches --include {' '.join(include)}", path=path,
                            hint="a GLOB matches a file's name or its path below the directory")
    names = ", ".join(p.name for p, _ in skipped[:3]) + (", ..." if len(skipped) > 3 else "")
    found = f": {len(skipped)} file(s) skipped ({names})" if skipped else ""
    return ReindexError(f"no dataset in this {what}{found}", path=path,
                        hint="pass --include GLOB to choose files, or name them directly")
