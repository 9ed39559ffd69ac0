"""`reindex build`: vocabulary + pretrained vectors (+ datasets) -> a run directory.

The library entry point is `build(...)`; the CLI only parses options and calls it.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .errors import ReindexError, ReindexWarning, UsageError
from .init import INITS, column_stats, describe_sources, init_pieces, initialise
from .mapping import build_permutation, invert_permutation
from .matching import Matched
from .progress import step
from .rows import gather_rows
from .vocab import Vocab, misread_as, read_vocab

#: Under this share of vocabulary tokens with a vector, `build` warns that the run is probably a mistake.
LOW_MATCH_SHARE = 0.05


def partition(matched: Matched, *, pad: int | None) -> np.ndarray:
    """`sorted_to_original` for matched rows; with an old run, old tokens keep their sorted ids."""
    is_fixed = matched.rows >= 0
    if matched.old_order is None:
        return build_permutation(is_fixed, pad=pad)
    head = matched.old_order
    rest = np.ones(is_fixed.shape[0], dtype=bool)
    rest[head] = False
    new_fixed = np.flatnonzero(rest & is_fixed)
    new_trainable = np.flatnonzero(rest & ~is_fixed)
    return np.concatenate([head, new_fixed, new_trainable]).astype(np.int64)


def split_rows(matched: Matched, sorted_to_original: np.ndarray, *, pad: int | None, init: str, seed: int,
               subwords: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
               texts: Callable[[np.ndarray], list[str]] | None = None
               ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The `fixed` block (vectors in sorted order, pad as a zero row), the initial `trainable` block, and
    which trainable rows each init rule gave. `subwords` maps trainable original ids to (rows, has_ngrams);
    `texts` maps them to the strings an old tokenizer splits (`--init pieces`).

    Except with `--init pieces` (which reads the old rows afterwards), `fixed` is made in the memory
    of `matched.matrix` when that matrix owns it: the vectors are held once, not twice."""
    rows = matched.rows[sorted_to_original]
    num_fixed = int(np.count_nonzero(rows >= 0))
    start = 0
    if pad is not None and matched.old_order is None:
        num_fixed = 1 + int(np.count_nonzero(rows[1:] >= 0))
        start = 1  # the pad row: zeros
    dim = matched.matrix.shape[1]
    fixed = gather_rows(matched.matrix, rows[start:num_fixed], lead=start, in_place=init != "pieces")
    if fixed is matched.matrix:
        matched.matrix = np.zeros((0, dim), np.float32)  # spent: its rows are now `fixed`'s
    real = fixed[start:]
    if matched.old_order is not None and pad is not None:
        real = np.delete(fixed, pad_sorted_id(sorted_to_original, pad), axis=0)
    if init == "pieces":  # the old tokenizer splits each new token; its row starts at the pieces' mean
        if matched.pieces is None or texts is None:
            raise UsageError("--init pieces needs a Hugging Face model as --vectors",
                             hint="its tokenizer splits each new token into old pieces")
        pieces = matched.pieces(texts(sorted_to_original[num_fixed:]))
        trainable = init_pieces(pieces, matched.matrix, fallback=column_stats(real, std=False)[0])
        has = np.fromiter((len(p) > 0 for p in pieces), dtype=bool, count=len(pieces))
        return fixed, trainable, {"pieces": np.flatnonzero(has), "mean": np.flatnonzero(~has)}
    given = subwords(sorted_to_original[num_fixed:]) if init == "subwords" and subwords is not None else None
    trainable, sources = initialise(len(sorted_to_original) - num_fixed, real, init=init, seed=seed, subwords=given)
    return fixed, trainable, sources


def _check_subword_model(*, init: str, vectors: str | os.PathLike,
                         subword_model: str | os.PathLike | None) -> None:
    """`--init subwords` needs a fastText `.bin`: --subword-model, else --vectors itself."""
    if subword_model is not None and init != "subwords":
        raise UsageError("--subword-model goes with --init subwords", path=subword_model,
                         hint="add --init subwords, or drop --subword-model")
    if init != "subwords":
        return
    from .vectors.fasttext import is_fasttext

    model = Path(subword_model if subword_model is not None else vectors)
    flag = "--subword-model" if subword_model is not None else "--vectors"
    if not model.exists():
        raise ReindexError("no such file or directory", path=model, hint=f"check the {flag} path")
    if not (model.is_file() and is_fasttext(model)):
        raise UsageError(f"--init subwords needs a fastText .bin model, and this {flag} is not one", path=model,
                         hint="pass --subword-model FILE.bin (an unsupervised fastText model)")


