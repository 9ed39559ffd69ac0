"""Atomic outputs: build under a temporary sibling `.NAME.tmp-XXXXXXXX`, rename to NAME only when complete.

Nothing half-written is ever visible under the final name. Without `force` the rename refuses an
existing NAME atomically (RENAME_NOREPLACE), so of two writers racing for one NAME exactly one
wins; with `force`, only a NAME that `replace` accepts is swapped out (RENAME_EXCHANGE).

A process killed with SIGKILL cannot clean up, so its temporary sibling stays behind (never under
NAME). Each writer holds an advisory lock (`flock`) on its temporary while it works; the next write
of the same NAME in the same directory removes, when it starts, the siblings named exactly
`.NAME.tmp-XXXXXXXX` whose lock is free (their writer is gone). Nothing else removes them.

    with atomic_directory("runs/demo") as tmp:   # tmp = runs/.demo.tmp-XXXXXXXX
        (tmp / "a.txt").write_text("...")         # runs/demo appears here, complete
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import Callable, Iterator

from ..errors import ReindexError, UsageError
from .write_error import OS_ERROR_TEXT, disk_full, user_path, write_error


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


#: The temporaries' names: `.NAME.tmp-` and 8 random characters. Only names of exactly this form
#: are ever removed as stale, so a user's own `.NAME.tmp-notes` is never touched.
TEMP_SUFFIX_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"


def _is_temporary_name(name: str, final: Path) -> bool:
    prefix = f".{final.name}.tmp-"
    rest = name[len(prefix):]
    return name.startswith(prefix) and len(rest) == 8 and all(c in TEMP_SUFFIX_CHARS for c in rest)


def remove_stale(final: Path) -> list[Path]:
    """Remove `.NAME.tmp-XXXXXXXX` siblings of `final` that no live writer holds; return them."""
    removed = []
    for sibling in sorted(final.parent.glob(f".{final.name}.tmp-*")):
        if not _is_temporary_name(sibling.name, final):
            continue
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


def _renameat2(a: Path, b: Path, flag: int) -> bool | None:
    """Linux renameat2(a, b, flag): True done, False if `b` exists (EEXIST), None where unsupported."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), flag) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return None  # a file system without this flag: the caller falls back
    if code == errno.EEXIST:
        return False
    raise OSError(code, os.strerror(code), str(b))


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (RENAME_EXCHANGE); False where unsupported."""
    return bool(_renameat2(a, b, 2))


def _rename_noreplace(temporary: Path, final: Path) -> bool:
    """Rename `temporary` to `final` only if `final` does not exist: False if it does.

    Atomic, so of two writers racing for one name exactly one wins: RENAME_NOREPLACE, else a hard
    link (files) or a plain rename, which refuses a non-empty directory (every output has files).
    """
    done = _renameat2(temporary, final, 1)
    if done is not None:
        return done
    try:
        if temporary.is_dir():
            os.rename(temporary, final)
        else:
            os.link(temporary, final)
            os.unlink(temporary)
    except (FileExistsError, IsADirectoryError, NotADirectoryError):
        return False
    except OSError as e:
        if e.errno == errno.ENOTEMPTY:
            return False
        raise
    return True


def _already_exists(final: Path) -> UsageError:
    return UsageError(f"{final} already exists", hint="choose another --out or pass --force")


def _publish(temporary: Path, final: Path, *, replace: Callable[[Path], str | None] | None) -> Path | None:
    """Move the complete `temporary` to `final`; return where the previous `final` went (to delete).

    `replace` is None without --force (an existing `final` is refused); else it says why the
    existing `final` may not be replaced (None: it may), asked again right before the swap.
    """
    if _rename_noreplace(temporary, final):
        return None
    if replace is None:
        raise _already_exists(final)
    refusal = replace(final)
    if refusal is not None:
        raise UsageError(refusal)
    if _exchange(temporary, final):
        return temporary  # the previous output now sits under the temporary name, never as `final`
    if temporary.is_dir():
        # No atomic swap: `final` is missing for the instant between these two renames.
        old = _new_temporary(final, directory=True)
        os.rename(final, old / final.name)
        os.rename(temporary, final)
        return old
    os.replace(temporary, final)
    return None


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


def _new_temporary(final: Path, *, directory: bool) -> Path:
    """A fresh `.NAME.tmp-XXXXXXXX` sibling, created with the caller's umask (as any new file).

    tempfile's mkdtemp/mkstemp create 0700/0600 whatever the umask: a run on shared storage would
    be unreadable to the other users and nodes that the umask lets read it.
    """
    import secrets

    for _ in range(100):
        suffix = "".join(secrets.choice(TEMP_SUFFIX_CHARS) for _ in range(8))
        temporary = final.parent / f".{final.name}.tmp-{suffix}"
        try:
            if directory:
                os.mkdir(temporary, 0o777)
            else:
                os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return temporary
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(final))


def umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux >= 4.7).

    >>> 0 <= umask() <= 0o777
    True
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o22)  # elsewhere: set and restore at once
    os.umask(mask)
    return mask


def as_new_file(path: str | os.PathLike) -> None:
    """Give `path` the mode a new file gets (0o666 less the umask): for writers (safetensors)
    that create their files 0600 whatever the umask."""
    os.chmod(path, 0o666 & ~umask())


def _create(final: Path, *, directory: bool) -> tuple[Path, int | None]:
    """A new temporary sibling of `final`, locked: (path, lock fd).

    Between creating a temporary and locking it, another writer's `remove_stale` may find it
    unlocked and remove it (a race two `build --out SAME` hit): so the lock is taken, then the
    path is checked to still be the locked inode, else a new temporary is made.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(final)
    for _ in range(100):
        temporary = _new_temporary(final, directory=directory)
        try:
            lock = _lock(temporary, wait=True)
        except FileNotFoundError:
            continue  # removed as stale before it was locked
        if lock is None or _same_inode(temporary, lock):
            return temporary, lock
        _unlock(lock)
    raise FileExistsError(errno.EEXIST, "no temporary could be kept", str(final))


