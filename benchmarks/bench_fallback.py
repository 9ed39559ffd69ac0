"""`--normalize` and `--case-fallback` against an exact build of the same file: time and peak RSS.

    python -m benchmarks.bench_fallback                  # 200,000 x 300 (about 520 MB)
    python -m benchmarks.bench_fallback --lines 40000    # a quicker stand-in

The file is shaped like spaCy's table written out as word2vec text: mostly lowercase words, some in
Title and UPPER case, full-width and ligature forms listed before the plain word (`ｂｙ` before `by`),
and non-ASCII words; the vocabulary (40,000 words) holds plain words, some only in another case,
some only in a compatibility form, and some absent. Each contender is a fresh `reindex build`
process, run in interleaved rounds (A B C D, D A B C, ...); the table gives medians and their ratios
to the exact build. A streaming fallback parses only the lines whose token (or its normal or
case-folded form) the vocabulary can use, so its ratios stay near 1.
"""
from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
from pathlib import Path

import numpy as np

from .common import WORK, Row, peak_rss_of, print_table
from .vector_files import DIM, NUMBERS

PY = sys.executable
FLAGS = {"exact": [], "--normalize nfkc": ["--normalize", "nfkc"], "--case-fallback": ["--case-fallback"],
         "--normalize nfkc --case-fallback": ["--normalize", "nfkc", "--case-fallback"]}


def full_width(word: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in word)


def file_tokens(i: int) -> list[str]:
    """The tokens of word i, in file order."""
    word = f"fiw{i}" if i % 100 == 0 else f"w{i}"
    if i % 30 == 0:
        return [f"café{i}"]
    forms = [full_width(word)] if i % 50 == 0 else []
    forms += [word.replace("fi", "ﬁ")] if i % 100 == 0 else []
    forms.append(word.upper() if i % 7 == 0 else word.title() if i % 4 == 0 else word)
    return forms


def make_file(lines: int) -> tuple[Path, Path]:
    """(word2vec text file, vocabulary), written once per size."""
    WORK.mkdir(parents=True, exist_ok=True)
    path, vocab = WORK / f"fallback_{lines}x{DIM}.vec", WORK / f"fallback_{lines}_vocab.txt"
    if not path.exists():
        tokens = [t for i in range(lines) for t in file_tokens(i)][:lines]
        rng = np.random.default_rng(19)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(f"{len(tokens)} {DIM}\n".encode())
            for start in range(0, len(tokens), 10_000):
                picks = rng.integers(0, len(NUMBERS), (min(10_000, len(tokens) - start), DIM))
                f.write("".join(t + " " + " ".join([NUMBERS[j] for j in row.tolist()]) + "\n"
                                for t, row in zip(tokens[start:start + 10_000], picks)).encode())
        tmp.rename(path)
    if not vocab.exists():
        rng = np.random.default_rng(50)
        picked = rng.choice(lines, size=min(36_000, lines), replace=False).tolist()
        words = [f"fiw{i}" if i % 100 == 0 else f"café{i}" if i % 30 == 0 else f"w{i}" for i in picked]
        words += [full_width(f"w{i}") for i in range(1, 2000, 1)] + [f"absent{i}" for i in range(2000)]
        vocab.write_text("\n".join(dict.fromkeys(words)) + "\n", encoding="utf-8")
    return path, vocab


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    path, vocab = make_file(args.lines)
    out = WORK / "fallback_runs"
    runs: dict[str, list[tuple[float, int]]] = {name: [] for name in FLAGS}
    for round_ in range(args.repeats + 1):  # round 0 warms the page cache and is not counted
        order = list(FLAGS.items())
        random.Random(round_).shuffle(order)
        for name, flags in order:
            target = out / name.replace(" ", "_").strip("-")
            shutil.rmtree(target, ignore_errors=True)
            measured = peak_rss_of([PY, "-m", "reindex", "build", "-q", "--vocab", str(vocab), "--vectors",
                                    str(path), "--out", str(target), *flags])
            if round_:
                runs[name].append(measured)
    shutil.rmtree(out, ignore_errors=True)
    seconds = {name: statistics.median(s for s, _ in got) for name, got in runs.items()}
    peaks = {name: statistics.median(p for _, p in got) for name, got in runs.items()}
    rows = [Row(name, seconds[name], seconds[name] / seconds["exact"],
                f"peak RSS {peaks[name] / 2**20:,.0f} MiB ({peaks[name] / peaks['exact']:.2f}x)") for name in FLAGS]
    size = path.stat().st_size / 2**20
    print_table(f"`reindex build` of {args.lines:,} x {DIM} word2vec text ({size:,.0f} MiB), "
                f"{args.repeats} rounds", rows, baseline="exact")


if __name__ == "__main__":
    main()
