"""The `reindex` command line: parse options, call one library function per command, report.

Errors from the library become one line on stderr: exit 1 for bad data, 2 for bad usage. This entry
point is the only place that touches the process: SIGTERM unwinds like Ctrl-C, so temporary outputs
are removed. The commands live in `build`, `datasets` (remap, invert) and `run` (export, inspect, verify).
"""
from __future__ import annotations

import sys

import typer

from . import audit, build, datasets, run  # noqa: F401  (each registers its commands on `app`)
from .common import app, pyarrow_without_pandas, system_allocator_for_arrow

__all__ = ["app", "main", "pyarrow_without_pandas", "system_allocator_for_arrow"]


def _version(value: bool) -> None:
    if value:
        from .._version import __version__

        typer.echo(f"reindex {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", "-V", is_eager=True, callback=_version,
                                       help="Print the version and exit.")) -> None:
    """Renumber a vocabulary so pretrained rows come first; remap datasets to match."""


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwind like Ctrl-C, so temporary outputs are removed


def main() -> None:
    """Console entry point."""
    import signal

    signal.signal(signal.SIGTERM, _terminated)
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("reindex: interrupted; nothing was written", err=True)
        sys.exit(130)
    except SystemExit as e:
        if e.code == 130:  # Typer turns Ctrl-C (and SIGTERM, above) into a silent exit 130
            typer.echo("reindex: interrupted; nothing was written", err=True)
        raise
