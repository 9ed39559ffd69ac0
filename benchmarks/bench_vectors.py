"""Vector loading: reindex against pyarrow.csv, gensim and a plain read (ANCHORS section 2).

    python -m benchmarks.bench_vectors            # 200,000 x 300 (about 600 MB of text)
    python -m benchmarks.bench_vectors --quick    # 20,000 x 300

Inputs are generated once into benchmarks/_work with fixed seeds: a GloVe text file whose tokens
include spaces ("New York") and NA-like words (nan, null, NA, ...), and the same vectors as word2vec
binary. Contenders run interleaved (A B C A B C); gensim text takes ~26 s a run, so it runs once,
on a copy whose space-containing tokens are joined with "_" (gensim cannot read them at all).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .common import WORK, Row, interleaved, peak_rss_of, print_table

DIM = 300
SPECIAL = ["nan", "null", "NA", "None", "n/a", "NaN", '"quoted', "New York", "a b c", "#x"]


def make_tokens(n: int) -> list[str]:
    """w0, w1, ... with an NA-like word or a token with spaces every 5,000 lines."""
    tokens = [f"w{i}" for i in range(n)]
    for k, i in enumerate(range(2500, n, 5000)):
        tokens[i] = SPECIAL[k % len(SPECIAL)] + ("" if k < len(SPECIAL) else f" {k}")
    return tokens


def make_matrix(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, DIM)).astype(np.float32)


def glove_lines(tokens: list[str], matrix: np.ndarray) -> bytes:
    """Numbers with 6 decimals, like GloVe; written with numpy, a chunk of rows at a time."""
    out = []
    for start in range(0, len(tokens), 2000):
        block = matrix[start:start + 2000]
        body = np.char.mod("%.6f", block.astype(np.float64))
        for token, row in zip(tokens[start:start + 2000], body):
            out.append(token + " " + " ".join(row.tolist()) + "\n")
    return "".join(out).encode("utf-8")


def make_inputs(n: int) -> tuple[Path, Path, set[str]]:
    """(glove text path, word2vec binary path, 5% keep set), generated once per size."""
    WORK.mkdir(parents=True, exist_ok=True)
    text, binary = WORK / f"glove_{n}x{DIM}.txt", WORK / f"w2v_{n}x{DIM}.bin"
    tokens, matrix = make_tokens(n), make_matrix(n)
    if not text.exists():
        tmp = text.with_suffix(".tmp")
        tmp.write_bytes(glove_lines(tokens, matrix))
        tmp.rename(text)
    if not binary.exists():
        tmp = binary.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(f"{n} {DIM}\n".encode())
            for token, row in zip(tokens, matrix):
                f.write(token.replace(" ", "_").encode() + b" " + row.astype("<f4").tobytes() + b"\n")
        tmp.rename(binary)
    no_spaces = text.with_name(text.stem + "_nospace.txt")
    if not no_spaces.exists():  # gensim splits tokens at spaces and then fails: give it "New_York"
        data = text.read_bytes()
        for token in {t for t in tokens if " " in t}:
            data = data.replace(b"\n" + token.encode() + b" ", b"\n" + token.replace(" ", "_").encode() + b" ")
        no_spaces.write_bytes(data)
    keep = set(np.random.default_rng(1).choice(tokens, size=n // 20, replace=False).tolist())
    return text, binary, keep


def pyarrow_csv(path: Path):
    """The reference: pyarrow's CSV reader, quoting and NA detection off, float32 columns.

    It cannot parse tokens with spaces, so such rows are skipped (it is a speed reference only).
    """
    import pyarrow as pa
    import pyarrow.csv as pcsv

    names = [f"f{i}" for i in range(DIM + 1)]
    return pcsv.read_csv(
        path, read_options=pcsv.ReadOptions(column_names=names),
        parse_options=pcsv.ParseOptions(delimiter=" ", quote_char=False, invalid_row_handler=lambda r: "skip"),
        convert_options=pcsv.ConvertOptions(column_types={n: pa.float32() for n in names[1:]},
                                            null_values=[], strings_can_be_null=False))


def check(text: Path, binary: Path, keep: set[str], n: int) -> None:
    """Refuse to time anything that reads wrong."""
    from reindex.vectors import read_vectors

    tokens, matrix = make_tokens(n), make_matrix(n)
    full = read_vectors(text)
    assert full.tokens == tokens, "reindex text tokens differ"
    assert np.allclose(full.matrix, matrix, atol=1e-6), "reindex text vectors differ"
    part = read_vectors(text, keep=keep)
    assert set(part.tokens) == keep and len(part.tokens) == len(keep)
    b = read_vectors(binary)
    assert np.array_equal(b.matrix, matrix) and b.tokens == [t.replace(" ", "_") for t in tokens]


def child_peak(cmd: list[str]) -> int:
    """Peak RSS of `cmd`, spawned from a small intermediate process.

    Linux counts a child's RSS before exec in its ru_maxrss, so a child of this (large) process
    would report at least this process's size; a fresh interpreter in between avoids that.
    """
    import json
    import subprocess

    runner = "import json, sys; from benchmarks.common import peak_rss_of; print(json.dumps(peak_rss_of(sys.argv[1:])))"
    out = subprocess.run([sys.executable, "-c", runner, *cmd], check=True, capture_output=True, text=True,
                         cwd=Path(__file__).parent.parent)
    return int(json.loads(out.stdout)[1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20,000 vectors instead of 200,000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gensim-text-repeats", type=int, default=1)
    args = parser.parse_args(argv)
    n = 20_000 if args.quick else 200_000
    text, binary, keep = make_inputs(n)
    check(text, binary, keep, n)

    from gensim.models import KeyedVectors

    from reindex.vectors import read_vectors

    contenders = {
        "plain file read (bytes)": lambda: text.read_bytes(),
        "pyarrow.csv read_csv": lambda: pyarrow_csv(text),
        "reindex text, all words": lambda: read_vectors(text),
        "reindex text, keep 5%": lambda: read_vectors(text, keep=keep),
        "gensim binary": lambda: KeyedVectors.load_word2vec_format(str(binary), binary=True),
        "reindex binary": lambda: read_vectors(binary),
    }
    medians = interleaved(contenders, repeats=args.repeats, warmup=1)
    print(medians, flush=True)
    no_spaces = text.with_name(text.stem + "_nospace.txt")  # same bytes, "New York" -> "New_York"
    gensim_text = interleaved({"gensim text (no_header=True)": lambda: KeyedVectors.load_word2vec_format(
        str(no_spaces), no_header=True)}, repeats=args.gensim_text_repeats, warmup=0)
    medians.update(gensim_text)

    mb = text.stat().st_size / 1e6
    ratios = {
        "reindex text, all words": ("pyarrow.csv read_csv", "gensim text (no_header=True)"),
        "reindex text, keep 5%": ("reindex text, all words",),
        "reindex binary": ("gensim binary",),
    }
    rows = []
    for name, seconds in medians.items():
        versus = "; ".join(f"{medians[o] / seconds:.2f}x faster than {o}" for o in ratios.get(name, ()))
        rows.append(Row(name, seconds, None, versus))
    print_table(f"Load {n:,} x {DIM} vectors: GloVe text {mb:.0f} MB, word2vec binary "
                f"{binary.stat().st_size / 1e6:.0f} MB (median of {args.repeats}; gensim text: "
                f"{args.gensim_text_repeats} run)", rows)

    matrix_bytes = n * DIM * 4
    code = "import sys; from reindex.vectors import read_vectors as r; r(sys.argv[1]{})"
    memory = []
    for label, extra, kept in (("reindex text, all words", "", matrix_bytes),
                               ("reindex text, keep 5%", ", keep=set(open(sys.argv[2]).read().split('\\n'))",
                                len(keep) * DIM * 4)):
        keep_file = WORK / "keep5.txt"
        keep_file.write_text("\n".join(sorted(keep)))
        peak = child_peak([sys.executable, "-c", code.format(extra), str(text), str(keep_file)])
        baseline = child_peak([sys.executable, "-c", "import numpy, pyarrow, pyarrow.csv, reindex.vectors"])
        memory.append(Row(label, peak / 1e6, peak / kept,
                          f"ratio = peak / kept float32 matrix ({kept / 1e6:.0f} MB); "
                          f"(peak - {baseline / 1e6:.0f} MB of bare imports) / matrix = {(peak - baseline) / kept:.2f}"))
    print("\n### Peak memory of a child process (the 'median s' column is MB)")
    print_table("peak RSS", memory)


if __name__ == "__main__":
    main()
