"""What every command of the CLI shares: the Typer app, choice types made from `reindex.options`, the
options several commands take, and the reporting that turns a library error into one line and an exit code.
"""
from __future__ import annotations

import contextlib
import enum
import json
import os
import sys
from pathlib import Path
from typing import Any, Iterator, Optional

import typer
import typer.core

from .. import options as opts
from ..errors import ReindexError

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Renumber a vocabulary so pretrained rows come first; remap datasets to match.")


class Command(typer.core.TyperCommand):
    """Usage lines as the README writes them, `reindex remap [OPTIONS] RUN DATA...`, without Typer's braces."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [piece[1:-1] if piece.startswith("{") and piece.endswith("}") else piece
                for piece in super().collect_usage_pieces(ctx)]


def _choices(name: str, *values: str) -> Any:
    """A str Enum Typer shows as `[a|b|c]`: `_choices("Init", "normal", "zeros").normal.value == "normal"`."""
    return enum.Enum(name, {value.replace("-", "_"): value for value in values}, type=str)


# The choices live in reindex.options, with the groups that check them; here they only become Enums.
Init = _choices("Init", *opts.INITS)
VectorsFormat = _choices("VectorsFormat", *opts.VECTORS_FORMATS)
Duplicates = _choices("Duplicates", *opts.DUPLICATES)
UnicodeErrors = _choices("UnicodeErrors", *opts.UNICODE_ERRORS)
IdDtype = _choices("IdDtype", *opts.ID_DTYPES)
Engine = _choices("Engine", *opts.ENGINES)
Normalize = _choices("Normalize", *opts.NORMALIZE)
ExportFormat = _choices("ExportFormat", *opts.EXPORT_FORMATS)

COLUMN = typer.Option(["input_ids"], "--column", help="Column or key holding the ids (repeatable).")
ID_DTYPE = typer.Option(None, "--id-dtype", help="Output id dtype (default: keep the input's).")
FORCE = typer.Option(False, "--force", help="Replace the output if it exists.")
UNK = typer.Option(None, "--unk", help="Text input: token for words not in the vocabulary.")
RUN = typer.Argument(..., metavar="RUN", help="A run directory written by `reindex build`.")
IGNORE_INDEX = typer.Option([], "--ignore-index", metavar="ID",
                            help="Ids passed through unchanged and not counted, e.g. -100 in labels (repeatable).")
INCLUDE = typer.Option([], "--include", metavar="GLOB",
                       help="In DATA directories, only files matching GLOB (repeatable); without it, files of "
                            "unknown type, and .npy/.pt/.safetensors files whose name holds neither 'ids', "
                            "'tokens' nor a --column name, are skipped with a note.")
WORKERS = typer.Option(None, "--workers", min=1, help="Threads (or Ray CPUs) for remapping files (default: all cores).")
QUIET = typer.Option(False, "--quiet", "-q", help="Print nothing but errors.")
VERBOSE = typer.Option(False, "--verbose", "-v", help="Print more detail (per file, per step timings).")
JSON = typer.Option(False, "--json", help="Print one JSON object describing what was done on stdout "
                                          "(nothing on stdout when the command fails).")
ENGINE = typer.Option(Engine.local, "--engine",
                      help="local: threads on this machine; ray: a Ray cluster (Parquet only; "
                           "pip install 'reindex-vocab[ray]').")
RAY_ADDRESS = typer.Option(None, "--ray-address", help="Ray cluster to use (default: RAY_ADDRESS, else start one).")


def value(option: Optional[enum.Enum]) -> Optional[str]:
    return None if option is None else option.value


def data_options(*, column: list[str], id_dtype: Optional[enum.Enum] = None, unk: Optional[str] = None,
                 ignore_index: list[int], include: list[str]) -> opts.DataOptions:
    return opts.DataOptions(columns=tuple(column), id_dtype=value(id_dtype), unk=unk,
                            ignore_index=tuple(ignore_index), include=tuple(include))


def engine_options(engine: enum.Enum, workers: Optional[int], ray_address: Optional[str]) -> opts.EngineOptions:
    if engine.value == "local":
        pyarrow_without_pandas()
    return opts.EngineOptions(engine=engine.value, workers=workers, ray_address=ray_address)


class _NoPandas:
    """A meta-path entry that makes `import pandas` fail (see `pyarrow_without_pandas`)."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "pandas":
            raise ImportError("the reindex CLI never passes pandas objects to pyarrow")
        return None


def system_allocator_for_arrow() -> None:
    """`build` reads vector files a block at a time in several threads; Arrow's default allocator
    (mimalloc) keeps each thread's freed blocks: on a 2 GB file read for 5% of its lines the peak was
    221 MB with it and 184 MB with the system's. Only in the CLI's own process, before pyarrow is first
    imported, and only when the user did not name a pool in ARROW_DEFAULT_MEMORY_POOL; a
    library user's pyarrow is untouched."""
    if "pyarrow" not in sys.modules:
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")


def pyarrow_without_pandas() -> None:
    """pyarrow imports pandas (0.4-1.4 s) at its first `pa.array` call, only to ask whether the
    argument is a pandas object, and remembers the answer; the CLI never passes one, so it lets that
    first check find no pandas. Only in the CLI's own process: a library user's pyarrow is untouched."""
    if "pandas" in sys.modules:
        return
    blocker = _NoPandas()
    sys.meta_path.insert(0, blocker)
    try:
        import pyarrow

        pyarrow.array([0])
    finally:
        sys.meta_path.remove(blocker)


def note(message: str) -> None:
    from .. import progress

    progress.note(message)


@contextlib.contextmanager
def reporting(*, quiet: bool, verbose: bool) -> Iterator[None]:
    """Progress and notes on stderr at the chosen level; a ReindexError becomes one line and an exit code."""
    from .. import progress

    level = progress.QUIET if quiet else progress.VERBOSE if verbose else progress.NORMAL
    try:
        with progress.use(progress.Reporter(level=level)):
            yield
    except ReindexError as e:
        typer.echo(f"reindex: error: {e}", err=True)
        raise typer.Exit(e.exit_code) from None


def print_json(obj: object) -> None:
    typer.echo(json.dumps(obj, indent=2, ensure_ascii=False, default=_plain))


def _plain(value: object) -> object:
    """numpy numbers and paths as JSON numbers and strings."""
    item = getattr(value, "item", None)
    return item() if callable(item) else str(value)


def files_json(command: str, run: Path, out: Path, reports: list[Any]) -> dict[str, Any]:
    files = [{"source": str(r.source), "output": str(r.output), "format": r.format, "num_ids": int(r.num_ids),
              "num_rows": int(r.num_rows)} for r in reports]
    skipped = [{"path": str(path), "reason": reason} for path, reason in getattr(reports, "skipped", [])]
    return {"command": command, "run": str(run), "out": str(out), "files": files,
            "num_files": len(files), "num_ids": sum(f["num_ids"] for f in files), "skipped": skipped}
