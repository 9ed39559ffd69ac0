"""Which `--out` a command may write: never over an input, and over an existing path only with
`--force` when it is an earlier output of the same kind that reindex wrote.

    check_output("runs/x", kind="run", force=True, inputs=inputs)   # inputs: a reindex.io.inputs.Inputs

Kinds: "run" (`build`: a directory whose manifest.json says `reindex.run`), "datasets" (`remap`,
`invert`: a directory holding the `MARKER` file they write), "export" (a regular file in one of
the formats `export` writes). Anything else is refused with a usage error (exit 2), one line.
"""
from __future__ import annotations

import errno
import json
import os
import struct
from pathlib import Path
from typing import Callable

from ..errors import UsageError
from ..formats import (
    DATASETS_FORMAT,
    DATASETS_MARKER,
    EXPORT_FORMAT,
    FORMAT_VERSION,
    MANIFEST_FILE,
    PLOT_FORMAT,
    RUN_FORMAT,
)
from .inputs import Inputs
from .jsonfile import read_json_or_none, write_json

#: Written into every `remap`/`invert` output directory: what wrote it (a dot-name, so listing the
#: directory as a dataset skips it).
MARKER = DATASETS_MARKER


def _marked_directory(path: Path, name: str, format: str, what: str) -> str | None:
    """None if `path` is a directory whose JSON file `name` says `format`, else why not."""
    if not path.is_dir():
        return "it is not a directory"
    found = read_json_or_none(path / name)
    if not isinstance(found, dict) or found.get("format") != format:
        return f"it is not {what} (no reindex {name})"
    return None


def _is_run(path: Path) -> str | None:
    """None if `path` is a run directory written by `reindex build`, else why not."""
    return _marked_directory(path, MANIFEST_FILE, RUN_FORMAT, "a run directory written by `reindex build`")


def _is_datasets(path: Path) -> str | None:
    """None if `path` is a directory written by `reindex remap` or `invert`, else why not."""
    return _marked_directory(path, MARKER, DATASETS_FORMAT, "a directory written by `reindex remap` or `invert`")


def _file_head(path: Path) -> tuple[bytes, str | None]:
    """(the first 64 KiB of the regular file `path`, None), or (b"", why it cannot be read)."""
    if not path.is_file():
        return b"", "it is not a regular file"
    try:
        with open(path, "rb") as f:
            return f.read(1 << 16), None
    except OSError as e:
        return b"", f"it cannot be read ({e.strerror})"


def _is_export(path: Path) -> str | None:
    """None if `path` is a regular file in a format `reindex export` writes, else why not."""
    if path.is_dir():
        return "it is a directory (export writes one file)"
    head, why = _file_head(path)
    if why is not None:
        return why
    if safetensors_format(head) == EXPORT_FORMAT:
        return None
    try:
        if os.getxattr(path, EXPORT_XATTR) == EXPORT_FORMAT.encode():
            return None
    except AttributeError:  # no xattrs on this system: go by the content
        return None if looks_like_export(head) else NOT_AN_EXPORT
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS) and looks_like_export(head):
            return None  # a file system without xattrs: go by the content
    return NOT_AN_EXPORT


NOT_AN_EXPORT = "it is not an embedding file written by `reindex export`"
#: Set on every file `export` writes (kept by renames, lost by copies), so that `--force` can tell
#: an earlier export from a user's GloVe file, which reads the same. Safetensors exports also say
#: so in their metadata. Where the file system has no extended attributes, the content decides.
EXPORT_XATTR = "user.reindex.format"


def mark_export(path: str | os.PathLike) -> None:
    """Mark `path` as written by `export` (best effort: a file system may not keep xattrs)."""
    mark(path, EXPORT_FORMAT)


def looks_like_export(head: bytes) -> bool:
    """True if `head` (a file's first bytes) starts like a file `export` writes.

    >>> looks_like_export(b"2 3\\nthe 1 2 3\\n"), looks_like_export(b"my notes\\n")
    (True, False)
    """
    if head.startswith(b"\x93NUMPY"):
        return b"'descr': '<f4'" in head[:256]
    written = safetensors_format(head)
    if written is not None:
        return written == EXPORT_FORMAT
    first = head.split(b"\n", 1)[0]
    fields = first.split(b" ")
    if len(fields) == 2 and all(f.isdigit() for f in fields):
        return True  # the `N D` header of word2vec text and binary
    if len(fields) >= 2 and b"\n" in head:  # glove: a token, then the vector
        try:
            [float(f) for f in fields[1:]]
        except ValueError:
            return False
        return True
    return False


