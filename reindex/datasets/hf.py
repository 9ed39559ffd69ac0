"""Hugging Face `save_to_disk` folders (a Dataset, or a DatasetDict of split folders), with pyarrow alone.

A Dataset folder holds Arrow stream files listed in state.json, plus dataset_info.json (features).
The output gets the same files, remapped, and a new `_fingerprint` in state.json, so `datasets`
does not mistake it for the input in its caches.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, TypeGuard

from ..errors import ReindexError
from ..io.inputfile import check_regular
from ..io.jsonfile import write_json
from .arrow import update_features
from .core import FileReport, RemapSpec
from .ipc import remap_ipc


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a `save_to_disk` folder; anything else is a one-line error naming the file."""
    check_regular(path, what="a JSON")  # a FIFO would block the read
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ReindexError("missing file of a `save_to_disk` folder", path=path) from e
    except json.JSONDecodeError as e:
        raise ReindexError(f"invalid JSON: {e.msg}", path=path, line=e.lineno,
                           hint="rewrite the folder with datasets' save_to_disk") from e
    except UnicodeDecodeError as e:
        raise ReindexError(f"invalid UTF-8 at byte {e.start}", path=path) from e
    except RecursionError:
        raise ReindexError("invalid JSON: nested too deeply", path=path) from None
    except OSError as e:
        raise ReindexError(f"cannot read: {e.strerror or e}", path=path) from e
    if not isinstance(obj, dict):
        raise ReindexError(f"expected a JSON object, got {type(obj).__name__}", path=path,
                           hint="rewrite the folder with datasets' save_to_disk")
    return obj


def data_files(source: Path) -> list[str]:
    """The Arrow files a Dataset folder's state.json lists, refusing anything but plain file names."""
    state = _read_json(source / "state.json")
    _check_state(state, source / "state.json")
    entries = state.get("_data_files")
    if not isinstance(entries, list):
        entries = []  # refused below, as no files
    names = [e.get("filename") for e in entries if isinstance(e, dict)]
    files: list[str] = [f for f in names if _plain_name(f)]  # a name that is not plain makes the count differ
    if not files or len(files) != len(entries):
        raise ReindexError("state.json lists no usable `_data_files` (a list of {\"filename\": NAME})",
                           path=source / "state.json", hint="rewrite the folder with datasets' save_to_disk")
    missing = [f for f in files if not (source / f).exists()]
    if missing:
        raise ReindexError(f"state.json lists {missing[0]!r}, which is missing", path=source / "state.json",
                           hint="the folder is incomplete; copy it again or rewrite it with save_to_disk")
    if len(set(files)) != len(files):
        raise ReindexError("state.json lists a data file twice", path=source / "state.json",
                           hint="its rows would be read twice; rewrite the folder with save_to_disk")
    return files


def split_names(source: Path) -> list[str]:
    """The split folders a DatasetDict's dataset_dict.json lists."""
    splits = _read_json(source / "dataset_dict.json").get("splits")
    if not isinstance(splits, list) or not all(_plain_name(s) for s in splits):
        raise ReindexError("expected `splits`: a list of plain split names", path=source / "dataset_dict.json",
                           hint="a split name must not hold '/' or be '.' or '..'")
    if len(set(splits)) != len(splits):
        raise ReindexError(f"split {next(s for i, s in enumerate(splits) if s in splits[:i])!r} is listed twice",
                           path=source / "dataset_dict.json", hint="its rows would be counted twice; list it once")
    return splits


def hf_arrow_files(source: Path) -> list[Path]:
    """Every Arrow file of a Dataset or DatasetDict folder, its JSON files checked on the way."""
    if (source / "dataset_dict.json").is_file():
        return [f for split in split_names(source) for f in hf_arrow_files(source / split)]
    _read_json(source / "dataset_info.json")
    return [source / name for name in data_files(source)]


#: The other keys `datasets.load_from_disk` reads from state.json, and the JSON types it takes.
STATE_KEYS: dict[str, tuple[type, ...]] = {"_fingerprint": (str,), "_split": (str, type(None)),
                                           "_format_type": (str, type(None)), "_format_kwargs": (dict,),
                                           "_format_columns": (list, type(None)), "_output_all_columns": (bool,)}


def _check_state(state: dict[str, Any], path: Path) -> None:
    """Refuse a state.json key that `datasets` could not load (the output would carry it on)."""
    for key, kinds in STATE_KEYS.items():
        if key in state and not isinstance(state[key], kinds):
            raise ReindexError(f"`{key}` is {type(state[key]).__name__}, expected "
                               f"{' or '.join(k.__name__.replace('NoneType', 'null') for k in kinds)}", path=path,
                               hint="rewrite the folder with datasets' save_to_disk")


def _plain_name(name: object) -> TypeGuard[str]:
    """A file or split name that stays inside its folder: no separator, not `.`/`..`, not absolute."""
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name


def fingerprint(old: str, spec: RemapSpec) -> str:
    """A new fingerprint that depends only on the old one and the remap (deterministic output).

    >>> import numpy as np
    >>> len(fingerprint("abc", RemapSpec(np.arange(3))))
    16
    """
    digest = hashlib.sha256(str(old).encode())
    digest.update(spec.table.astype("<i8").tobytes())
    digest.update(repr((spec.columns, spec.id_dtype)).encode())
    return digest.hexdigest()[:16]


def remap_hf_dataset(source: Path, output: Path, spec: RemapSpec) -> FileReport:
    """Remap a `save_to_disk` Dataset or DatasetDict folder into `output`.

    remap_hf_dataset(Path("ds"), Path("out/ds"), spec).format
    'hf-dataset'
    """
    if (source / "dataset_dict.json").is_file():
        splits = split_names(source)
        output.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / "dataset_dict.json", output / "dataset_dict.json")
        reports = [_remap_split(source / s, output / s, spec) for s in splits]
        return FileReport(source, output, "hf-dataset", sum(r.num_ids for r in reports),
                          sum(r.num_rows for r in reports))
    return _remap_split(source, output, spec)


def _remap_split(source: Path, output: Path, spec: RemapSpec) -> FileReport:
    state = _read_json(source / "state.json")
    info = _read_json(source / "dataset_info.json")
    files = data_files(source)
    output.mkdir(parents=True, exist_ok=True)
    num_ids = num_rows = 0
    for name in files:
        report = remap_ipc(source / name, output / name, spec)
        num_ids, num_rows = num_ids + report.num_ids, num_rows + report.num_rows
    if spec.id_dtype is not None and isinstance(info.get("features"), dict):
        update_features(info["features"], spec.columns, spec.id_dtype)
    state["_fingerprint"] = fingerprint(state.get("_fingerprint", ""), spec)
    write_json(output / "dataset_info.json", info)
    write_json(output / "state.json", state)
    return FileReport(source, output, "hf-dataset", num_ids, num_rows)