def _fasttext_models(vectors: Path, subword_model: str | os.PathLike | None) -> list[Path]:
    """The fastText `.bin` files among the inputs (read through a memory map, not a stream)."""
    from .vectors.fasttext import is_fasttext

    paths = [vectors] + ([Path(subword_model)] if subword_model is not None else [])
    return [p for p in paths if p.is_file() and is_fasttext(p)]


def _with_subword_model(inputs: dict[str, Any], subword_model: str | os.PathLike | None, hashes: Any
                        ) -> dict[str, Any]:
    """The manifest's inputs, plus `subword_model` (path as given, size, sha256) when there is one."""
    if subword_model is not None:
        inputs["subword_model"] = hashes.describe(Path(subword_model), name=str(subword_model))
    return inputs


def pad_sorted_id(sorted_to_original: np.ndarray, pad: int) -> int:
    return int(np.flatnonzero(sorted_to_original == pad)[0])


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
        from .vocab.tokenizer import load_tokenizer, token_texts

        return token_texts(load_tokenizer(vocabulary.path), ids)
    return [vocabulary.tokens[i] for i in ids.tolist()]


@dataclass
class BuildResult:
    """What `build` wrote and counted."""

    out: Path
    counts: dict[str, Any]
    datasets: list[dict[str, Any]]
    manifest: dict[str, Any]
    run: Any = None                          # the Run written, tokens and vectors already in memory
    corpus_counts: np.ndarray | None = None  # per sorted id, when datasets were given


def build(*, vocab: str | os.PathLike, vectors: str | os.PathLike, out: str | os.PathLike,
          data: Sequence[str | os.PathLike] = (), pad: str | None = None, lowercase_fallback: bool = False,
          case_fallback: bool = False, normalize: str = "none", limit: int | None = None,
          init: str = "normal", seed: int = 0, vectors_format: str | None = None,
          duplicates: str = "first", unicode_errors: str = "strict",
          columns: Sequence[str] = ("input_ids",), id_dtype: str | None = None, unk: str | None = None,
          ignore_index: Sequence[int] = (), include: Sequence[str] = (), force: bool = False,
          workers: int | None = None, progress: Callable[[str], None] | None = None,
          engine: str = "local", ray_address: str | None = None,
          weights: str | os.PathLike | None = None,
          subword_model: str | os.PathLike | None = None, vectors_key: str | None = None) -> BuildResult:
    """Build a run directory. Everything is validated before RUN appears; a failure leaves no RUN.

    `vocab="-"` reads the vocabulary from stdin. Matching (`lowercase_fallback`, `case_fallback`,
    `normalize`) follows `reindex.matching`; `limit` reads only the first vectors of the file;
    `unk`, `ignore_index`, `include` and `columns` apply to the datasets as in `remap_files`.

    build(vocab="data/vocab.txt", vectors="data/vectors.txt", out="runs/x")
    """
    from . import run as run_dir
    from .vocab import tokenizer as vocab_hf
    from .datasets.core import check_columns
    from .io.atomic import atomic_directory
    from .io.outputs import check_output, replacer
    from .vectors import hf_model

    note = progress or (lambda message: None)
    out = Path(out)
    check_output(out, kind="run", force=force, inputs=[vocab, vectors, *data, weights])
    if init not in INITS:
        raise UsageError(f"--init must be one of {', '.join(INITS)}, got {init!r}")
    _check_subword_model(init=init, vectors=vectors, subword_model=subword_model)
    if init == "pieces" and Path(vectors).exists() and not hf_model.is_hf_model(vectors):  # before any parsing
        raise UsageError("--init pieces needs a Hugging Face model as --vectors", path=vectors,
                         hint="its tokenizer splits each new token into old pieces")
    options = {"pad": pad, "lowercase_fallback": lowercase_fallback, "case_fallback": case_fallback,
               "normalize": normalize, "limit": limit, "init": init, "seed": seed,
               "vectors_format": vectors_format, "duplicates": duplicates, "unicode_errors": unicode_errors,
               "columns": list(columns), "id_dtype": id_dtype, "unk": unk,
               "ignore_index": [int(i) for i in ignore_index], "include": list(include),
               "weights": None if weights is None else str(weights),
               "subword_model": None if subword_model is None else str(subword_model), "vectors_key": vectors_key}
    check_columns(columns)
    with run_dir.FileHashes() as hashes:
        vocabulary, pairs, misread, early = _read_inputs(
            vocab, data, data_dir=out / run_dir.DATA_DIR, include=include, note=note,
            spec=dict(columns=tuple(columns), id_dtype=id_dtype, unk=unk, ignore=tuple(int(i) for i in ignore_index)))
        files = run_dir.input_files(vocab=vocab_hf.source_file(vocab), vectors=hf_model.source_file(vectors),
                                    data=[src for src, _ in pairs], weights=weights)
        for path in [files["vocab"], *files["data"], files["weights"]]:
            if path is not None and (path.is_file() or path.is_dir()):  # never a FIFO: it would block
                hashes.start(path)  # on a background thread while the vectors are parsed
        for path in _fasttext_models(files["vectors"], subword_model):  # memory-mapped, so never streamed:
            hashes.start(path)                                          # hashed on a thread meanwhile
        note(f"read {len(vocabulary):,} vocabulary tokens")
        from .vectors import FileDigest

        digest = FileDigest()  # a vector file is hashed as its bytes are parsed, not read twice
        split = _split(vocabulary, vectors, options, note=note, early=early, misread=misread, digest=digest)
        if digest.complete:
            hashes.put(files["vectors"], digest.record())
        tokens_sorted = [vocabulary.tokens[i] for i in split.sorted_to_original.tolist()]
        with atomic_directory(out, force=force, replace=replacer("run")) as tmp:
            reports, corpus = _remap_data(pairs, split, out=out, tmp=tmp, options=options, workers=workers,
                                          engine=engine, ray_address=ray_address, note=note)
            with step(f"writing {out} (hashing inputs and outputs)"):
                manifest, metadata = run_dir.write_run(
                    tmp, fixed=split.fixed, trainable=split.trainable,
                    sorted_to_original=split.sorted_to_original, tokens_sorted=tokens_sorted,
                    counts=split.counts, options=options, corpus_counts=corpus,
                    inputs=_with_subword_model(run_dir.describe_inputs(
                        files, hashes=hashes, given={"vocab": vocab, "vectors": vectors, "weights": weights,
                                                     "vocab_record": vocabulary.record}), subword_model, hashes),
                    datasets=[run_dir.describe_report(r, tmp) for r in reports], hashes=hashes)
    written = run_dir.Run(path=out, sorted_to_original=split.sorted_to_original, num_fixed=split.fixed.shape[0],
                          num_trainable=split.trainable.shape[0], dim=split.fixed.shape[1], manifest=manifest,
                          metadata=metadata, tokens=tokens_sorted, fixed=split.fixed, trainable=split.trainable)
    return BuildResult(out=out, counts=split.counts, datasets=manifest["datasets"], manifest=manifest,
                       run=written, corpus_counts=corpus)


