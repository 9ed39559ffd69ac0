"""`reindex remap` and `reindex invert`: each one call of `reindex.commands.remap`."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .common import (
    COLUMN,
    ENGINE,
    FORCE,
    ID_DTYPE,
    IGNORE_INDEX,
    INCLUDE,
    JSON,
    QUIET,
    RAY_ADDRESS,
    RUN,
    UNK,
    VERBOSE,
    WORKERS,
    Command,
    Engine,
    IdDtype,
    app,
    data_options,
    engine_options,
    files_json,
    note,
    print_json,
    reporting,
)

TO_TEXT = typer.Option(False, "--to-text", help="Write each file as text instead: a line per row, tokens joined "
                                                "by spaces.")


@app.command(cls=Command, short_help="Encode more datasets (original ids -> sorted ids) with a run's mapping.")
def remap(run: Path = RUN, data: List[Path] = typer.Argument(..., metavar="DATA...", help="Datasets in original ids."),
          out: Path = typer.Option(..., "--out", help="Directory for the remapped datasets."),
          column: List[str] = COLUMN, id_dtype: Optional[IdDtype] = ID_DTYPE, unk: Optional[str] = UNK,
          ignore_index: List[int] = IGNORE_INDEX, include: List[str] = INCLUDE, workers: Optional[int] = WORKERS,
          force: bool = FORCE, engine: Engine = ENGINE, ray_address: Optional[str] = RAY_ADDRESS,
          json_output: bool = JSON, quiet: bool = QUIET, verbose: bool = VERBOSE) -> None:
    """Encode more datasets (original ids -> sorted ids) with a run's mapping.

    \b
    reindex remap run test.parquet valid.npy --out encoded
    reindex remap run 'shards/*.parquet' --out encoded --id-dtype int32
    reindex remap run lm_dataset/ --column input_ids --column labels --ignore-index -100 --out encoded
    reindex remap run shards/ --out encoded --engine ray --ray-address auto
    """
    from ..commands.remap import remap_files

    with reporting(quiet=quiet, verbose=verbose):
        reports = remap_files(run, data, out=out, force=force, engine=engine_options(engine, workers, ray_address),
                              data_options=data_options(column=column, id_dtype=id_dtype, unk=unk,
                                                        ignore_index=ignore_index, include=include))
        note(f"remapped {sum(r.num_ids for r in reports):,} ids in {len(reports)} file(s) into {out}")
        if json_output:
            print_json(files_json("remap", run, out, reports))


@app.command(cls=Command, short_help="Decode datasets (sorted ids -> original ids); the exact inverse of remap.")
def invert(run: Path = RUN, data: List[Path] = typer.Argument(..., metavar="DATA...", help="Datasets in sorted ids."),
           out: Path = typer.Option(..., "--out", help="Directory for the datasets in original ids."),
           column: List[str] = COLUMN, id_dtype: Optional[IdDtype] = ID_DTYPE, to_text: bool = TO_TEXT,
           ignore_index: List[int] = IGNORE_INDEX, include: List[str] = INCLUDE, workers: Optional[int] = WORKERS,
           force: bool = FORCE, engine: Engine = ENGINE, ray_address: Optional[str] = RAY_ADDRESS,
           json_output: bool = JSON, quiet: bool = QUIET, verbose: bool = VERBOSE) -> None:
    """Decode datasets (sorted ids -> original ids); the exact inverse of `remap`.

    \b
    reindex invert run predictions.npy --out decoded
    reindex invert run predictions.npy --out decoded --to-text     (decoded/predictions.txt)
    """
    from ..commands.remap import invert_files

    with reporting(quiet=quiet, verbose=verbose):
        reports = invert_files(run, data, out=out, force=force, to_text=to_text,
                               engine=engine_options(engine, workers, ray_address),
                               data_options=data_options(column=column, id_dtype=id_dtype,
                                                         ignore_index=ignore_index, include=include))
        note(f"inverted {sum(r.num_ids for r in reports):,} ids in {len(reports)} file(s) into {out}")
        if json_output:
            print_json(files_json("invert", run, out, reports))
