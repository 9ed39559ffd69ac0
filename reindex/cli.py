"""The `reindex` command line: parse options, call one library function, report.

Errors from the library become one line on stderr: exit 1 for bad data, 2 for bad usage.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from .errors import ReindexError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Renumber a vocabulary so pretrained rows come first; remap datasets to match.")

Columns = typer.Option(["input_ids"], "--column", help="Column / key holding the ids (repeatable).")
IdDtype = typer.Option(None, "--id-dtype", help="Output id dtype: int32 or int64 (default: keep the input's).")
Force = typer.Option(False, "--force", help="Replace the output if it exists.")


def _fail(error: ReindexError) -> None:
    typer.echo(f"reindex: error: {error}", err=True)
    raise typer.Exit(error.exit_code)


def _err(message: str) -> None:
    typer.echo(message, err=True)


@app.command()
def build(
    data: List[Path] = typer.Argument(None, help="Tokenized datasets (original ids) to remap into RUN/data/."),
    vocab: Path = typer.Option(..., "--vocab", help="Vocabulary: a token per line, token<TAB>count, or vocab.json."),
    vectors: Path = typer.Option(..., "--vectors", help="Vector file (GloVe/word2vec/fastText), export, or old RUN."),
    out: Path = typer.Option(..., "--out", help="Run directory to create."),
    pad: Optional[str] = typer.Option(None, "--pad", help="Token that gets sorted id 0 as an all-zero fixed row."),
    lowercase_fallback: bool = typer.Option(False, "--lowercase-fallback",
                                            help="Use the lowercase form's vector when a token has none."),
    init: str = typer.Option("normal", "--init", help="Trainable rows: normal | uniform | zeros."),
    seed: int = typer.Option(0, "--seed", help="Seed for the trainable rows."),
    vectors_format: Optional[str] = typer.Option(None, "--vectors-format",
                                                 help="glove | word2vec-text | word2vec-binary (default: detect)."),
    duplicates: str = typer.Option("first", "--duplicates", help="Duplicate vector tokens: first | last | error."),
    unicode_errors: str = typer.Option("strict", "--unicode-errors", help="strict | replace | ignore."),
    column: List[str] = Columns,
    id_dtype: Optional[str] = IdDtype,
    force: bool = Force,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print no summary."),
) -> None:
    """Build a run directory from a vocabulary, pretrained vectors and datasets.

    \b
    reindex build --vocab vocab.txt --vectors glove.840B.300d.txt.gz --out run train.parquet
    reindex build --vocab vocab.json --vectors wiki.en.vec --pad '<pad>' --out run data/*.npy
    reindex build --vocab bigger_vocab.txt --vectors old_run --out run2     # grow a vocabulary
    """
    from .build import build as build_run
    from .run import load_run
    from . import report

    try:
        result = build_run(vocab=vocab, vectors=vectors, out=out, data=data or [], pad=pad,
                           lowercase_fallback=lowercase_fallback, init=init, seed=seed,
                           vectors_format=vectors_format, duplicates=duplicates,
                           unicode_errors=unicode_errors, columns=column, id_dtype=id_dtype, force=force,
                           progress=None if quiet else _err)
        if not quiet:
            report.render(report.summarize(load_run(result.out)))
    except ReindexError as e:
        _fail(e)


def main() -> None:
    """Console entry point."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("reindex: interrupted; nothing was written", err=True)
        sys.exit(130)