def _read_inputs(vocab: str | os.PathLike, data: Sequence[str | os.PathLike], *, data_dir: Path,
                 include: Sequence[str], spec: dict[str, Any], note: Callable[[str], None]
                 ) -> tuple[Vocab, list[tuple[Path, Path]], str | None, list[str]]:
    """Read the vocabulary (warning when it looks like another kind of file) and check every dataset's
    format, columns and dtype, all before the vectors are parsed: a wrong column fails in a second.

    Returns (vocabulary, (source, output) pairs, what the vocabulary looks like or None, warnings said).
    """
    from .datasets import RemapSpec, check_datasets, plan_outputs

    vocabulary = read_vocab(vocab)
    misread = misread_as(vocabulary)
    early = [] if misread is None else [f"the vocabulary {vocab} looks like {misread}"]
    for notice in early:
        note(f"warning: {notice}")
    pairs = plan_outputs(list(data), data_dir, include=include) if data else []
    check_datasets([src for src, _ in pairs], RemapSpec(table=np.zeros(len(vocabulary), np.int64),
                                                        tokens=vocabulary.tokens, **spec))
    return vocabulary, pairs, misread, early


@dataclass
class Split:
    """The renumbering: the permutation, both blocks, and what was counted on the way."""

    sorted_to_original: np.ndarray
    fixed: np.ndarray
    trainable: np.ndarray
    counts: dict[str, Any]
    tokens: list[str]   # original-id order


def match_warning(matched: int, vocab_size: int, *, misread: str | None = None) -> str | None:
    """The warning for a run where (almost) no vocabulary token has a vector, naming the likely cause.

    >>> match_warning(0, 5)[:54]
    'no vocabulary token has a pretrained vector (0 of 5): '
    >>> match_warning(1, 5) is None
    True
    """
    if vocab_size == 0 or matched >= LOW_MATCH_SHARE * vocab_size:
        return None
    head = (f"no vocabulary token has a pretrained vector (0 of {vocab_size:,})" if matched == 0 else
            f"only {matched:,} of {vocab_size:,} vocabulary tokens ({matched / vocab_size:.2%}) have a "
            f"pretrained vector")
    cause = (f"the vocabulary is {misread.split(':')[0]}" if misread is not None else
             "the vocabulary and the vectors come from different tokenizers or casings "
             "(try --lowercase-fallback), or --vectors names the wrong file")
    return f"{head}: probably {cause}"


