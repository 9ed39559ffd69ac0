"""Coverage summaries of a run: counts and shares, corpus coverage, the most frequent trainable tokens.

`summarize` returns plain data (for `inspect --json`); `render` draws it as a Rich table.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import progress
from ..io.outputs import IMAGE_MAGIC
from ..options import DataOptions

#: What corpus coverage leaves out, as `render` says it under the table.
NOT_COUNTED = "corpus counts leave out the --pad token and --ignore-index ids"


def corpus_summary(counts: np.ndarray, tokens: list[str], num_fixed: int, *, top: int = 20,
                   pad_id: int | None = None) -> dict[str, Any]:
    """Corpus coverage from per-sorted-id counts, the pad token's left out (`pad_tokens` says how many).

    Ids passed with `--ignore-index` are never counted in the first place.

    >>> corpus_summary(np.array([5, 3, 2, 0]), ["a", "b", "c", "d"], 2)["fixed_share"]
    0.8
    >>> corpus_summary(np.array([5, 3, 2, 0]), ["<pad>", "b", "c", "d"], 2, pad_id=0)["fixed_share"]
    0.6
    """
    pad_tokens = 0
    if pad_id is not None and 0 <= pad_id < counts.shape[0]:
        pad_tokens = int(counts[pad_id])
        counts = counts.copy()
        counts[pad_id] = 0
    total = int(counts.sum())
    fixed_tokens = int(counts[:num_fixed].sum())
    trainable = counts[num_fixed:]
    # Ties broken by sorted id so the listing is deterministic.
    order = np.lexsort((np.arange(trainable.shape[0]), -trainable))[:top]
    top_trainable = [{"token": tokens[num_fixed + i], "sorted_id": num_fixed + int(i), "count": int(trainable[i])}
                     for i in order.tolist() if trainable[i] > 0]
    return {"tokens": total, "fixed_tokens": fixed_tokens,
            "fixed_share": fixed_tokens / total if total else 0.0,
            "distinct_tokens": int(np.count_nonzero(counts)),
            "distinct_trainable_tokens": int(np.count_nonzero(trainable)),
            "top_trainable": top_trainable, "pad_tokens": pad_tokens, "not_counted": ["pad", "ignore_index"]}


def summarize(run: Any, *, corpus_counts: np.ndarray | None = None, top: int = 20,
              all_fallback: bool = False) -> dict[str, Any]:
    """The numbers `inspect` shows for a loaded run (and `build` prints at its end).

    `fallback_matches` lists the first `top` tokens matched through a fallback form (all of them
    with `all_fallback`); `fallback` counts them by kind.
    """
    counts = run.manifest.get("counts", {})
    vocab = run.vocab_size
    summary: dict[str, Any] = {
        "run": str(run.path), "vocab": vocab, "dim": run.dim,
        "fixed": run.num_fixed, "trainable": run.num_trainable,
        "fixed_share": run.num_fixed / vocab if vocab else 0.0,
        "trainable_share": run.num_trainable / vocab if vocab else 0.0,
        "pad_id": counts.get("pad_id"),
        # the pad row sits in the fixed block (a zero row): `fixed` counts it, and says so
        "fixed_includes_pad": counts.get("pad_id") is not None and counts["pad_id"] < run.num_fixed,
        "lowercase_matches": counts.get("lowercase_matches", 0),
        "duplicate_vectors_skipped": counts.get("duplicate_vectors_skipped", 0),
        "vectors_read": counts.get("vectors_read"),
        "fallback": counts.get("fallback", {}),
        "fallback_matches": counts.get("fallback_matches", [])[:None if all_fallback else top],
        "init_rows": counts.get("init_rows"),   # per --init rule: rows and sorted-id ranges (runs since 0.1)
    }
    if corpus_counts is None:
        corpus_counts = stored_corpus_counts(run)
    if corpus_counts is not None:
        summary["corpus"] = corpus_summary(corpus_counts, run.tokens, run.num_fixed, top=top,
                                           pad_id=counts.get("pad_id"))
    return summary


def stored_corpus_counts(run: Any) -> np.ndarray | None:
    """The per-sorted-id counts `build` stored for its datasets, if it had any."""
    from ..run import CORPUS_COUNTS_FILE

    path = run.path / CORPUS_COUNTS_FILE
    return np.load(path) if path.exists() else None


def render(summary: dict[str, Any], console: Any = None) -> None:
    """Print the summary as Rich tables."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = console or Console()
    table = Table(title=Text(f"reindex run {summary['run']}"), show_header=True)
    table.add_column("")
    table.add_column("count", justify="right")
    table.add_column("share", justify="right")
    table.add_row("vocabulary", f"{summary['vocab']:,}", "100.0%")
    fixed = "fixed (pretrained) incl. the pad row" if summary.get("fixed_includes_pad") else "fixed (pretrained)"
    table.add_row(fixed, f"{summary['fixed']:,}", f"{summary['fixed_share']:.1%}")
    table.add_row("trainable", f"{summary['trainable']:,}", f"{summary['trainable_share']:.1%}")
    table.add_row("lowercase matches", f"{summary['lowercase_matches']:,}", "")
    for kind, count in summary.get("fallback", {}).items():
        if count and kind != "lowercase":
            table.add_row(f"{kind} matches", f"{count:,}", "")
    table.add_row("duplicate vectors skipped", f"{summary['duplicate_vectors_skipped']:,}", "")
    if summary.get("vectors_read") is not None:
        table.add_row("vectors read", f"{summary['vectors_read']:,}", "")
    table.add_row("dimension", str(summary["dim"]), "")
    for kind, given in (summary.get("init_rows") or {}).items():
        share = given["rows"] / summary["trainable"] if summary["trainable"] else 0.0
        table.add_row(f"trainable initialised by {kind}", f"{given['rows']:,}", f"{share:.1%}")
    corpus = summary.get("corpus")
    if corpus:
        table.add_row("corpus tokens (no pad, no ignored ids)", f"{corpus['tokens']:,}", "")
        table.add_row("corpus tokens fixed", f"{corpus['fixed_tokens']:,}", f"{corpus['fixed_share']:.1%}")
        if corpus.get("pad_tokens"):
            table.add_row("pad tokens (not counted)", f"{corpus['pad_tokens']:,}", "")
        table.caption = NOT_COUNTED
    console.print(table)
    if summary.get("fallback_matches"):
        matches = Table(title=f"fallback matches (first {len(summary['fallback_matches'])} of "
                              f"{sum(summary['fallback'].values()):,})")
        for name in ("token", "vector token", "kind"):
            matches.add_column(name)
        for entry in summary["fallback_matches"]:
            matches.add_row(Text(repr(entry["token"])), Text(repr(entry["vector"])), entry["kind"])
        console.print(matches)
    if corpus and corpus["top_trainable"]:
        top = Table(title="most frequent trainable tokens")
        top.add_column("token")
        top.add_column("sorted id", justify="right")
        top.add_column("count", justify="right")
        for row in corpus["top_trainable"]:
            # Text(), not a str: a token like "[bold]" must not be read as Rich markup.
            shown = row["token"] if row["token"].isprintable() else repr(row["token"])
            top.add_row(Text(shown), str(row["sorted_id"]), f"{row['count']:,}")
        console.print(top)


