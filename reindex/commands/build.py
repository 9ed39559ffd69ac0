"""`reindex build`: vocabulary + pretrained vectors (+ datasets) -> a run directory.

The route: classify `--vectors` once; register every input; check `--out` against them; read the
vocabulary and check the datasets; match and split (`reindex.split`); remap the datasets and write
the run into a temporary directory that `reindex.io.atomic` publishes whole.

    build(vocab="data/vocab.txt", vectors="data/vectors.txt", out="runs/x")
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import progress
from .. import run as run_dir
from ..datasets import RemapSpec, check_datasets
from ..datasets.core import check_columns
from ..datasets.plan import plan_datasets
from ..engines import run_engine
from ..errors import ReindexError, ReindexWarning, UsageError
from ..init import describe_sources
from ..io.atomic import atomic_directory
from ..io.inputs import Inputs
from ..io.outputs import check_output, replacer
from ..mapping import invert_permutation
from ..options import BuildOptions, EngineOptions, InitOptions
from ..split import match_warning, pad_sorted_id, partition, split_rows
from ..vectors import FileDigest
from ..vectors.source import VectorSource, classify
from ..vocab import Vocab, misread_as, read_vocab
from . import match as sources

_ENGINE_KEYWORDS = ("engine", "workers", "ray_address")


@dataclass
class BuildResult:
    """What `build` wrote and counted."""

    out: Path
    counts: dict[str, Any]
    datasets: list[dict[str, Any]]
    manifest: dict[str, Any]
    run: Any = None                          # the Run written, tokens and vectors already in memory
    corpus_counts: np.ndarray | None = None  # per sorted id, when datasets were given


@dataclass
class Split:
    """The renumbering: the permutation, both blocks, and what was counted on the way."""

    sorted_to_original: np.ndarray
    fixed: np.ndarray
    trainable: np.ndarray
    counts: dict[str, Any]
    tokens: list[str]   # original-id order


@dataclass
class _Plan:
    """What `build` will read and write, decided and checked before anything is parsed."""

    source: VectorSource
    pairs: list[tuple[Path, Path]]   # (dataset, its output under RUN/data)
    inputs: Inputs
    skipped: list[tuple[Path, str]]  # found in a DATA folder or glob, not remapped: (file, reason)


def build(*, vocab: str | os.PathLike, vectors: str | os.PathLike, out: str | os.PathLike,
          data: Sequence[str | os.PathLike] = (), options: BuildOptions | None = None,
          engine: EngineOptions | None = None, force: bool = False, **keywords: Any) -> BuildResult:
    """Build a run directory. Everything is validated before RUN appears; a failure leaves no RUN.

    Options come as groups (`options=BuildOptions(...)`, `engine=EngineOptions(...)`) or as flat
    keywords named as the CLI's flags (`pad="<pad>", case_fallback=True, workers=2`). `vocab="-"`
    reads the vocabulary from stdin.
    """
    flat_engine = {k: keywords.pop(k) for k in _ENGINE_KEYWORDS if k in keywords}
    options = options or BuildOptions.from_keywords(**keywords)
    engine = engine or EngineOptions(**flat_engine)
    out = Path(out)
    plan = _plan(vocab, vectors, out, data, options, force=force)
    with run_dir.FileHashes() as hashes:
        vocabulary, early = _read_inputs(vocab, plan, options)
        files = _start_hashes(vocab, plan, options, hashes)
        digest = FileDigest()  # a vector file is hashed as its bytes are parsed, not read twice
        split = _split(vocabulary, plan.source, options, early=early, digest=digest)
        if plan.skipped:  # listed in the manifest too, not only in a note
            split.counts["skipped_datasets"] = [{"path": str(p), "reason": why} for p, why in plan.skipped]
        if digest.complete:
            hashes.put(files["vectors"], digest.record())
        with atomic_directory(out, force=force, replace=replacer("run")) as tmp:
            reports, corpus = _remap_data(plan.pairs, split, out=out, tmp=tmp, options=options, engine=engine)
            with progress.step(f"writing {out} (hashing inputs and outputs)"):
                manifest, written = _write(tmp, out, split, vocabulary, reports, corpus, options=options,
                                           inputs=_describe_inputs(files, vocab, plan, options, vocabulary, hashes),
                                           hashes=hashes)
    return BuildResult(out=out, counts=split.counts, datasets=manifest["datasets"], manifest=manifest,
                       run=written, corpus_counts=corpus)


def _plan(vocab: str | os.PathLike, vectors: str | os.PathLike, out: Path, data: Sequence[str | os.PathLike],
          options: BuildOptions, *, force: bool) -> _Plan:
    """Classify `--vectors`, expand the datasets and register every input; refuse a bad `--out` first."""
    inputs = Inputs()
    inputs.add("--vocab", None if os.fspath(vocab) == "-" else vocab)
    inputs.add("--vectors", vectors)
    inputs.add_options(options)
    inputs.add_files("DATA", data)
    check_output(out, kind="run", force=force, inputs=inputs)  # before reading anything: the gravest reason
    source = classify(vectors, key=options.vectors.vectors_key)
    _check_init(options.init, source)
    check_columns(options.data.columns)
    found = plan_datasets([os.fspath(d) for d in data], out / run_dir.DATA_DIR, include=options.data.include,
                          columns=options.data.columns)
    # what globs and folders expanded to, the skipped files too: --force must not delete them with --out
    inputs.add_files("DATA", [src for src, _ in found.pairs] + [src for src, _ in found.skipped])
    check_output(out, kind="run", force=force, inputs=inputs)
    return _Plan(source=source, pairs=found.pairs, inputs=inputs, skipped=found.skipped)


def _check_init(init: InitOptions, source: VectorSource) -> None:
    """`--init subwords` needs a fastText `.bin` (--subword-model, else --vectors); `pieces` an HF model."""
    if init.init == "pieces" and source.kind != "hf-model":
        raise UsageError("--init pieces needs a Hugging Face model as --vectors", path=source.path,
                         hint="its tokenizer splits each new token into old pieces")
    if init.init != "subwords":
        return
    model = init.subword_model if init.subword_model is not None else source.path
    flag = "--subword-model" if init.subword_model is not None else "--vectors"
    if not model.exists():
        raise ReindexError("no such file or directory", path=model, hint=f"check the {flag} path")
    kind = classify(model).kind if init.subword_model is not None else source.kind
    if kind != "fasttext":
        raise UsageError(f"--init subwords needs a fastText .bin model, and this {flag} is not one", path=model,
                         hint="pass --subword-model FILE.bin (an unsupervised fastText model)")


def _read_inputs(vocab: str | os.PathLike, plan: _Plan, options: BuildOptions) -> tuple[Vocab, list[str]]:
    """Read the vocabulary (warning when it looks like another kind of file) and check every dataset's
    format, columns and dtype, all before the vectors are parsed: a wrong column fails in a second."""
    vocabulary = read_vocab(vocab)
    misread = misread_as(vocabulary)
    early = [] if misread is None else [f"the vocabulary {vocab} looks like {misread}"]
    for notice in early:
        progress.note(f"warning: {notice}")
    spec = _spec(options, table=np.zeros(len(vocabulary), np.int64), tokens=vocabulary.tokens)
    check_datasets([src for src, _ in plan.pairs], spec)
    progress.note(f"read {len(vocabulary):,} vocabulary tokens")
    return vocabulary, early


def _spec(options: BuildOptions, *, table: np.ndarray, tokens: list[str], counts: np.ndarray | None = None
          ) -> RemapSpec:
    data = options.data
    return RemapSpec(table=table, columns=data.columns, id_dtype=data.id_dtype, tokens=tokens, counts=counts,
                     unk=data.unk, ignore=data.ignore_index)


def _start_hashes(vocab: str | os.PathLike, plan: _Plan, options: BuildOptions,
                  hashes: run_dir.FileHashes) -> dict[str, Any]:
    """Hash the inputs on background threads while the vectors are parsed (never a FIFO: it would block)."""
    from ..vocab.tokenizer import source_file

    files = run_dir.input_files(vocab=source_file(vocab), vectors=plan.source.recorded_file,
                                data=[src for src, _ in plan.pairs], weights=options.vectors.weights)
    for path in [files["vocab"], *files["data"], files["weights"]]:
        if path is not None and (path.is_file() or path.is_dir()):
            hashes.start(path)
    subword_model = options.init.subword_model
    for path, kind in [(plan.source.path, plan.source.kind), (subword_model, "fasttext")]:
        if path is not None and kind == "fasttext":  # memory-mapped, so never streamed: hashed meanwhile
            hashes.start(path)
    return files


def _describe_inputs(files: dict[str, Any], vocab: str | os.PathLike, plan: _Plan, options: BuildOptions,
                     vocabulary: Vocab, hashes: run_dir.FileHashes) -> dict[str, Any]:
    """The manifest's `inputs`: each path as the user gave it, with size and sha256."""
    given = {"vocab": vocab, "vectors": plan.source.path, "weights": options.vectors.weights,
             "vocab_record": vocabulary.record}
    inputs = run_dir.describe_inputs(files, hashes=hashes, given=given)
    model = options.init.subword_model
    if model is not None:
        inputs["subword_model"] = hashes.describe(model, name=str(model))
    return inputs


