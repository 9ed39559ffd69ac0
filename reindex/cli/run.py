"""`reindex export`, `inspect` and `verify`: the commands that read a run, each one library call."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .common import (
    COLUMN,
    FORCE,
    IGNORE_INDEX,
    INCLUDE,
    JSON,
    QUIET,
    RUN,
    UNK,
    VERBOSE,
    Command,
    ExportFormat,
    app,
    data_options,
    note,
    print_json,
    pyarrow_without_pandas,
    reporting,
    value,
)

WEIGHTS = typer.Option(None, "--weights", help="Trained rows: SplitEmbedding state or a `trainable` file.")
FORMAT = typer.Option(None, "--format",
                      help="Default: from the suffix (.safetensors .npy .pt .vec .bin .txt .vec.gz .txt.gz).")
TOP = typer.Option(20, "--top", help="How many frequent trainable tokens (and fallback matches) to list.")
PLOT = typer.Option(None, "--plot", help="Draw coverage vs frequency rank (PNG).")


@app.command(cls=Command, short_help="Write one embedding matrix in original id order (row i = original id i).")
def export(run: Path = RUN, out: Path = typer.Option(..., "--out", help="The file to write."),
           weights: Optional[Path] = WEIGHTS, format: Optional[ExportFormat] = FORMAT, force: bool = FORCE,
           json_output: bool = JSON, quiet: bool = QUIET, verbose: bool = VERBOSE) -> None:
    """Write one embedding matrix in ORIGINAL id order (row i = original id i).

    \b
    reindex export run --out embedding.safetensors
    reindex export run --out embedding.pt          (torch.load(path, weights_only=True)["weight"])
    reindex export run --weights trained.safetensors --out trained.vec.gz
    """
    from ..commands.export import export as export_matrix

    with reporting(quiet=quiet, verbose=verbose):
        written = export_matrix(run, out=out, weights=weights, format=value(format), force=force)
        note(f"wrote {written['rows']:,} x {written['dim']} ({written['format']}) to {out}")
        if json_output:
            print_json({"command": "export", "run": str(run), **written})


@app.command(cls=Command, short_help="Show vocabulary and corpus coverage of a run, and its fallback matches.")
def inspect(run: Path = RUN,
            data: List[Path] = typer.Argument(None, metavar="[DATA]...",
                                              help="Datasets in original ids to measure coverage on."),
            json_output: bool = JSON, top: int = TOP, plot: Optional[Path] = PLOT, column: List[str] = COLUMN,
            unk: Optional[str] = UNK, ignore_index: List[int] = IGNORE_INDEX, include: List[str] = INCLUDE,
            quiet: bool = QUIET, verbose: bool = VERBOSE) -> None:
    """Show vocabulary and corpus coverage of a run.

    \b
    reindex inspect run
    reindex inspect run test.parquet --json
    reindex inspect run --plot coverage.png
    """
    from ..commands import inspect as report

    if data:
        pyarrow_without_pandas()
    with reporting(quiet=quiet, verbose=verbose):
        options = data_options(column=column, unk=unk, ignore_index=ignore_index, include=include)
        summary = report.inspect_run(run, data or (), options=options, top=top, plot=plot, all_fallback=json_output)
        if json_output:
            print_json({"command": "inspect", **summary})
        elif not quiet:
            report.render(summary)


@app.command(cls=Command, short_help="Re-hash a run's outputs against its manifest and check its invariants.")
def verify(run: Path = RUN, json_output: bool = JSON, quiet: bool = QUIET, verbose: bool = VERBOSE) -> None:
    """Re-hash a run's outputs against its manifest and check its invariants (exit 1 if broken).

    \b
    reindex verify run
    reindex verify run --json
    """
    from ..commands.verify import verify_run

    pyarrow_without_pandas()
    with reporting(quiet=quiet, verbose=verbose):
        problems = verify_run(run)
    if json_output:
        print_json({"command": "verify", "run": str(run), "ok": not problems, "problems": problems})
    else:
        for problem in problems:  # errors: printed even with --quiet
            typer.echo(f"reindex: verify: {run}: {problem}", err=True)
        if not problems and not quiet:
            typer.echo(f"{run}: ok")
    if problems:
        raise typer.Exit(1)