def _split(vocabulary: Vocab, vectors: str | os.PathLike, options: dict[str, Any], *,
           note: Callable[[str], None], early: Sequence[str] = (), misread: str | None = None,
           digest: Any = None) -> Split:
    """Match the vocabulary to the vectors and split the rows into the fixed and trainable blocks."""
    from . import sources

    pad_id = lookup_pad(vocabulary, options["pad"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ReindexWarning)  # ours only: other warnings go their usual way
        matched = sources.match(vectors, vocabulary.tokens, lowercase_fallback=options["lowercase_fallback"],
                                case_fallback=options["case_fallback"], normalize=options["normalize"],
                                limit=options["limit"], vectors_format=options["vectors_format"],
                                duplicates=options["duplicates"], unicode_errors=options["unicode_errors"],
                                pad=pad_id, weights=options["weights"], vectors_key=options["vectors_key"],
                                digest=digest)
    # Surprises that still give a correct result (a header count that disagrees with the lines):
    # said once on stderr and kept in the manifest, never a Python warning with a source line.
    notices = [str(w.message) for w in caught if issubclass(w.category, ReindexWarning)]
    for other in caught:
        if not issubclass(other.category, ReindexWarning):
            warnings.warn_explicit(other.message, other.category, other.filename, other.lineno)
    pad_has_row = pad_id is not None and matched.rows[pad_id] >= 0
    low = match_warning(int(np.count_nonzero(matched.rows >= 0)) - int(pad_has_row),
                        len(vocabulary) - int(pad_id is not None), misread=misread)
    notices += [] if low is None else [low]
    for notice in notices:
        note(f"warning: {notice}")
    notices = [*early, *notices]
    sorted_to_original = partition(matched, pad=pad_id)
    model = options.get("subword_model") or vectors  # --init subwords: the fastText model's rows

    def subwords(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return sources.subword_vectors(model, [vocabulary.tokens[i] for i in ids.tolist()], dim=matched.matrix.shape[1])

    fixed, trainable, init_sources = split_rows(matched, sorted_to_original, pad=pad_id, init=options["init"],
                                                seed=options["seed"], subwords=subwords,
                                                texts=lambda ids: vocab_texts(vocabulary, ids))
    note(f"matched {fixed.shape[0]:,} fixed and {trainable.shape[0]:,} trainable tokens")
    pad_sorted = None if pad_id is None else pad_sorted_id(sorted_to_original, pad_id)
    counts = {"vocab": len(vocabulary), "fixed": int(fixed.shape[0]), "trainable": int(trainable.shape[0]),
              "dim": int(fixed.shape[1]), "pad_id": pad_sorted,
              "lowercase_matches": int(np.count_nonzero(matched.lowercase)),
              "fallback": matched.fallback_counts(), "fallback_matches": matched.fallback, **matched.stats,
              "init_rows": describe_sources(init_sources, first=int(fixed.shape[0]))}
    if notices:
        counts["warnings"] = notices
    return Split(sorted_to_original, fixed, trainable, counts, vocabulary.tokens)


def _remap_data(pairs: list[tuple[Path, Path]], split: Split, *, out: Path, tmp: Path, options: dict[str, Any],
                workers: int | None, engine: str, ray_address: str | None,
                note: Callable[[str], None]) -> tuple[list[Any], np.ndarray | None]:
    """Remap every dataset into `tmp`; return the reports and the per-sorted-id corpus counts."""
    from .datasets import RemapSpec
    from .engines import run_engine

    if not pairs:
        return [], None
    corpus = np.zeros(len(split.tokens), dtype=np.int64)
    from . import progress

    spec = RemapSpec(table=invert_permutation(split.sorted_to_original), columns=tuple(options["columns"]),
                     id_dtype=options["id_dtype"], tokens=split.tokens, counts=corpus, unk=options["unk"],
                     ignore=tuple(options["ignore_index"]))
    staged = [(src, tmp / dst.relative_to(out)) for src, dst in pairs]
    with progress.files_step("remapping", len(staged)):
        reports = run_engine(engine, staged, spec, workers=workers, ray_address=ray_address)
    note(f"remapped {sum(r.num_ids for r in reports):,} ids in {len(reports)} file(s)")
    return reports, corpus
