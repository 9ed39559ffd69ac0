"""JSON files as reindex writes and reads them: sorted keys, UTF-8, a final newline."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_json(path: Path, obj: Any) -> None:
    """Write JSON with sorted keys and a final newline (byte-stable for identical inputs)."""
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def read_json_or_none(path: Path) -> object:
    """The JSON value in `path`, or None when it is missing, unreadable or not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