#: Image formats matplotlib's Agg, PDF, PS and SVG backends write (`savefig` picks one by suffix): the
#: ones the output rule recognises by their first bytes.
PLOT_SUFFIXES = tuple(IMAGE_MAGIC)


def check_plot_path(path: Any) -> None:
    """Refuse a --plot path that cannot be written, before any work (exit 2).

    >>> check_plot_path("coverage.txt")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    reindex.errors.UsageError: coverage.txt: --plot needs an image suffix, got '.txt' (use one of .png, .pdf, ...)
    """
    from ..errors import UsageError

    path = Path(path)
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise UsageError(f"--plot needs an image suffix, got {path.suffix or 'none'!r}", path=path,
                         hint=f"use one of {', '.join(PLOT_SUFFIXES)}")
    parent = path.parent
    if not parent.is_dir():
        raise UsageError(f"the folder {str(parent)!r} does not exist", path=path, hint="create it first")
    if path.is_dir():
        raise UsageError("is a directory", path=path, hint="name an image file to write")
    if path.exists() and not path.is_file():  # a FIFO would block the write; a device is no image
        raise UsageError("exists and is not a regular file", path=path, hint="name an image file to write")
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        raise UsageError("--plot needs matplotlib", hint="pip install 'reindex-vocab[plot]'") from e


