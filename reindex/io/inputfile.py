"""Input paths that must be regular files: a FIFO, socket or device would hang a reader or be read
as an endless stream, so it is refused up front with a one-line error.

`-` (standard input) is never refused here: commands that accept it handle it before calling.

    check_regular(Path("vocab.txt"), what="a vocabulary")
"""
from __future__ import annotations

import os
import stat

from ..errors import ReindexError

KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
         (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a directory"))


def check_regular(path: str | os.PathLike, *, what: str, allow_dir: bool = False) -> None:
    """Refuse a path that exists but is not a regular file (a directory too, unless `allow_dir`).

    A missing path passes: the reader's own "no such file" names the option to fix.
    """
    if os.fspath(path) == "-":
        return
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if stat.S_ISREG(mode) or (allow_dir and stat.S_ISDIR(mode)):
        return
    kind = next((name for test, name in KINDS if test(mode)), "not a regular file")
    raise ReindexError(f"is {kind}, not {what} file", path=path,
                       hint="pass a regular file (copy the stream to a file first)")
