"""Why a write failed, in one line that names the output as the user asked for it.

Writers report a full disk in their own words: OSError errno 28 (numpy, pyarrow, Python), "os error
28" (safetensors), "[errno 28]" inside a reader's wrapper (pyarrow's Parquet and Arrow writers share
a try with their readers); `disk_full` finds the reason anywhere in an error's chain, so a failed
write is never reported as a problem reading the input.
"""
from __future__ import annotations

import errno
import os
import re
from pathlib import Path

from ..errors import ReindexError

_DISK_FULL = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
              errno.EFBIG: "file too large"}
_DISK_FULL_TEXT = re.compile(r"os error (\d+)|\[errno (\d+)\]|(no space left on device)|(disk quota exceeded)"
                             r"|(file too large)", re.IGNORECASE)


OS_ERROR_TEXT = re.compile(r"os error \d+|\[errno \d+\]", re.IGNORECASE)


def disk_full(error: BaseException) -> str | None:
    """"no space left on device" (or quota, file size) if that is why `error` (or its cause) happened.

    Writers report it in their own words: OSError errno 28 (numpy, pyarrow), "os error 28"
    (safetensors), and so a write error is told apart from a read error whatever wraps it.

    >>> disk_full(OSError(28, "No space left on device"))
    'no space left on device'
    """
    seen = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _DISK_FULL:
            return _DISK_FULL[current.errno]
        for match in _DISK_FULL_TEXT.finditer(str(current)):
            number = match.group(1) or match.group(2)
            if number is None:
                return next(g for g in match.groups()[2:] if g).lower()
            if int(number) in _DISK_FULL:
                return _DISK_FULL[int(number)]
        current = current.__cause__ or current.__context__
    return None


def write_error(e: BaseException, temporary: Path, final: Path) -> ReindexError:
    """One line saying why a write failed, naming the file as it would have been called."""
    filename = getattr(e, "filename", None)
    where = user_path(os.fsdecode(filename) if filename else str(final), temporary, final)
    reason = disk_full(e)
    if reason is not None:
        return ReindexError(f"cannot write: {reason}; nothing was written to {final}", path=where,
                            hint="free some space or choose another --out")
    reason = (getattr(e, "strerror", None) or str(e) or type(e).__name__)
    return ReindexError(f"cannot write: {reason}; nothing was written to {final}", path=where)


def user_path(text: str, temporary: Path, final: Path) -> str:
    """`text` with the temporary's name replaced by the name the user asked for."""
    return text.replace(str(temporary), str(final))
