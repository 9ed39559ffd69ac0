"""Atomic outputs: build under a temporary sibling `.NAME.tmp-*`, rename to NAME only when complete.

Nothing half-written is ever visible under the final name. A process killed with SIGKILL cannot
clean up, so its temporary sibling stays behind; each writer holds an advisory lock (`flock`) on its
temporary while it works, and the next write into the same parent directory removes the siblings
whose lock is free (their writer is gone).

    with atomic_directory("runs/demo", force=True) as tmp:   # tmp = runs/.demo.tmp-XXXX
        (tmp / "a.txt").write_text("...")                     # runs/demo appears (or is replaced) here
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import ReindexError, UsageError


def _lock(path: Path, *, wait: bool) -> int | None:
    """An fd holding an exclusive flock on `path`, or None if another process holds it."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): never treat a sibling as stale
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except OSError:
        os.close(fd)
        return None
    return fd


def _unlock(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)


def remove_stale(final: Path) -> list[Path]:
    """Remove `.NAME.tmp-*` siblings of `final` that no live writer holds; return them."""
    removed = []
    for sibling in sorted(final.parent.glob(f".{final.name}.tmp-*")):
        try:
            fd = _lock(sibling, wait=False)
        except OSError:
            continue
        if fd is None:
            continue  # a live writer holds it
        try:
            if sibling.is_dir() and not sibling.is_symlink():
                shutil.rmtree(sibling, ignore_errors=True)
            else:
                sibling.unlink(missing_ok=True)
            removed.append(sibling)
        finally:
            _unlock(fd)
    return removed


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False  # a file system without exchange: fall back to two renames
    raise OSError(code, os.strerror(code), str(b))


def _publish(temporary: Path, final: Path) -> None:
    """Move the complete `temporary` to `final`, replacing a previous `final` if there is one."""
    if not final.exists():
        os.rename(temporary, final)
    elif _exchange(temporary, final):
        # The previous output now sits under the temporary name: never visible as `final`.
        shutil.rmtree(temporary, ignore_errors=True) if temporary.is_dir() else temporary.unlink()
    elif temporary.is_dir():
        # No atomic swap: `final` is missing for the instant between these two renames.
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
        os.rename(final, old / final.name)
        os.rename(temporary, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(temporary, final)


def _write_error(e: OSError, temporary: Path, final: Path) -> ReindexError:
    """One line saying why a write failed, naming the file as it would have been called."""
    where = os.fsdecode(e.filename) if e.filename else str(final)
    if where.startswith(str(temporary)):
        where = str(final) + where[len(str(temporary)):]
    reason = e.strerror or str(e) or type(e).__name__
    return ReindexError(f"cannot write: {reason}; nothing was written to {final}", path=where,
                        hint="free some space or choose another --out" if e.errno in (errno.ENOSPC, errno.EFBIG,
                                                                                      errno.EDQUOT) else None)


@contextlib.contextmanager
def _atomic(final: str | os.PathLike, *, force: bool, directory: bool) -> Iterator[Path]:
    final = Path(final)
    if final.exists() and not force:
        raise UsageError(f"{final} already exists", hint="choose another --out or pass --force")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(final)
        if directory:
            temporary = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
        else:
            fd, name = tempfile.mkstemp(prefix=f".{final.name}.tmp-", dir=final.parent)
            os.close(fd)
            temporary = Path(name)
        lock = _lock(temporary, wait=True)
    except OSError as e:
        raise ReindexError(f"cannot create the output: {e.strerror or e}", path=e.filename or final) from e
    try:
        yield temporary
        _publish(temporary, final)
    except BaseException as e:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        else:
            temporary.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise _write_error(e, temporary, final) from e
        raise
    finally:
        _unlock(lock)


def atomic_directory(final: str | os.PathLike, *, force: bool = False) -> contextlib.AbstractContextManager[Path]:
    """Yield a fresh temporary sibling directory of `final`; rename it to `final` if the block succeeds.

    A failed or interrupted write leaves no `final` (or the previous complete one, with `force`).
    """
    return _atomic(final, force=force, directory=True)


def atomic_file(final: str | os.PathLike, *, force: bool = False) -> contextlib.AbstractContextManager[Path]:
    """Like `atomic_directory`, for one file: write the yielded path, it becomes `final` on success."""
    return _atomic(final, force=force, directory=False)
