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
import signal
import sys
import tempfile
import threading
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


def _publish(temporary: Path, final: Path) -> Path | None:
    """Move the complete `temporary` to `final`; return where the previous `final` went (to delete)."""
    if not final.exists():
        os.rename(temporary, final)
        return None
    if _exchange(temporary, final):
        return temporary  # the previous output now sits under the temporary name, never as `final`
    if temporary.is_dir():
        # No atomic swap: `final` is missing for the instant between these two renames.
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
        os.rename(final, old / final.name)
        os.rename(temporary, final)
        return old
    os.replace(temporary, final)
    return None


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
def _signals_held() -> Iterator[None]:
    """Defer SIGINT/SIGTERM over a few system calls, so an interrupt cannot fall between them.

    Blocking the signal (pthread_sigmask) is not enough: another thread (pyarrow's, numpy's) would
    take it and Python would still raise in the main thread. So the handlers are swapped for one
    that only takes note, and the original handler runs when the block ends.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda number, frame: caught.append(number))
                for sig in held if signal.getsignal(sig) is not None}  # None: a handler set outside Python
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if caught:
            handler = previous[caught[0]]
            if callable(handler):
                handler(caught[0], None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(caught[0])


def _create(final: Path, *, directory: bool) -> tuple[Path, int | None]:
    """A new temporary sibling of `final`, locked: (path, lock fd)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(final)
    if directory:
        temporary = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{final.name}.tmp-", dir=final.parent)
        os.close(fd)
        temporary = Path(name)
    return temporary, _lock(temporary, wait=True)


def _remove(temporary: Path) -> None:
    if temporary.is_dir() and not temporary.is_symlink():
        shutil.rmtree(temporary, ignore_errors=True)
    else:
        temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def _atomic(final: str | os.PathLike, *, force: bool, directory: bool) -> Iterator[Path]:
    final = Path(final)
    if final.exists() and not force:
        raise UsageError(f"{final} already exists", hint="choose another --out or pass --force")
    temporary, lock = None, None
    try:
        try:
            with _signals_held():  # an interrupt lands before or after, never between creation and `try`
                temporary, lock = _create(final, directory=directory)
        except OSError as e:
            raise ReindexError(f"cannot create the output: {e.strerror or e}",
                               path=e.filename or final) from e
        yield temporary
        with _signals_held():
            previous = _publish(temporary, final)
            temporary = None
        if previous is not None:
            _remove(previous)
    except BaseException as e:
        if temporary is not None:
            _remove(temporary)
        if isinstance(e, OSError) and temporary is not None:
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