def safetensors_format(head: bytes) -> str | None:
    """The `format` in the metadata of a safetensors file starting with `head` ("" if none);
    None if `head` is not the start of a safetensors file."""
    if len(head) < 10:
        return None
    (length,) = struct.unpack("<Q", head[:8])
    if not 2 <= length <= len(head) - 8:
        return None
    try:
        header = json.loads(head[8:8 + length])
    except (ValueError, RecursionError):
        return None
    if not isinstance(header, dict):
        return None
    metadata = header.get("__metadata__")
    return str(metadata.get("format", "")) if isinstance(metadata, dict) else ""


#: The first bytes of each image format `inspect --plot` writes, by suffix.
IMAGE_MAGIC = {".png": (b"\x89PNG",), ".pdf": (b"%PDF",), ".svg": (b"<?xml", b"<svg"), ".svgz": (b"\x1f\x8b",),
               ".jpg": (b"\xff\xd8",), ".jpeg": (b"\xff\xd8",), ".tif": (b"II*", b"MM\x00*"),
               ".tiff": (b"II*", b"MM\x00*"), ".webp": (b"RIFF",), ".eps": (b"%!PS",), ".ps": (b"%!PS",)}


def _is_plot(path: Path) -> str | None:
    """None if `path` is an earlier `inspect --plot` image (marked, or, without xattrs, an image)."""
    if not path.is_file():
        return "it is not a regular file"
    try:
        if os.getxattr(path, EXPORT_XATTR) == PLOT_FORMAT.encode():
            return None
    except AttributeError:
        pass
    except OSError as e:
        if e.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS):
            return "it is not a plot written by `reindex inspect --plot`"
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        return f"it cannot be read ({e.strerror})"
    if head.startswith(IMAGE_MAGIC.get(path.suffix.lower(), (b"\0\0\0\0\0",))) and not _has_xattrs(path):
        return None
    return "it is not a plot written by `reindex inspect --plot`"


def _has_xattrs(path: Path) -> bool:
    try:
        os.listxattr(path)
    except (AttributeError, OSError):
        return False
    return True


def mark(path: str | os.PathLike, format: str) -> None:
    """Mark `path` as written by reindex (`format`); best effort: a file system may not keep xattrs."""
    try:
        os.setxattr(path, EXPORT_XATTR, format.encode())
    except (AttributeError, OSError):
        pass


REPLACEABLE: dict[str, Callable[[Path], str | None]] = {
    "run": _is_run, "datasets": _is_datasets, "export": _is_export,
    "plot": _is_plot}
WHAT = {"run": "an earlier run", "datasets": "an earlier remap/invert output",
        "export": "an earlier export file",
        "plot": "an earlier plot"}


def refusal(out: Path, *, kind: str) -> str | None:
    """Why `--force` may not replace the existing `out` (None: it may)."""
    if out.is_symlink():
        return f"refusing to replace {out}: it is a symbolic link (give the path it points to)"
    why = REPLACEABLE[kind](out)
    if why is None:
        return None
    if kind == "plot":
        return f"refusing to replace {out}: {why} (choose another --plot)"
    return f"refusing to replace {out}: {why}; --force replaces only {WHAT[kind]}"


def replacer(kind: str) -> Callable[[Path], str | None]:
    """The `replace` argument of `atomic_directory`/`atomic_file` for outputs of `kind`."""
    return lambda out: refusal(out, kind=kind)


def _real(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(path))


def _same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True if `a` and `b` are one file (a hard link counts); False if either cannot be looked at."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output(out: str | os.PathLike, *, kind: str, force: bool, inputs: Inputs, option: str = "--out") -> None:
    """Refuse (UsageError, exit 2) an `out` that is, holds or lies inside a registered input, or that
    exists and may not be replaced. Symlinks and `..` are resolved before comparing."""
    out = Path(out)
    real = _real(out)
    for _, given in inputs:
        source = _real(given)
        if source == real or _same_file(out, given):
            relation = "is"
        elif source in real.parents:
            relation = "lies inside"
        elif real in source.parents:
            relation = "contains"
        else:
            continue
        raise UsageError(f"{option} {out} {relation} the input {given}",
                         hint=f"choose another {option}: reindex never writes over its inputs")
    if not os.path.lexists(out):
        return
    if not force:
        raise UsageError(f"{out} already exists", hint="choose another --out or pass --force")
    reason = refusal(out, kind=kind)
    if reason is not None:
        raise UsageError(reason)


def write_marker(directory: Path, *, command: str, run: str | os.PathLike, skipped: list | None = None) -> None:
    """Mark `directory` as a `remap`/`invert` output, so a later `--force` may replace it; `skipped`
    lists the files found in DATA folders or globs that were not remapped."""
    write_json(directory / MARKER, {"format": DATASETS_FORMAT, "format_version": FORMAT_VERSION,
                                    "command": command, "run": str(run), **({"skipped": skipped} if skipped else {})})
