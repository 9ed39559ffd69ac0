"""The `reindex` command line: parse options, call one library function, report.

Errors from the library become one line on stderr: exit 1 for bad data, 2 for bad usage.
"""
from __future__ import annotations

import contextlib
import enum
import sys
from pathlib import Path
from typing import Iterator, List, Optional

import typer
import typer.core

from .errors import ReindexError

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Renumber a vocabulary so pretrained rows come first; remap datasets to match.")


class _Command(typer.core.TyperCommand):
    """Usage lines as the README writes them, `reindex remap [OPTIONS] RUN DATA...`, without Typer's braces."""

    def collect_usage_pieces(self, ctx: object) -> list[str]:
        return [piece[1:-1] if piece.startswith("{") and piece.endswith("}") else piece
                for piece in super().collect_usage_pieces(ctx)]


def _choices(name: str, *values: str) -> type[enum.Enum]:
    """A str Enum Typer shows as `[a|b|c]`: `_choices("Init", "normal", "zeros").normal.value == "normal"`."""
    return enum.Enum(name, {value.replace("-", "_"): value for value in values}, type=str)


Init = _choices("Init", "normal", "uniform", "zeros", "mean", "subwords", "pieces")
VectorsFormat = _choices("VectorsFormat", "glove", "word2vec-text", "word2vec-binary", "fasttext-bin")
Duplicates = _choices("Duplicates", "first", "last", "error")
UnicodeErrors = _choices("UnicodeErrors", "strict", "replace", "ignore")
IdDtype = _choices("IdDtype", "int32", "int64")
Engine = _choices("Engine", "local", "ray")
ExportFormat = _choices("ExportFormat", "safetensors", "npy", "pt", "word2vec", "word2vec-binary", "glove",
                        "word2vec-gz", "glove-gz")
Normalize = _choices("Normalize", "none", "nfc", "nfkc")


COLUMN = typer.Option(["input_ids"], "--column", help="Column or key holding the ids (repeatable).")
ID_DTYPE = typer.Option(None, "--id-dtype", help="Output id dtype (default: keep the input's).")
FORCE = typer.Option(False, "--force", help="Replace the output if it exists.")
UNK = typer.Option(None, "--unk", help="Text input: token for words not in the vocabulary.")
RUN = typer.Argument(..., metavar="RUN", help="A run directory written by `reindex build`.")
IGNORE_INDEX = typer.Option([], "--ignore-index", metavar="ID",
                            help="Ids passed through unchanged and not counted, e.g. -100 in labels (repeatable).")
INCLUDE = typer.Option([], "--include", metavar="GLOB",
                       help="In DATA directories, only files matching GLOB (repeatable); "
                            "without it, files of unknown type are skipped with a note.")
WORKERS = typer.Option(None, "--workers", min=1, help="Threads (or Ray CPUs) for remapping files (default: all cores).")
QUIET = typer.Option(False, "--quiet", "-q", help="Print nothing but errors (warnings stay in the manifest).")
VERBOSE = typer.Option(False, "--verbose", "-v", help="Print more detail (per file, per step timings).")
JSON = typer.Option(False, "--json", help="Print one JSON object describing what was done on stdout.")
ENGINE = typer.Option(Engine.local, "--engine",
                      help="local: threads on this machine; ray: a Ray cluster (Parquet only; pip install 'reindex-vocab[ray]').")
RAY_ADDRESS = typer.Option(None, "--ray-address", help="Ray cluster to use (default: RAY_ADDRESS, else start one).")


def _value(option: Optional[enum.Enum]) -> Optional[str]:
    return None if option is None else option.value


class _NoPandas:
    """A meta-path entry that makes `import pandas` fail (see `_pyarrow_without_pandas`)."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "pandas":
            raise ImportError("the reindex CLI never passes pandas objects to pyarrow")
        return None


def _system_allocator_for_arrow() -> None:
    """`build` reads vector files a block at a time in several threads; Arrow's default allocator
    (mimalloc) keeps each thread's freed blocks: on a 2 GB file read for 5% of its lines the peak was
    221 MB with it and 184 MB with the system's. Only in the CLI's own process, before pyarrow is first
    imported, and only when the user did not name a pool in ARROW_DEFAULT_MEMORY_POOL; a
    library user's pyarrow is untouched."""
    import os

    if "pyarrow" not in sys.modules:
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")


