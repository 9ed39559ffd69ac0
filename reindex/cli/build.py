"""`reindex build`: its options, and one call of `reindex.commands.build.build`."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .. import options as opts
from .common import (
    COLUMN,
    ENGINE,
    FORCE,
    ID_DTYPE,
    IGNORE_INDEX,
    INCLUDE,
    JSON,
    RAY_ADDRESS,
    UNK,
    VERBOSE,
    WORKERS,
    Command,
    Duplicates,
    Engine,
    IdDtype,
    Init,
    Normalize,
    UnicodeErrors,
    VectorsFormat,
    app,
    data_options,
    engine_options,
    print_json,
    reporting,
    system_allocator_for_arrow,
    value,
)

DATA = typer.Argument(None, metavar="[DATA]...", help="Datasets in original ids, remapped into RUN/data/.")
VOCAB = typer.Option(..., "--vocab", help="A token per line, token<TAB>count lines, vocab.json, "
                                          "a tokenizer (tokenizer.json or its directory); - for stdin.")
VECTORS = typer.Option(..., "--vectors", help="GloVe / word2vec / fastText file, an export, an old RUN, "
                                              "or a Hugging Face model (directory or model.safetensors).")
VECTORS_KEY = typer.Option(None, "--vectors-key", help="HF model: the embedding tensor (default: found by name).")
OUT = typer.Option(..., "--out", help="The run directory to create.")
PAD = typer.Option(None, "--pad", help="Token that gets sorted id 0, an all-zero fixed row.")
LOWERCASE = typer.Option(False, "--lowercase-fallback", help="A token with no vector takes its lowercase form's.")
CASE = typer.Option(False, "--case-fallback", help="A token with no vector takes the first in the file of its "
                                                   "lowercase, Title, UPPER or casefold() forms.")
NORMALIZE = typer.Option(Normalize.none, "--normalize",
                         help="A token with no exact vector takes that of its Unicode normal form "
                              "(the exact form always wins).")
LIMIT = typer.Option(None, "--limit", min=1, metavar="N", help="Read only the first N vectors.")
INIT = typer.Option(Init.normal, "--init", help="Trainable rows' initialisation (subwords: from a fastText .bin's "
                                                "n-grams; pieces: mean of the rows of the pieces the HF model's "
                                                "tokenizer splits a token into).")
SUBWORD_MODEL = typer.Option(None, "--subword-model", help="With --init subwords: the fastText .bin "
                                                          "(default: --vectors).")
SEED = typer.Option(0, "--seed", help="Seed for the trainable rows.")
VECTORS_FORMAT = typer.Option(None, "--vectors-format", help="Default: detect.")
DUPLICATES = typer.Option(Duplicates.first, "--duplicates", help="Duplicate vector tokens.")
UNICODE_ERRORS = typer.Option(UnicodeErrors.strict, "--unicode-errors",
                              help="Bytes that are not UTF-8 in the vector file.")
WEIGHTS = typer.Option(None, "--weights", help="With an old RUN as --vectors: its trained rows (save_trainable).")
QUIET = typer.Option(False, "--quiet", "-q", help="Print nothing but errors (warnings stay in the manifest).")


@app.command(cls=Command, short_help="Build a run: sorted vocabulary, split embedding, remapped datasets.")
def build(data: List[Path] = DATA, vocab: Path = VOCAB, vectors: Path = VECTORS,
          vectors_key: Optional[str] = VECTORS_KEY, out: Path = OUT, pad: Optional[str] = PAD,
          lowercase_fallback: bool = LOWERCASE, case_fallback: bool = CASE, normalize: Normalize = NORMALIZE,
          limit: Optional[int] = LIMIT, init: Init = INIT, subword_model: Optional[Path] = SUBWORD_MODEL,
          seed: int = SEED, vectors_format: Optional[VectorsFormat] = VECTORS_FORMAT,
          duplicates: Duplicates = DUPLICATES, unicode_errors: UnicodeErrors = UNICODE_ERRORS,
          column: List[str] = COLUMN, id_dtype: Optional[IdDtype] = ID_DTYPE, unk: Optional[str] = UNK,
          ignore_index: List[int] = IGNORE_INDEX, include: List[str] = INCLUDE, workers: Optional[int] = WORKERS,
          force: bool = FORCE, engine: Engine = ENGINE, ray_address: Optional[str] = RAY_ADDRESS,
          weights: Optional[Path] = WEIGHTS, json_output: bool = JSON, quiet: bool = QUIET,
          verbose: bool = VERBOSE) -> None:
    """Build a run directory: sorted vocabulary, split embedding, remapped datasets.

    \b
    reindex build --vocab vocab.txt --vectors glove.840B.300d.txt.gz --out run train.parquet
    reindex build --vocab vocab.json --vectors wiki.en.vec --pad '<pad>' --out run 'data/*.npy'
    reindex build --vocab vocab.txt --vectors crawl.vec --case-fallback --normalize nfc --out run
    reindex build --vocab bigger_vocab.txt --vectors run --out run2      (grow a vocabulary)
    reindex build --vocab vocab.txt --vectors glove.txt --init subwords --subword-model cc.en.300.bin --out run
    reindex build --vocab new_tokenizer/ --vectors llama/ --init pieces --out run   (new tokens of an LLM)
    """
    from ..commands import inspect as report
    from ..commands.build import build as build_run

    system_allocator_for_arrow()
    with reporting(quiet=quiet, verbose=verbose):
        options = opts.BuildOptions(
            pad=pad, match=opts.MatchOptions(lowercase_fallback=lowercase_fallback, case_fallback=case_fallback,
                                             normalize=normalize.value),
            vectors=opts.VectorOptions(limit=limit, vectors_format=value(vectors_format), weights=weights,
                                       duplicates=duplicates.value, unicode_errors=unicode_errors.value,
                                       vectors_key=vectors_key),
            init=opts.InitOptions(init=init.value, seed=seed, subword_model=subword_model),
            data=data_options(column=column, id_dtype=id_dtype, unk=unk, ignore_index=ignore_index, include=include))
        result = build_run(vocab=vocab, vectors=vectors, out=out, data=data or [], options=options, force=force,
                           engine=engine_options(engine, workers, ray_address))
        summary = report.summarize(result.run, corpus_counts=result.corpus_counts)
        if json_output:
            print_json({"command": "build", **summary, "datasets": result.datasets,
                        "skipped": result.counts.get("skipped_datasets", []),
                        "warnings": result.counts.get("warnings", [])})
        elif not quiet:
            report.render(summary)
