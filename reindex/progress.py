"""Progress on stderr: Rich bars on a terminal, a line per step elsewhere, nothing when quiet.

The library reports through the module functions `step` and `note`, which do nothing until a
front end (the CLI) installs a `Reporter`; a library user sees no output unless they install one.

    with use(Reporter(level=NORMAL)):
        with step("reading vectors.txt", total=size, unit="bytes") as advance:
            advance(4096)
"""
from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Callable, Iterator

QUIET, NORMAL, VERBOSE = 0, 1, 2

Advance = Callable[[int], None]


def _nothing(amount: int) -> None:
    return None


class Reporter:
    """Where notes and steps go: `level` QUIET (errors only), NORMAL, or VERBOSE (more detail).

    `bars=None` draws bars only when stderr is a terminal.
    """

    def __init__(self, *, level: int = NORMAL, bars: bool | None = None, console: Any = None) -> None:
        from rich.console import Console

        self.level = level
        self.console = console or Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
        self.bars = (self.console.is_terminal and not self.console.is_dumb_terminal) if bars is None else bars
        self._lock = threading.Lock()
        self._progress: Any = None
        self._open = 0
        self._units: dict[str, list[Any]] = {}   # unit -> open tasks counting it, innermost last

    def note(self, message: str, *, verbose: bool = False) -> None:
        """One line on stderr (above the bars on a terminal); `verbose` lines only with -v; none when quiet."""
        if self.level == QUIET or (verbose and self.level < VERBOSE):
            return
        self.console.print(message, markup=False, highlight=False)

    @contextlib.contextmanager
    def step(self, description: str, *, total: int | None = None, unit: str = "items",
             poll: Callable[[], int] | None = None) -> Iterator[Advance]:
        """A unit of work: a bar on a terminal (bytes get rate and ETA); `advance(n)` moves it.

        `poll`, when given, is asked for the amount done ten times a second (e.g. a file position).
        """
        if self.level == QUIET:
            yield _nothing
            return
        start = time.perf_counter()
        if not self.bars:
            self.note(f"{description}...", verbose=True)
            yield _nothing
            self.note(f"{description}: {time.perf_counter() - start:.1f} s", verbose=True)
            return
        progress = self._start()
        task = progress.add_task(description, total=total, unit=unit)
        self._units.setdefault(unit, []).append(task)
        stop = threading.Event()
        poller = None
        if poll is not None:
            def watch() -> None:
                while not stop.wait(0.1):
                    progress.update(task, completed=poll())
            poller = threading.Thread(target=watch, name="reindex-progress", daemon=True)
            poller.start()
        try:
            yield lambda amount: progress.advance(task, amount)
            if total is not None:
                progress.update(task, completed=total)
        finally:
            stop.set()
            if poller is not None:
                poller.join()
            self._units[unit].remove(task)
            self._finish()
        self.note(f"{description}: {time.perf_counter() - start:.1f} s", verbose=True)

    def tally(self, unit: str, amount: int) -> None:
        """Advance the innermost open step counting `unit` (e.g. "ids" from deep in a remap)."""
        tasks, progress = self._units.get(unit), self._progress
        if tasks and progress is not None:
            progress.advance(tasks[-1], amount)

    def _start(self) -> Any:
        with self._lock:
            if self._progress is None:
                self._progress = _new_progress(self.console)
                self._progress.start()
            self._open += 1
            return self._progress

    def _finish(self) -> None:
        with self._lock:
            self._open -= 1
            if self._open == 0 and self._progress is not None:
                self._progress.stop()
                self._progress = None


# The widest cells of the columns right of the bar: percentage 4, amount 24 ("849.5/849.5 MB 12.3 MB/s"),
# time left 7, time elapsed 7, and a space between columns.
_RIGHT, _ELAPSED, _BAR = 4 + 24 + 7 + 4, 7 + 1, (10, 40)


def _new_progress(console: Any) -> Any:
    """Rich's Progress with one line per bar at any width: text cells never wrap; the bar shrinks first
    (40 cells down to 10), then the description is cut with an ellipsis; under 100 columns the
    elapsed time is left out (at 80 columns, a wrapped cell put the rate on a line of its own)."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.table import Column
    from rich.text import Text

    class Amount(ProgressColumn):
        """Bytes as sizes with a rate; other units as `done/total unit`."""

        def __init__(self) -> None:
            super().__init__(table_column=Column(no_wrap=True))
            self.size, self.speed, self.count = DownloadColumn(), TransferSpeedColumn(), MofNCompleteColumn()

        def render(self, task: Any) -> Any:
            if task.fields.get("unit") == "bytes":
                return Text.assemble(self.size.render(task), " ", self.speed.render(task))
            if task.total is None:
                return Text(f"{int(task.completed):,} {task.fields.get('unit', '')}" if task.completed else "")
            return Text.assemble(self.count.render(task), f" {task.fields.get('unit', '')}")

    wide = console.width >= 100
    description = max(12, console.width - _RIGHT - (_ELAPSED if wide else 0) - _BAR[0] - 1)
    columns: list[Any] = [
        TextColumn("{task.description}",
                   table_column=Column(no_wrap=True, overflow="ellipsis", max_width=description)),
        BarColumn(bar_width=None, table_column=Column(min_width=_BAR[0], max_width=_BAR[1])),
        TaskProgressColumn(table_column=Column(no_wrap=True)), Amount(),
        *([TimeElapsedColumn(table_column=Column(no_wrap=True))] if wide else []),
        TimeRemainingColumn(table_column=Column(no_wrap=True))]
    return Progress(*columns, console=console, transient=False, redirect_stdout=False, redirect_stderr=False)


_current: Reporter | None = None


@contextlib.contextmanager
def use(reporter: Reporter | None) -> Iterator[Reporter | None]:
    """Send the library's notes and steps to `reporter` inside the block."""
    global _current
    previous, _current = _current, reporter
    try:
        yield reporter
    finally:
        _current = previous


def note(message: str, *, verbose: bool = False) -> None:
    """A line for the user, if a reporter is installed: `note("read 3,000 vocabulary tokens")`."""
    if _current is not None:
        _current.note(message, verbose=verbose)


def step(description: str, *, total: int | None = None, unit: str = "items",
         poll: Callable[[], int] | None = None) -> contextlib.AbstractContextManager[Advance]:
    """`with step("remapping", total=n, unit="files") as advance: ...`; a no-op with no reporter."""
    if _current is None:
        return contextlib.nullcontext(_nothing)
    return _current.step(description, total=total, unit=unit, poll=poll)


def tally(unit: str, amount: int) -> None:
    """Count `amount` of `unit` into the open step that counts them; a no-op without one."""
    if _current is not None and _current.bars:
        _current.tally(unit, amount)


@contextlib.contextmanager
def files_step(description: str, num_files: int) -> Iterator[None]:
    """Two bars for a remap: files done of `num_files`, and ids (counted by `tally("ids", n)`)."""
    with step(description, total=num_files, unit="files"), step("  ids", unit="ids"):
        yield