def _pyarrow_without_pandas() -> None:
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


def _fail(error: ReindexError) -> None:
    typer.echo(f"reindex: error: {error}", err=True)
    raise typer.Exit(error.exit_code)


def _note(message: str) -> None:
    from . import progress

    progress.note(message)


@contextlib.contextmanager
def _reporting(*, quiet: bool, verbose: bool) -> Iterator[None]:
    """Progress and notes on stderr at the chosen level; a ReindexError becomes one line and an exit code."""
    from . import progress

    level = progress.QUIET if quiet else progress.VERBOSE if verbose else progress.NORMAL
    try:
        with progress.use(progress.Reporter(level=level)):
            yield
    except ReindexError as e:
        _fail(e)


def _print_json(obj: object) -> None:
    import json

    typer.echo(json.dumps(obj, indent=2, ensure_ascii=False, default=_plain))


def _plain(value: object) -> object:
    """numpy numbers and paths as JSON numbers and strings."""
    if hasattr(value, "item"):
        return value.item()  # type: ignore[attr-defined]
    return str(value)


def _files_json(command: str, run: Path, out: Path, reports: list) -> dict:
    files = [{"source": str(r.source), "output": str(r.output), "format": r.format, "num_ids": int(r.num_ids),
              "num_rows": int(r.num_rows)} for r in reports]
    return {"command": command, "run": str(run), "out": str(out), "files": files,
            "num_files": len(files), "num_ids": sum(f["num_ids"] for f in files)}


def _version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"reindex {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", "-V", is_eager=True, callback=_version,
                                       help="Print the version and exit.")) -> None:
    """Renumber a vocabulary so pretrained rows come first; remap datasets to match."""


