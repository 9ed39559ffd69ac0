"""Vector loading: reindex against pyarrow.csv, gensim, `wc -l` and a plain read.

    python -m benchmarks.bench_vectors            # 200,000 x 300 (572 MB) + a 2 GB glove.840B-shaped file
    python -m benchmarks.bench_vectors --quick    # 20,000 x 300 + a 100 MB stand-in, no gensim text

Inputs are generated once into benchmarks/_work with fixed seeds (`benchmarks/vector_files.py`).
Four tables, each measured side by side in one run (the machine's load average is printed with
them; compare ratios, not seconds):
1. In one process, interleaved (A B C A B C): `read_vectors` with keep=None, a vocabulary covering
   every word, 50% and 5%, on GloVe text, `.vec` and word2vec binary; `pyarrow.csv.read_csv`, gensim.
2. Fresh processes, everything included: `reindex build` with a vocabulary covering the whole GloVe
   file against `pyarrow.csv.read_csv` of it in a `python -c`, and `wc -l`.
3. The big file with a 50,000-word vocabulary: `reindex build` time and peak RSS, against `wc -l`
   and `zcat | wc -l` of the same file (plain and gzip).
gensim's text loader takes minutes on the full file, so it runs once, on a copy whose
space-containing tokens are joined with "_" (gensim cannot read them at all).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
from pathlib import Path

import numpy as np

from .common import WORK, Row, interleaved, peak_rss_of, print_table
from .vector_files import DIM, NUMBERS, keep_share, make_big, make_inputs, make_matrix

PY = sys.executable
READ_CSV = """import sys, pyarrow as pa, pyarrow.csv as pcsv
names = [f"f{i}" for i in range(int(sys.argv[2]) + 1)]
pcsv.read_csv(sys.argv[1], read_options=pcsv.ReadOptions(column_names=names),
    parse_options=pcsv.ParseOptions(delimiter=" ", quote_char=False, invalid_row_handler=lambda r: "skip"),
    convert_options=pcsv.ConvertOptions(column_types={n: pa.float32() for n in names[1:]},
                                        null_values=[], strings_can_be_null=False))"""


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


def check(text: Path, vec: Path, binary: Path, tokens: list[str], keep: set[str]) -> None:
    """Refuse to time anything that reads wrong."""
    from reindex.vectors import read_vectors

    matrix = make_matrix(len(tokens))
    for path in (text, vec):
        full = read_vectors(path)
        assert full.tokens == tokens, f"{path.name}: tokens differ"
        assert np.allclose(full.matrix, matrix, atol=1e-6), f"{path.name}: vectors differ"
        part = read_vectors(path, keep=keep)
        assert set(part.tokens) == keep and len(part.tokens) == len(keep)
    b = read_vectors(binary)
    assert np.array_equal(b.matrix, matrix) and b.tokens == [t.replace(" ", "_") for t in tokens]


def load() -> str:
    return "load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def wc_l(path: Path) -> list[str]:
    return ["wc", "-l", str(path)]


def zcat_wc(path: Path) -> list[str]:
    return ["bash", "-c", f"zcat {path} | wc -l"]


def build_cmd(vocab: Path, vectors: Path, out: Path) -> list[str]:
    return [PY, "-m", "reindex", "build", "-q", "--vocab", str(vocab), "--vectors", str(vectors), "--out", str(out)]


def fresh(commands: dict[str, list[str]], *, repeats: int, clean: Path) -> dict[str, tuple[float, int]]:
    """Median seconds and peak RSS of each command, run interleaved as fresh processes."""
    runs: dict[str, list[tuple[float, int]]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, cmd in commands.items():
            shutil.rmtree(clean, ignore_errors=True)
            runs[name].append(peak_rss_of(cmd))
    shutil.rmtree(clean, ignore_errors=True)
    return {name: (statistics.median(s for s, _ in r), max(p for _, p in r)) for name, r in runs.items()}


def in_process(text: Path, vec: Path, binary: Path, tokens: list[str], *, repeats: int,
               gensim_text: bool) -> list[Row]:
    """Table 1: read_vectors at every coverage and format, pyarrow and gensim, in one process."""
    from gensim.models import KeyedVectors

    from reindex.vectors import read_vectors

    keeps = {"keep=None": None, "keep all": keep_share(tokens, 1.0), "keep 50%": keep_share(tokens, 0.5),
             "keep 5%": keep_share(tokens, 0.05)}
    binary_keeps = {k: None if v is None else {t.replace(" ", "_") for t in v} for k, v in keeps.items()}
    contenders = {"read the bytes": lambda: text.read_bytes(), "pyarrow.csv.read_csv": lambda: pyarrow_csv(text)}
    for label, path, sets in (("GloVe", text, keeps), (".vec", vec, keeps), ("binary", binary, binary_keeps)):
        for name, keep in sets.items():
            contenders[f"reindex {label}, {name}"] = lambda p=path, k=keep: read_vectors(p, keep=k)
    contenders["gensim binary"] = lambda: KeyedVectors.load_word2vec_format(str(binary), binary=True)
    cpu: dict[str, float] = {}
    medians = interleaved(contenders, repeats=repeats, warmup=1, cpu=cpu)
    no_spaces = text.with_name(text.stem + "_nospace.txt")
    if gensim_text:
        medians.update(interleaved({"gensim GloVe text (no_header=True)": lambda: KeyedVectors.load_word2vec_format(
            str(no_spaces), no_header=True)}, repeats=1, warmup=0))
    notes = {}
    for label in ("GloVe", ".vec", "binary"):
        none = medians[f"reindex {label}, keep=None"]
        for name in ("keep all", "keep 50%", "keep 5%"):
            s = medians[f"reindex {label}, {name}"]
            cpu_ratio = cpu[f"reindex {label}, {name}"] / cpu[f"reindex {label}, keep=None"]
            notes[f"reindex {label}, {name}"] = (s / none, f"{none / s:.2f}x the speed of keep=None; "
                                                           f"CPU {cpu_ratio:.2f}x keep=None's")
    glove = medians["reindex GloVe, keep=None"]
    gensim = medians.get("gensim GloVe text (no_header=True)")
    notes["reindex GloVe, keep=None"] = (glove / medians["pyarrow.csv.read_csv"],
                                         f"{gensim / glove:.1f}x faster than gensim" if gensim else "")
    binary_none = medians["reindex binary, keep=None"]
    notes["reindex binary, keep=None"] = (None, f"{medians['gensim binary'] / binary_none:.2f}x faster than gensim")
    return [Row(name, s, *notes.get(name, (None, ""))) for name, s in medians.items()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20,000 vectors and a 100 MB big file")
    parser.add_argument("--repeats", type=int, default=None, help="default 7 (1 with --quick)")
    parser.add_argument("--no-big", action="store_true", help="skip the big file")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 7)  # with 5, two identical GloVe contenders came out 14% apart
    n, big_n = (20_000, 45_000) if args.quick else (200_000, 900_000)
    text, vec, binary, tokens = make_inputs(n)
    check(text, vec, binary, tokens, keep_share(tokens, 0.05))
    out = WORK / "bench_vectors_run"

    rows = in_process(text, vec, binary, tokens, repeats=repeats, gensim_text=not args.quick)
    print_table(f"Load {n:,} x {DIM} vectors in one process: GloVe text {text.stat().st_size / 1e6:.0f} MB, "
                f"word2vec binary {binary.stat().st_size / 1e6:.0f} MB (median of {repeats}, gensim text once, "
                f"not with --quick; "
                f"ratio = s / keep=None of the same format, or / pyarrow for GloVe keep=None; {load()})", rows)

    vocab = WORK / f"vocab_all_{n}.txt"
    vocab.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    got = fresh({"wc -l": wc_l(text), "pyarrow.csv.read_csv (python -c)": [PY, "-c", READ_CSV, str(text), str(DIM)],
                 "reindex build, vocabulary = every word": build_cmd(vocab, text, out)}, repeats=repeats, clean=out)
    base = got["pyarrow.csv.read_csv (python -c)"][0]
    print_table(f"Fresh processes on the GloVe file, everything included (median of {repeats}; ratio to pyarrow; "
                f"{load()})", [Row(name, s, s / base, f"peak RSS {peak / 1e6:.0f} MB") for name, (s, peak) in got.items()])

    if not args.no_big:
        big(big_n, repeats=1 if not args.quick else repeats, out=out)


def big(lines: int, *, repeats: int, out: Path) -> None:
    """Table 3: the glove.840B-shaped file, 50,000-word vocabulary: time, peak RSS, against wc -l."""
    text, gz, vocab = make_big(lines)
    check_big(text, lines)
    tiny_vocab, tiny_vectors = WORK / "tiny_vocab.txt", WORK / "tiny_vectors.txt"
    tiny_vocab.write_text("a\nb\n")
    tiny_vectors.write_text("a " + " ".join(["0.5"] * DIM) + "\n")
    got = fresh({"wc -l": wc_l(text), "zcat piped to wc -l": zcat_wc(gz),
                 "reindex build, 50k vocabulary": build_cmd(vocab, text, out),
                 "reindex build, 50k vocabulary, gzip": build_cmd(vocab, gz, out),
                 "reindex build, 2-word vocabulary (interpreter + imports)": build_cmd(tiny_vocab, tiny_vectors, out)},
                repeats=repeats, clean=out)
    kept = fixed_rows(vocab, text, out) * DIM * 4
    floor = got["reindex build, 2-word vocabulary (interpreter + imports)"][1]
    rows = []
    for name, (s, rss) in got.items():
        versus = got["zcat piped to wc -l" if "gzip" in name else "wc -l"][0]
        note = f"peak RSS {rss / 1e6:.0f} MB"
        if name.startswith("reindex build, 50k"):
            note += f" = {rss / (kept + floor):.2f}x (kept matrix {kept / 1e6:.0f} MB + {floor / 1e6:.0f} MB)"
        rows.append(Row(name, s, s / versus if "reindex" in name and "2-word" not in name else None, note))
    print_table(f"Big file: {lines:,} x {DIM} ({text.stat().st_size / 1e9:.2f} GB; gzip {gz.stat().st_size / 1e9:.2f} GB), "
                f"vocabulary of 50,000 (ratio to `wc -l`, or to `zcat | wc -l` for gzip; {load()})", rows)


def check_big(text: Path, lines: int) -> None:
    """The kept rows of plain tokens t0..t9999 are the numbers the generator wrote on their lines."""
    from reindex.vectors import read_vectors

    first = min(lines, 10_000)
    picks = np.random.default_rng(840).integers(0, len(NUMBERS), (first, DIM))  # the first chunk's draw
    wanted = {f"t{i}": i for i in range(0, first, 7)}
    part = read_vectors(text, keep=set(wanted))
    assert len(part.tokens) > len(wanted) * 0.9
    for token, row in zip(part.tokens, part.matrix):
        expected = np.array([NUMBERS[j] for j in picks[wanted[token]]], dtype=np.float32)
        assert np.array_equal(row, expected), token


def fixed_rows(vocab: Path, text: Path, out: Path) -> int:
    """Fixed rows of the run built from `text` (the kept matrix), from its manifest."""
    import json
    import subprocess

    subprocess.run(build_cmd(vocab, text, out), check=True)
    fixed = json.loads((out / "manifest.json").read_text())["counts"]["fixed"]
    shutil.rmtree(out, ignore_errors=True)
    return fixed


if __name__ == "__main__":
    main()