def plot_coverage(run: Any, path: Any, *, corpus_counts: np.ndarray | None = None, data: Any = ()) -> None:
    """Draw the share of corpus tokens covered by fixed rows against frequency rank (needs matplotlib).

    The title names the run and its final token and vocabulary coverage; 1200 x 720 pixels for a PNG.
    """
    from ..io.inputs import Inputs
    from ..io.outputs import check_output

    check_plot_path(path)
    inputs = Inputs()
    inputs.add("RUN", run.path)
    inputs.add_files("DATA", data)
    inputs.add_recorded(Path(run.path), run.manifest)
    check_output(path, kind="plot", force=True, inputs=inputs, option="--plot")  # never over an input
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    counts = _plot_counts(run, corpus_counts)
    order = np.argsort(-counts, kind="stable")
    ranked = counts[order]
    fixed = order < run.num_fixed
    total = max(int(ranked.sum()), 1)
    token_coverage = float((ranked * fixed).sum()) / total
    vocab_coverage = run.num_fixed / max(run.vocab_size, 1)
    name = Path(run.path).resolve().name
    image = io.BytesIO()
    with plt.rc_context({"font.size": 13, "axes.titlesize": 15, "axes.labelsize": 14, "legend.fontsize": 12}):
        fig, ax = plt.subplots(figsize=(10, 6))  # 1200 x 720 pixels at dpi 120: readable on a laptop
        ranks = np.arange(1, ranked.shape[0] + 1)
        ax.plot(ranks, np.cumsum(ranked * fixed) / total, linewidth=2.5,
                label="corpus tokens with a pretrained vector (fixed)")
        ax.plot(ranks, np.cumsum(ranked) / total, linewidth=2, linestyle="--", label="all corpus tokens")
        ax.set_xscale("log")
        ax.set_ylim(0, 1.02)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.grid(True, which="major", alpha=0.3)
        ax.set_xlabel("vocabulary rank by corpus frequency (log scale)")
        ax.set_ylabel("cumulative share of corpus tokens")
        ax.set_title(f"{name}: token coverage {token_coverage:.1%}, vocabulary coverage {vocab_coverage:.1%}\n"
                     f"({run.num_fixed:,} of {run.vocab_size:,} tokens fixed; {total:,} corpus tokens)")
        ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(image, dpi=120, format=Path(path).suffix.lower().lstrip("."))
        plt.close(fig)
    # Written here, not by matplotlib, whose image writers can lose a failed write (ENOSPC);
    # atomically, and over an existing file only if it is an earlier plot (outputs.py).
    from ..io.atomic import atomic_file
    from ..io.outputs import PLOT_FORMAT, mark, replacer

    with atomic_file(path, force=True, replace=replacer("plot")) as temporary:
        temporary.write_bytes(image.getbuffer())
        mark(temporary, PLOT_FORMAT)


def _plot_counts(run: Any, corpus_counts: np.ndarray | None) -> np.ndarray:
    """The counts the plot ranks: given or stored, the pad token's left out as in the summary."""
    from ..errors import UsageError

    counts = corpus_counts if corpus_counts is not None else stored_corpus_counts(run)
    if counts is None:
        raise UsageError("no corpus counts to plot", path=run.path,
                         hint="pass datasets to `inspect`, or build the run with datasets")
    pad_id = run.manifest.get("counts", {}).get("pad_id")
    if pad_id is not None:
        counts = counts.copy()
        counts[pad_id] = 0
    return counts


def inspect_run(run_path: str | os.PathLike, data: Sequence[str | os.PathLike] = (), *,
                options: DataOptions = DataOptions(), top: int = 20, plot: str | os.PathLike | None = None,
                all_fallback: bool = False) -> dict[str, Any]:
    """`reindex inspect`: the summary of a run, its corpus coverage measured on `data` (original ids) or
    on the counts `build` stored; with `plot`, the coverage curve drawn to that image too.

    inspect_run("runs/demo", ["data/train.parquet"])["corpus"]
    """
    from ..datasets.core import check_columns
    from ..run import load_run
    from .remap import count_planned, skipped_json

    check_columns(options.columns)
    if plot is not None:
        check_plot_path(plot)  # before any work
    loaded = load_run(run_path)
    skipped: list[dict[str, str]] = []
    counts: np.ndarray | None
    if data:
        counts, plan = count_planned(loaded, data, options=options)
        skipped = skipped_json(plan)
    else:
        counts = stored_corpus_counts(loaded)
    if plot is not None:
        plot_coverage(loaded, plot, corpus_counts=counts, data=data)
        progress.note(f"wrote {plot}")
    summary = summarize(loaded, corpus_counts=counts, top=top, all_fallback=all_fallback)
    return {**summary, "skipped": skipped} if data else summary