@app.command(cls=_Command, short_help="Build a run: sorted vocabulary, split embedding, remapped datasets.")
def build(
    data: List[Path] = typer.Argument(None, metavar="[DATA]...",
                                      help="Datasets in original ids, remapped into RUN/data/."),
    vocab: Path = typer.Option(..., "--vocab", help="A token per line, token<TAB>count lines, vocab.json, "
                                                    "a tokenizer (tokenizer.json or its directory); - for stdin."),
    vectors: Path = typer.Option(..., "--vectors", help="GloVe / word2vec / fastText file, an export, an old RUN, "
                                                        "or a Hugging Face model (directory or model.safetensors)."),
    vectors_key: Optional[str] = typer.Option(None, "--vectors-key",
                                              help="HF model: the embedding tensor (default: found by name)."),
    out: Path = typer.Option(..., "--out", help="The run directory to create."),
    pad: Optional[str] = typer.Option(None, "--pad", help="Token that gets sorted id 0, an all-zero fixed row."),
    lowercase_fallback: bool = typer.Option(False, "--lowercase-fallback",
                                            help="A token with no vector takes its lowercase form's."),
    case_fallback: bool = typer.Option(False, "--case-fallback",
                                       help="A token with no vector takes the first in the file of its lowercase, "
                                            "Title, UPPER or casefold() forms."),
    normalize: Normalize = typer.Option(Normalize.none, "--normalize",
                                        help="Unicode normalisation of vocabulary and vector tokens before matching."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, metavar="N", help="Read only the first N vectors."),
    init: Init = typer.Option(Init.normal, "--init",
                              help="Trainable rows' initialisation (subwords: from a fastText .bin's n-grams; "
                                   "pieces: mean of the rows of the pieces the HF model's tokenizer splits a token into)."),
    subword_model: Optional[Path] = typer.Option(None, "--subword-model",
                                                 help="With --init subwords: the fastText .bin (default: --vectors)."),
    seed: int = typer.Option(0, "--seed", help="Seed for the trainable rows."),
    vectors_format: Optional[VectorsFormat] = typer.Option(None, "--vectors-format", help="Default: detect."),
    duplicates: Duplicates = typer.Option(Duplicates.first, "--duplicates", help="Duplicate vector tokens."),
    unicode_errors: UnicodeErrors = typer.Option(UnicodeErrors.strict, "--unicode-errors",
                                                 help="Bytes that are not UTF-8 in the vector file."),
    column: List[str] = COLUMN,
    id_dtype: Optional[IdDtype] = ID_DTYPE,
    unk: Optional[str] = UNK,
    ignore_index: List[int] = IGNORE_INDEX,
    include: List[str] = INCLUDE,
    workers: Optional[int] = WORKERS,
    force: bool = FORCE,
    engine: Engine = ENGINE,
    ray_address: Optional[str] = RAY_ADDRESS,
    weights: Optional[Path] = typer.Option(None, "--weights",
                                           help="With an old RUN as --vectors: its trained rows (save_trainable)."),
    json_output: bool = JSON, quiet: bool = QUIET, verbose: bool = VERBOSE,
) -> None:
    """Build a run directory: sorted vocabulary, split embedding, remapped datasets.

    \b
    reindex build --vocab vocab.txt --vectors glove.840B.300d.txt.gz --out run train.parquet
    reindex build --vocab vocab.json --vectors wiki.en.vec --pad '<pad>' --out run 'data/*.npy'
    reindex build --vocab vocab.txt --vectors crawl.vec --case-fallback --normalize nfc --out run
    reindex build --vocab bigger_vocab.txt --vectors run --out run2      (grow a vocabulary)
    reindex build --vocab vocab.txt --vectors glove.txt --init subwords --subword-model cc.en.300.bin --out run
    reindex build --vocab new_tokenizer/ --vectors llama/ --init pieces --out run   (new tokens of an LLM)
    """
    from . import report
    from .build import build as build_run

    _system_allocator_for_arrow()
    if engine is Engine.local:
        _pyarrow_without_pandas()
    with _reporting(quiet=quiet, verbose=verbose):
        result = build_run(vocab=vocab, vectors=vectors, out=out, data=data or [], pad=pad,
                           lowercase_fallback=lowercase_fallback, case_fallback=case_fallback,
                           normalize=normalize.value, limit=limit, init=init.value, seed=seed,
                           vectors_format=_value(vectors_format), duplicates=duplicates.value,
                           unicode_errors=unicode_errors.value, columns=column, id_dtype=_value(id_dtype),
                           unk=unk, ignore_index=ignore_index, include=include, workers=workers,
                           force=force, progress=_note, engine=engine.value,
                           ray_address=ray_address, weights=weights, subword_model=subword_model,
                           vectors_key=vectors_key)
        summary = report.summarize(result.run, corpus_counts=result.corpus_counts)
        if json_output:
            _print_json({"command": "build", **summary, "datasets": result.datasets,
                         "warnings": result.counts.get("warnings", [])})
        elif not quiet:
            report.render(summary)


