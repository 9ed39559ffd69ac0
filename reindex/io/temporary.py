"""Temporary siblings of an output and the renames that publish them (the primitives under `atomic`).

A temporary is `.NAME.tmp-XXXXXXXX` beside NAME, locked (`flock`) by its writer while it works; one whose
lock is free belongs to a writer that died and is removed by the next write of NAME.
"""
from __future__ import annotations

import ctypes
import errno
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path


def lock_file(path: Path, *, wait: bool) -> int | None:
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


def unlock_file(fd: int | None) -> None:
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
            fd = lock_file(sibling, wait=False)
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
            unlock_file(fd)
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


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (RENAME_EXCHANGE); False where unsupported."""
    return bool(_renameat2(a, b, 2))


def rename_noreplace(temporary: Path, final: Path) -> bool:
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


def new_temporary(final: Path, *, directory: bool, pending: Pending | None = None) -> Path:
    """A fresh `.NAME.tmp-XXXXXXXX` sibling, created with the caller's umask (as any new file), and
    recorded in `pending` the moment it exists.

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
        if pending is not None:
            pending.path = temporary
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


@dataclass
class Pending:
    """The temporary being written, recorded the moment it exists, so that whoever unwinds (an error,
    Ctrl-C) can remove it even when it comes before `create` returns."""

    path: Path | None = None
    lock: int | None = None


def create(final: Path, *, directory: bool, pending: Pending) -> Path:
    """A new temporary sibling of `final`, locked, and recorded with its lock in `pending`.

    Between creating a temporary and locking it, another writer's `remove_stale` may find it
    unlocked and remove it (a race two `build --out SAME` hit): so the lock is taken, then the
    path is checked to still be the locked inode, else a new temporary is made.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(final)
    for _ in range(100):
        temporary = new_temporary(final, directory=directory, pending=pending)
        try:
            pending.lock = lock_file(temporary, wait=True)
        except FileNotFoundError:
            continue  # removed as stale before it was locked
        if pending.lock is None or same_inode(temporary, pending.lock):
            return temporary
        unlock_file(pending.lock)
        pending.lock = None
    pending.path = None
    raise FileExistsError(errno.EEXIST, "no temporary could be kept", str(final))


def same_inode(path: Path, fd: int) -> bool:
    try:
        here, held = os.stat(path), os.fstat(fd)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)
