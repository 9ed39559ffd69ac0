"""fastText `.bin`: reindex's memory-mapped reader against gensim's `load_facebook_vectors`.

    python -m benchmarks.bench_fasttext            # 100,000 words + 1,000,000 buckets x 100 (440 MB)
    python -m benchmarks.bench_fasttext --quick    # 20,000 words + 200,000 buckets x 100 (88 MB)

The model is generated once into benchmarks/_work with a fixed seed, in fastText's own layout
(skipgram, minn 3, maxn 6). The vocabulary asks for 20,000 words (5,000 with --quick): three
quarters from the model's dictionary, a quarter outside it (vectors from their character n-grams).
Each contender is a fresh process, run interleaved (A B C A B C), timed whole with its peak RSS;
the page cache is warm for all of them. Before timing, reindex's vectors are checked against
gensim's on a small model written the same way.
"""
from __future__ import annotations

import argparse
import statistics
import struct
import sys
from pathlib import Path

import numpy as np

from .common import WORK, Row, peak_rss_of, print_table

DIM = 100
MAGIC, VERSION = 793712314, 12
LETTERS = list("abcdefghijklmnopqrstuvwxyz") + ["é", "ü", "ß"]


def make_words(n: int, rng: np.random.Generator, *, prefix: str = "") -> list[str]:
    """`n` distinct word-like strings (3-9 letters, a few non-ASCII, a unique numeric tail)."""
    lengths = rng.integers(3, 10, n)
    letters = rng.choice(LETTERS, size=int(lengths.sum()), p=[0.95 / 26] * 26 + [0.05 / 3] * 3)
    cuts = np.concatenate([[0], np.cumsum(lengths)])
    return [prefix + "".join(letters[a:b]) + str(i) for i, (a, b) in enumerate(zip(cuts[:-1], cuts[1:]))]


def write_model(path: Path, *, nwords: int, bucket: int, seed: int = 0) -> list[str]:
    """Write a fastText skipgram `.bin` (random rows) and return its dictionary words."""
    rng = np.random.default_rng(seed)
    words = make_words(nwords, rng)
    if path.exists():
        return words
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<2i", MAGIC, VERSION))
        f.write(struct.pack("<12id", DIM, 5, 5, 5, 5, 1, 2, 2, bucket, 3, 6, 100, 1e-4))
        f.write(struct.pack("<3i2q", nwords, nwords, 0, nwords * 10, -1))
        f.write(b"".join(w.encode() + b"\0" + struct.pack("<qb", nwords - i, 0) for i, w in enumerate(words)))
        f.write(struct.pack("<?2q", False, nwords + bucket, DIM))
        for start in range(0, nwords + bucket, 1 << 16):
            rows = min(1 << 16, nwords + bucket - start)
            f.write((rng.standard_normal((rows, DIM), dtype=np.float32) * 0.1).tobytes())
        f.write(struct.pack("<?2q", False, nwords, DIM))
        f.write(bytes(4 * nwords * DIM))
    tmp.rename(path)
    return words