def lookup_pad(vocab: Vocab, pad: str | None) -> int | None:
    """The original id of the --pad token, refusing one that is not in the vocabulary."""
    if pad is None:
        return None
    try:
        return vocab.tokens.index(pad)
    except ValueError:
        raise UsageError(f"--pad token {pad!r} is not in the vocabulary", path=vocab.path,
                         hint="add it to the vocabulary or pass the token exactly as written there") from None


def vocab_texts(vocabulary: Vocab, ids: np.ndarray) -> list[str]:
    """The text of each original id: a tokenizer's decoding (`Ġcat` -> ` cat`), else the token itself."""
    if vocabulary.format == "tokenizer":
        from ..vocab.tokenizer import load_tokenizer, token_texts

        return token_texts(load_tokenizer(vocabulary.path), ids.tolist())
    return [vocabulary.tokens[i] for i in ids.tolist()]


def _match(vocabulary: Vocab, source: VectorSource, options: BuildOptions, *, pad_id: int | None,
           digest: FileDigest) -> tuple[Any, list[str]]:
    """Match the vocabulary to the vectors; surprises that still give a correct result (a header count
    that disagrees with the lines) come back as notices, said once and kept in the manifest."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ReindexWarning)  # ours only: other warnings go their usual way
        matched = sources.match(source, vocabulary.tokens, rules=options.match, read=options.vectors,
                                pad=pad_id, digest=digest)
    notices = [str(w.message) for w in caught if issubclass(w.category, ReindexWarning)]
    for other in caught:
        if not issubclass(other.category, ReindexWarning):
            warnings.warn_explicit(other.message, other.category, other.filename, other.lineno)
    return matched, notices


def _split(vocabulary: Vocab, source: VectorSource, options: BuildOptions, *, early: Sequence[str] = (),
           digest: FileDigest) -> Split:
    """Match the vocabulary to the vectors and split the rows into the fixed and trainable blocks."""
    pad_id = lookup_pad(vocabulary, options.pad)
    matched, notices = _match(vocabulary, source, options, pad_id=pad_id, digest=digest)
    pad_has_row = pad_id is not None and matched.rows[pad_id] >= 0
    low = match_warning(int(np.count_nonzero(matched.rows >= 0)) - int(pad_has_row),
                        len(vocabulary) - int(pad_id is not None), misread=misread_as(vocabulary))
    notices += [] if low is None else [low]
    for notice in notices:
        progress.note(f"warning: {notice}")
    sorted_to_original = partition(matched, pad=pad_id)
    model = options.init.subword_model or source.path  # --init subwords: the fastText model's rows

    def subwords(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return sources.subword_vectors(model, [vocabulary.tokens[i] for i in ids.tolist()],
                                       dim=matched.matrix.shape[1])

    fixed, trainable, init_sources = split_rows(matched, sorted_to_original, pad=pad_id, init=options.init.init,
                                                seed=options.init.seed, subwords=subwords,
                                                texts=lambda ids: vocab_texts(vocabulary, ids))
    progress.note(f"matched {fixed.shape[0]:,} fixed and {trainable.shape[0]:,} trainable tokens")
    counts = {"vocab": len(vocabulary), "fixed": int(fixed.shape[0]), "trainable": int(trainable.shape[0]),
              "dim": int(fixed.shape[1]),
              "pad_id": None if pad_id is None else pad_sorted_id(sorted_to_original, pad_id),
              "lowercase_matches": int(np.count_nonzero(matched.lowercase)),
              "fallback": matched.fallback_counts(), "fallback_matches": matched.fallback, **matched.stats,
              "init_rows": describe_sources(init_sources, first=int(fixed.shape[0]))}
    if [*early, *notices]:
        counts["warnings"] = [*early, *notices]
    return Split(sorted_to_original, fixed, trainable, counts, vocabulary.tokens)


def _remap_data(pairs: list[tuple[Path, Path]], split: Split, *, out: Path, tmp: Path, options: BuildOptions,
                engine: EngineOptions) -> tuple[list[Any], np.ndarray | None]:
    """Remap every dataset into `tmp`; return the reports and the per-sorted-id corpus counts."""
    if not pairs:
        return [], None
    corpus = np.zeros(len(split.tokens), dtype=np.int64)
    spec = _spec(options, table=invert_permutation(split.sorted_to_original), tokens=split.tokens, counts=corpus)
    staged = [(src, tmp / dst.relative_to(out)) for src, dst in pairs]
    with progress.files_step("remapping", len(staged)):
        reports = run_engine(engine.engine, staged, spec, workers=engine.workers, ray_address=engine.ray_address)
    progress.note(f"remapped {sum(r.num_ids for r in reports):,} ids in {len(reports)} file(s)")
    return reports, corpus


def _write(tmp: Path, out: Path, split: Split, vocabulary: Vocab, reports: list[Any], corpus: np.ndarray | None,
           *, options: BuildOptions, inputs: dict[str, Any], hashes: run_dir.FileHashes
           ) -> tuple[dict[str, Any], run_dir.Run]:
    """Write the run's members into `tmp`; return the manifest and the `Run` as it will be loaded."""
    tokens_sorted = [vocabulary.tokens[i] for i in split.sorted_to_original.tolist()]
    manifest, metadata = run_dir.write_run(
        tmp, fixed=split.fixed, trainable=split.trainable, sorted_to_original=split.sorted_to_original,
        tokens_sorted=tokens_sorted, counts=split.counts, options=options.manifest(), corpus_counts=corpus,
        inputs=inputs, datasets=[run_dir.describe_report(r, tmp) for r in reports], hashes=hashes)
    written = run_dir.Run(path=out, sorted_to_original=split.sorted_to_original, num_fixed=split.fixed.shape[0],
                          num_trainable=split.trainable.shape[0], dim=split.fixed.shape[1], manifest=manifest,
                          metadata=metadata, tokens=tokens_sorted, fixed=split.fixed, trainable=split.trainable)
    return manifest, written