@app.command(cls=_Command, short_help="Encode more datasets (original ids -> sorted ids) with a run's mapping.")
def remap(run: Path = RUN,
          data: List[Path] = typer.Argument(..., metavar="DATA...", help="Datasets in original ids."),
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
    from .transform import remap_files

    if engine is Engine.local:
        _pyarrow_without_pandas()
    with _reporting(quiet=quiet, verbose=verbose):
        reports = remap_files(run, data, out=out, columns=column, id_dtype=_value(id_dtype), unk=unk, force=force,
                              ignore_index=ignore_index, include=include, workers=workers,
                              engine=engine.value, ray_address=ray_address)
        _note(f"remapped {sum(r.num_ids for r in reports):,} ids in {len(reports)} file(s) into {out}")
        if json_output:
            _print_json(_files_json("remap", run, out, reports))


@app.command(cls=_Command, short_help="Decode datasets (sorted ids -> original ids); the exact inverse of remap.")
def invert(run: Path = RUN, data: List[Path] = typer.Argument(..., metavar="DATA...", help="Datasets in sorted ids."),
           out: Path = typer.Option(..., "--out", help="Directory for the datasets in original ids."),
           column: List[str] = COLUMN, id_dtype: Optional[IdDtype] = ID_DTYPE,
           to_text: bool = typer.Option(False, "--to-text",
                                        help="Write each file as text instead: a line per row, tokens joined by spaces."),
           ignore_index: List[int] = IGNORE_INDEX, include: List[str] = INCLUDE, workers: Optional[int] = WORKERS,
           force: bool = FORCE, engine: Engine = ENGINE, ray_address: Optional[str] = RAY_ADDRESS,
           json_output: bool = JSON, quiet: bool = QUIET, verbose: bool = VERBOSE) -> None:
    """Decode datasets (sorted ids -> original ids); the exact inverse of `remap`.

    \b
    reindex invert run predictions.npy --out decoded
    reindex invert run predictions.npy --out decoded --to-text     (decoded/predictions.txt)
    """
    from .transform import invert_files

    if engine is Engine.local:
        _pyarrow_without_pandas()
    with _reporting(quiet=quiet, verbose=verbose):
        reports = invert_files(run, data, out=out, columns=column, id_dtype=_value(id_dtype), force=force,
                               ignore_index=ignore_index, include=include, workers=workers, to_text=to_text,
                               engine=engine.value, ray_address=ray_address)
        _note(f"inverted {sum(r.num_ids for r in reports):,} ids in {len(reports)} file(s) into {out}")
        if json_output:
            _print_json(_files_json("invert", run, out, reports))


@app.command(cls=_Command, short_help="Write one embedding matrix in original id order (row i = original id i).")
def export(run: Path = RUN, out: Path = typer.Option(..., "--out", help="The file to write."),
           weights: Optional[Path] = typer.Option(None, "--weights",
                                                  help="Trained rows: SplitEmbedding state or a `trainable` file."),
           format: Optional[ExportFormat] = typer.Option(
               None, "--format", help="Default: from the suffix (.safetensors .npy .pt .vec .bin .txt .vec.gz .txt.gz)."),
           force: bool = FORCE, json_output: bool = JSON, quiet: bool = QUIET, verbose: bool = VERBOSE) -> None:
    """Write one embedding matrix in ORIGINAL id order (row i = original id i).

    \b
    reindex export run --out embedding.safetensors
    reindex export run --out embedding.pt          (torch.load(path, weights_only=True)["weight"])
    reindex export run --weights trained.safetensors --out trained.vec.gz
    """
    from .export import export as export_matrix

    with _reporting(quiet=quiet, verbose=verbose):
        written = export_matrix(run, out=out, weights=weights, format=_value(format), force=force)
        _note(f"wrote {written['rows']:,} x {written['dim']} ({written['format']}) to {out}")
        if json_output:
            _print_json({"command": "export", "run": str(run), **written})


@app.command(cls=_Command, short_help="Show vocabulary and corpus coverage of a run, and its fallback matches.")
def inspect(run: Path = RUN,
            data: List[Path] = typer.Argument(None, metavar="[DATA]...",
                                              help="Datasets in original ids to measure coverage on."),
            json_output: bool = JSON,
            top: int = typer.Option(20, "--top", help="How many frequent trainable tokens (and fallback matches) to list."),
            plot: Optional[Path] = typer.Option(None, "--plot", help="Draw coverage vs frequency rank (PNG)."),
            column: List[str] = COLUMN, unk: Optional[str] = UNK, ignore_index: List[int] = IGNORE_INDEX,
            include: List[str] = INCLUDE, quiet: bool = QUIET, verbose: bool = VERBOSE) -> None:
    """Show vocabulary and corpus coverage of a run.

    \b
    reindex inspect run
    reindex inspect run test.parquet --json
    reindex inspect run --plot coverage.png
    """
    from . import report
    from .run import load_run
    from .transform import count_ids

    if data:
        _pyarrow_without_pandas()
    with _reporting(quiet=quiet, verbose=verbose):
        from .datasets.core import check_columns

        check_columns(column)
        if plot is not None:
            report.check_plot_path(plot)  # before any work
        loaded = load_run(run)
        counts = count_ids(loaded, data, columns=column, unk=unk, ignore_index=ignore_index, include=include) \
            if data else report.stored_corpus_counts(loaded)
        summary = report.summarize(loaded, corpus_counts=counts, top=top)
        if plot is not None:
            report.plot_coverage(loaded, plot, corpus_counts=counts, data=data or ())
            _note(f"wrote {plot}")
        if json_output:
            _print_json({"command": "inspect", **report.summarize(loaded, corpus_counts=counts, top=top,
                                                                  all_fallback=True)})
        elif not quiet:
            report.render(summary)


@app.command(cls=_Command, short_help="Re-hash a run's outputs against its manifest and check its invariants.")
def verify(run: Path = RUN, json_output: bool = JSON, quiet: bool = QUIET, verbose: bool = VERBOSE) -> None:
    """Re-hash a run's outputs against its manifest and check its invariants (exit 1 if broken).

    \b
    reindex verify run
    reindex verify run --json
    """
    from .verify import verify_run

    _pyarrow_without_pandas()
    with _reporting(quiet=quiet, verbose=verbose):
        problems = verify_run(run)
    if json_output:
        _print_json({"command": "verify", "run": str(run), "ok": not problems, "problems": problems})
    else:
        for problem in problems:  # errors: printed even with --quiet
            typer.echo(f"reindex: verify: {run}: {problem}", err=True)
        if not problems and not quiet:
            typer.echo(f"{run}: ok")
    if problems:
        raise typer.Exit(1)


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


@app.command(cls=_Command, short_help="Which embedding and head rows did a fine-tune change? Exit 3: unexpected ones.")
def audit(base: Path = typer.Argument(..., metavar="BASE", help="The model before: HF directory, model.safetensors, "
                                                                 "a sharded index, or a run."),
          tuned: Path = typer.Argument(..., metavar="TUNED", help="The model after: the same kinds, or a PEFT adapter "
                                                                   "folder with trainable tokens."),
          expect_trainable: List[str] = typer.Option([], "--expect-trainable", metavar="SPEC",
                                                     help="Rows meant to change (repeatable): added, run:RUN, "
                                                          "ids:FILE, or a token."),
          tolerance: float = typer.Option(0.0, "--tolerance", min=0.0,
                                          help="Largest change per element still counted as unchanged, in TUNED's "
                                               "dtype (default 0: bit-exact)."),
          key: Optional[str] = typer.Option(None, "--key", help="The embedding tensor (default: found by name)."),
          head_key: Optional[str] = typer.Option(None, "--head-key", help="The head tensor (default: found by name)."),
          tokenizer: Optional[Path] = typer.Option(None, "--tokenizer", help="tokenizer.json naming TUNED's rows "
                                                                              "(default: the one beside it)."),
          top: int = typer.Option(20, "--top", min=0, metavar="N", help="How many changed rows to list per matrix."),
          plot: Optional[Path] = typer.Option(None, "--plot", help="Draw the change per row against the row id (PNG)."),
          json_output: bool = JSON, quiet: bool = QUIET, verbose: bool = VERBOSE) -> None:
    """Which embedding and head rows of TUNED differ from BASE, and are they the ones meant to change?

    Exit 0 when every row outside the expected set is unchanged, 3 when some changed.

    \b
    reindex audit llama/ llama-tuned/
    reindex audit llama/ llama-tuned/ --expect-trainable added --json
    reindex audit llama/ adapter/ --expect-trainable '<tool>' --expect-trainable '</tool>'
    reindex audit base/model.safetensors tuned/model.safetensors.index.json --tolerance 1e-3 --plot changes.png
    """
    from .audit import audit as audit_checkpoints
    from .audit import report as audit_report

    with _reporting(quiet=quiet, verbose=verbose):
        if plot is not None:
            audit_report.check_plot_path(plot)  # before any work
        result = audit_checkpoints(base, tuned, key=key, head_key=head_key, tokenizer=tokenizer,
                                   expect=expect_trainable, tolerance=tolerance)
        if plot is not None:
            audit_report.plot(result, plot)
            _note(f"wrote {plot}")
        if json_output:
            _print_json(audit_report.to_json(result))
        elif not quiet:
            audit_report.render(result, top=top)
        for warning in result.warnings:
            _note(f"reindex: warning: {warning}")
    raise typer.Exit(result.exit_code)