def _same_inode(path: Path, fd: int) -> bool:
    try:
        here, held = os.stat(path), os.fstat(fd)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)


def _remove(temporary: Path) -> None:
    if temporary.is_dir() and not temporary.is_symlink():
        shutil.rmtree(temporary, ignore_errors=True)
    else:
        temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def _atomic(final: str | os.PathLike, *, force: bool, directory: bool,
            replace: Callable[[Path], str | None] | None) -> Iterator[Path]:
    final = Path(final)
    if os.path.lexists(final):
        if not force:
            raise _already_exists(final)
        refusal = (replace or _never)(final)
        if refusal is not None:
            raise UsageError(refusal)
    temporary, lock = None, None
    try:
        try:
            with _signals_held():  # an interrupt lands before or after, never between creation and `try`
                temporary, lock = _create(final, directory=directory)
        except OSError as e:
            where = os.fsdecode(e.filename) if e.filename else str(final)
            if os.path.basename(where).startswith(f".{final.name}.tmp-"):
                where = str(final)  # never a temporary's name: the user asked for `final`
            raise ReindexError(f"cannot create the output: {e.strerror or e}", path=where) from e
        yield temporary
        with _signals_held():
            previous = _publish(temporary, final, replace=(replace or _never) if force else None)
            temporary = None
        if previous is not None:
            _remove(previous)
    except BaseException as e:
        if temporary is not None:
            _remove(temporary)
            if isinstance(e, ReindexError):
                text = user_path(str(e), temporary, final)
                if e.__cause__ is not None and disk_full(e.__cause__) is not None:  # a writer's OSError
                    raise write_error(e, temporary, final) from e
                if text != str(e):
                    raise type(e)(text) from e
            elif isinstance(e, Exception) and (isinstance(e, OSError) or disk_full(e) is not None
                                               or OS_ERROR_TEXT.search(str(e))):
                # a writer's I/O failure in its own words (safetensors: "Permission denied (os error 13)")
                raise write_error(e, temporary, final) from e
        raise
    finally:
        _unlock(lock)


def _never(final: Path) -> str | None:
    return f"refusing to replace {final}: reindex did not write it"


def atomic_directory(final: str | os.PathLike, *, force: bool = False,
                     replace: Callable[[Path], str | None] | None = None) -> contextlib.AbstractContextManager[Path]:
    """Yield a fresh temporary sibling directory of `final`; rename it to `final` if the block succeeds.

    A failed or interrupted write leaves no `final` (or the previous complete one, with `force`).
    An existing `final` is replaced only with `force` and only if `replace(final)` finds no reason
    against it (`reindex.outputs`); without `replace`, never.
    """
    return _atomic(final, force=force, directory=True, replace=replace)


def atomic_file(final: str | os.PathLike, *, force: bool = False,
                replace: Callable[[Path], str | None] | None = None) -> contextlib.AbstractContextManager[Path]:
    """Like `atomic_directory`, for one file: write the yielded path, it becomes `final` on success."""
    return _atomic(final, force=force, directory=False, replace=replace)
