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
import os
import shutil
from pathlib import Path
from typing import Callable, Iterator

from ..errors import ReindexError, UsageError
from .temporary import (
    Pending,
    as_new_file,  # noqa: F401  (public: writers that create their own files, reindex.torch's too)
    create,
    exchange,
    new_temporary,
    remove_stale,  # noqa: F401  (public: callers clean up before they write)
    rename_noreplace,
    umask,  # noqa: F401  (public, beside as_new_file)
    unlock_file,
)
from .write_error import OS_ERROR_TEXT, disk_full, user_path, write_error


def _already_exists(final: Path) -> UsageError:
    return UsageError(f"{final} already exists", hint="choose another --out or pass --force")


def _publish(temporary: Path, final: Path, *, replace: Callable[[Path], str | None] | None) -> Path | None:
    """Move the complete `temporary` to `final`; return where the previous `final` went (to delete).

    `replace` is None without --force (an existing `final` is refused); else it says why the
    existing `final` may not be replaced (None: it may), asked again right before the swap.
    """
    if rename_noreplace(temporary, final):
        return None
    if replace is None:
        raise _already_exists(final)
    refusal = replace(final)
    if refusal is not None:
        raise UsageError(refusal)
    if exchange(temporary, final):
        return temporary  # the previous output now sits under the temporary name, never as `final`
    if temporary.is_dir():
        # No atomic swap: `final` is missing for the instant between these two renames.
        old = new_temporary(final, directory=True)
        os.rename(final, old / final.name)
        os.rename(temporary, final)
        return old
    os.replace(temporary, final)
    return None


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
    pending = Pending()
    try:
        try:
            temporary = create(final, directory=directory, pending=pending)
        except OSError as e:
            where = os.fsdecode(e.filename) if e.filename else str(final)
            if os.path.basename(where).startswith(f".{final.name}.tmp-"):
                where = str(final)  # never a temporary's name: the user asked for `final`
            raise ReindexError(f"cannot create the output: {e.strerror or e}", path=where) from e
        yield temporary
        previous = _publish(temporary, final, replace=(replace or _never) if force else None)
        pending.path = None
        if previous is not None:
            _remove(previous)
    except BaseException as e:
        unfinished = pending.path
        if unfinished is not None:
            _remove(unfinished)
            if isinstance(e, ReindexError):
                text = user_path(str(e), unfinished, final)
                if e.__cause__ is not None and disk_full(e.__cause__) is not None:  # a writer's OSError
                    raise write_error(e, unfinished, final) from e
                if text != str(e):
                    raise type(e)(text) from e
            elif isinstance(e, Exception) and (isinstance(e, OSError) or disk_full(e) is not None
                                               or OS_ERROR_TEXT.search(str(e))):
                # a writer's I/O failure in its own words (safetensors: "Permission denied (os error 13)")
                raise write_error(e, unfinished, final) from e
        raise
    finally:
        unlock_file(pending.lock)


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