def make_vocab(words: list[str], size: int, path: Path) -> list[str]:
    """Three quarters of `size` from the dictionary, the rest new words; written one per line."""
    rng = np.random.default_rng(1)
    inside = rng.choice(words, size=size * 3 // 4, replace=False).tolist()
    vocab = inside + make_words(size - len(inside), rng, prefix="oov")
    path.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return vocab


def check() -> None:
    """Refuse to time a reader that disagrees with gensim (a small model written the same way)."""
    from gensim.models.fasttext import load_facebook_vectors

    from reindex.vectors import read_vectors
    from reindex.vectors.fasttext import open_model, word_vectors

    path = WORK / "fasttext_check.bin"
    words = write_model(path, nwords=2000, bucket=20000, seed=5)
    vocab = make_vocab(words, 400, WORK / "fasttext_check_vocab.txt")
    kv = load_facebook_vectors(str(path))
    found = read_vectors(path, keep=set(vocab))
    oov = [w for w in vocab if w not in set(found.tokens)]
    rows, _ = word_vectors(open_model(path), oov)
    expected = np.stack([kv[w] for w in [*found.tokens, *oov]])
    assert np.allclose(np.concatenate([found.matrix, rows]), expected, rtol=0, atol=1e-6), "reindex != gensim"


READ = """import sys
from reindex.vectors import read_vectors
from reindex.vectors.fasttext import open_model, word_vectors
vocab = open(sys.argv[2], encoding="utf-8").read().split()
found = read_vectors(sys.argv[1], keep=set(vocab))
have = set(found.tokens)
word_vectors(open_model(sys.argv[1]), [w for w in vocab if w not in have])
"""
GENSIM = """import sys
import numpy as np
from gensim.models.fasttext import load_facebook_vectors
vocab = open(sys.argv[2], encoding="utf-8").read().split()
kv = load_facebook_vectors(sys.argv[1])
np.stack([kv[w] for w in vocab])
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a 88 MB model and a 5,000-word vocabulary")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    nwords, bucket, size = (20_000, 200_000, 5_000) if args.quick else (100_000, 1_000_000, 20_000)
    WORK.mkdir(parents=True, exist_ok=True)
    check()
    model = WORK / f"fasttext_{nwords}_{bucket}x{DIM}.bin"
    words = write_model(model, nwords=nwords, bucket=bucket)
    vocab_file = WORK / f"fasttext_vocab_{size}.txt"
    make_vocab(words, size, vocab_file)
    run = WORK / "fasttext_run"
    python = sys.executable
    contenders = {
        "reindex read (vocabulary words + subwords for the rest)": [python, "-c", READ, str(model), str(vocab_file)],
        "reindex build --init subwords (CLI, whole command)": [
            python, "-m", "reindex", "build", "--vocab", str(vocab_file), "--vectors", str(model), "--init",
            "subwords", "--out", str(run), "--force", "--quiet"],
        "gensim load_facebook_vectors + kv[word]": [python, "-c", GENSIM, str(model), str(vocab_file)],
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    peaks: dict[str, list[int]] = {name: [] for name in contenders}
    for _ in range(args.repeats):
        for name, cmd in contenders.items():
            seconds, peak = peak_rss_of(cmd)
            times[name].append(seconds)
            peaks[name].append(peak)
    imports = {"reindex": peak_rss_of([python, "-c", "import numpy, pyarrow.compute, reindex.vectors.fasttext"])[1],
               "gensim": peak_rss_of([python, "-c", "import gensim.models.fasttext"])[1]}
    gensim = "gensim load_facebook_vectors + kv[word]"
    base_s, base_rss = statistics.median(times[gensim]), statistics.median(peaks[gensim])
    base_net = base_rss - imports["gensim"]
    kept = size * DIM * 4
    rows = []
    for name in contenders:
        s, rss = statistics.median(times[name]), statistics.median(peaks[name])
        net = rss - imports[name.split()[0]]
        rows.append(Row(name, s, s / base_s, f"peak RSS {rss / 1e6:.0f} MB ({rss / base_rss:.2f}x gensim's); "
                                             f"above its bare imports {net / 1e6:.0f} MB ({net / base_net:.2f}x)"))
    mb = model.stat().st_size / 1e6
    print_table(f"fastText .bin, {nwords:,} words + {bucket:,} buckets x {DIM} ({mb:.0f} MB), a {size:,}-word "
                f"vocabulary (kept matrix {kept / 1e6:.0f} MB); fresh process each, median of {args.repeats}",
                rows, baseline="gensim")
    print(f"\nBare imports: reindex {imports['reindex'] / 1e6:.0f} MB, gensim {imports['gensim'] / 1e6:.0f} MB. "
          "The library row pays pyarrow's first-call import of pandas, which the CLI skips.")


if __name__ == "__main__":
    main()
