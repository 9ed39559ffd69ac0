"""RUN/manifest.json read back and checked for shape before any command uses a value of it.

A manifest edited by hand (or by another program) may hold a list where an object belongs, a string
where a count belongs. Each such value is refused here, in one line naming the file and the key
(`counts.pad_id`, `datasets[2].output`), instead of a `TypeError` wherever it is first used.
Keys a run may lack (runs written by hand, older runs) are checked only when present.

    manifest = read_manifest(Path("runs/demo"))
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ReindexError
from ..formats import FORMAT_VERSION, MANIFEST_FILE, RUN_FORMAT

HINT = "the run directory was modified; rebuild it with `reindex build`"

# What each key holds: a JSON kind, or a nested table of the same form. `int?` may also be null.
ENTRY = {"path": "str", "size": "int", "sha256": "str"}
SCHEMA: dict[str, Any] = {
    "format": "str",
    "format_version": "int",
    "counts": {"vocab": "int", "fixed": "int", "trainable": "int", "dim": "int", "pad_id": "int?",
               "old_vocab": "int?", "vectors_read": "int?", "lowercase_matches": "int",
               "duplicate_vectors_skipped": "int", "fallback": "object", "fallback_matches": "list",
               "init_rows": "object?"},
    "options": {"columns": "list", "ignore_index": "list?"},
    "inputs": "object",
    "datasets": "list",
    "outputs": "list",
}
DATASET = {"output": "str", "num_ids": "int", "num_rows": "int"}
KINDS = {"str": (str,), "int": (int,), "object": (dict,), "list": (list,)}


def read_manifest(run: Path, *, strict: bool = False, vocab_size: int | None = None) -> dict[str, Any]:
    """The manifest of the run directory `run`, checked by `check_manifest`."""
    path = run / MANIFEST_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise ReindexError(f"no {MANIFEST_FILE}", path=run, hint="is this a run directory?") from e
    except UnicodeDecodeError as e:
        raise ReindexError(f"invalid JSON: {e}", path=path) from e
    except OSError as e:
        raise ReindexError(f"cannot read: {e.strerror or e}", path=path) from e
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as e:
        raise ReindexError(f"invalid JSON: {e}", path=path) from e
    except RecursionError as e:  # JSON nested deeper than Python's stack: no manifest reindex wrote
        raise ReindexError("invalid JSON: nested too deeply", path=path) from e
    return check_manifest(manifest, path=path, strict=strict, vocab_size=vocab_size)


def check_manifest(manifest: object, *, path: Path, strict: bool = False,
                   vocab_size: int | None = None) -> dict[str, Any]:
    """`manifest` if every value has the shape `build` writes, else a `ReindexError` naming the key.

    `strict` (for `verify`) also requires `format` and `format_version`; `vocab_size` bounds `pad_id`.

    >>> check_manifest({"counts": {"pad_id": None}}, path=Path("manifest.json"))
    {'counts': {'pad_id': None}}
    >>> check_manifest({"counts": [1]}, path=Path("m.json"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    reindex.errors.ReindexError: m.json: `counts` is a list, expected an object (...)
    """
    if not isinstance(manifest, dict):
        raise ReindexError(f"holds {_kind(manifest)}, expected an object", path=path, hint=HINT)
    _check_table(manifest, SCHEMA, "", path)
    for i, entry in enumerate(manifest.get("datasets", [])):
        _check_table(_object(entry, f"datasets[{i}]", path), DATASET, f"datasets[{i}].", path)
    for i, entry in enumerate(manifest.get("outputs", [])):
        _check_table(_object(entry, f"outputs[{i}]", path), ENTRY, f"outputs[{i}].", path)
    for name, value in manifest.get("inputs", {}).items():
        for i, entry in enumerate(value if isinstance(value, list) else [value]):
            where = f"inputs.{name}" + (f"[{i}]" if isinstance(value, list) else "")
            if entry is not None:
                _check_table(_object(entry, where, path), {"path": "str"}, where + ".", path)
    options = manifest.get("options", {})
    _each(options.get("columns") or [], str, "options.columns", path)
    _each(options.get("ignore_index") or [], int, "options.ignore_index", path)
    check_format(manifest, path=path, strict=strict)
    pad = manifest.get("counts", {}).get("pad_id")
    if pad is not None and vocab_size is not None and not 0 <= pad < vocab_size:
        raise ReindexError(f"`counts.pad_id` is {pad}, outside the run's {vocab_size} ids", path=path, hint=HINT)
    return manifest


def check_format(manifest: dict[str, Any], *, path: Path, strict: bool) -> None:
    """Refuse another program's manifest, or one a newer reindex wrote (its meaning may have changed);
    with `strict`, also one that does not say what it is."""
    if "format" in manifest and manifest["format"] != RUN_FORMAT:
        raise ReindexError(f"`format` is {manifest['format']!r}, not {RUN_FORMAT!r}", path=path,
                           hint="this is not a run directory written by `reindex build`")
    version = manifest.get("format_version")
    if version is not None and version > FORMAT_VERSION:
        raise ReindexError(f"`format_version` is {version}; this reindex reads up to {FORMAT_VERSION}",
                           path=path, hint="a newer reindex wrote this run; upgrade: pip install -U reindex-vocab")
    if version is not None and version < 1:
        raise ReindexError(f"`format_version` is {version}; versions start at 1", path=path, hint=HINT)
    if strict:
        missing = [key for key in ("format", "format_version") if key not in manifest]
        if missing:
            raise ReindexError(f"no `{missing[0]}`: not a manifest reindex wrote", path=path, hint=HINT)


def _check_table(table: dict[str, Any], schema: dict[str, Any], prefix: str, path: Path) -> None:
    for key, expected in schema.items():
        if key not in table:
            continue
        value, where = table[key], prefix + key
        if isinstance(expected, dict):
            _check_table(_object(value, where, path), expected, where + ".", path)
            continue
        if value is None and expected.endswith("?"):
            continue
        kind = expected.rstrip("?")
        negative = isinstance(value, int) and value < 0
        if not isinstance(value, KINDS[kind]) or isinstance(value, bool) or (kind == "int" and negative):
            wanted = {"str": "a string", "int": "a count (an integer >= 0)", "object": "an object",
                      "list": "a list"}[kind]
            raise ReindexError(f"`{where}` is {_kind(value)}, expected {wanted}", path=path, hint=HINT)


def _object(value: object, where: str, path: Path) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ReindexError(f"`{where}` is {_kind(value)}, expected an object", path=path, hint=HINT)
    return value


def _each(values: list[Any], kind: type, where: str, path: Path) -> None:
    for i, value in enumerate(values):
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ReindexError(f"`{where}[{i}]` is {_kind(value)}, expected {'a string' if kind is str else 'an integer'}",
                               path=path, hint=HINT)


def _kind(value: object) -> str:
    """How JSON calls a value, with the value itself when short.

    >>> _kind([1, 2]), _kind("x"), _kind(None), _kind(-1)
    ('a list', "the string 'x'", 'null', 'the number -1')
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else type(value).__name__
