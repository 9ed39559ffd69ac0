"""Vector files for the benchmarks, generated once into benchmarks/_work with fixed seeds.

- `make_inputs(n)`: n x 300 GloVe text (tokens with spaces and NA-like words), the same vectors as
  `.vec` (with a `count dim` header) and as word2vec binary.
- `make_big(lines)`: a glove.840B-shaped file (300 numbers of 4-5 decimals a line, about 2.5 KB a
  line, tokens with spaces, duplicate tokens, non-ASCII tokens) and a gzip copy, plus a vocabulary of
  50,000 words (45,000 of them in the file).
"""
from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import numpy as np

from .common import WORK

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


def _write_once(path: Path, write) -> Path:
    """Write `path` through a temporary name unless it exists (a killed run leaves no partial file)."""
    if not path.exists():
        tmp = path.with_name(path.name + ".tmp")
        write(tmp)
        tmp.rename(path)
    return path


def make_inputs(n: int) -> tuple[Path, Path, Path, list[str]]:
    """(GloVe text, .vec, word2vec binary, tokens), generated once per size."""
    WORK.mkdir(parents=True, exist_ok=True)
    tokens, matrix = make_tokens(n), make_matrix(n)
    text = _write_once(WORK / f"glove_{n}x{DIM}.txt", lambda p: p.write_bytes(glove_lines(tokens, matrix)))

    def vec(p: Path) -> None:
        with open(p, "wb") as f, open(text, "rb") as src:
            f.write(f"{n} {DIM}\n".encode())
            shutil.copyfileobj(src, f, 1 << 24)

    def binary(p: Path) -> None:
        with open(p, "wb") as f:
            f.write(f"{n} {DIM}\n".encode())
            for token, row in zip(tokens, matrix):
                f.write(token.replace(" ", "_").encode() + b" " + row.astype("<f4").tobytes() + b"\n")

    def no_spaces(p: Path) -> None:  # gensim splits tokens at spaces and then fails: give it "New_York"
        data = text.read_bytes()
        for token in {t for t in tokens if " " in t}:
            data = data.replace(b"\n" + token.encode() + b" ", b"\n" + token.replace(" ", "_").encode() + b" ")
        p.write_bytes(data)

    vec_path = _write_once(WORK / f"vec_{n}x{DIM}.vec", vec)
    bin_path = _write_once(WORK / f"w2v_{n}x{DIM}.bin", binary)
    _write_once(text.with_name(text.stem + "_nospace.txt"), no_spaces)
    return text, vec_path, bin_path, tokens


def keep_share(tokens: list[str], share: float, *, seed: int = 1) -> set[str]:
    """A random `share` of the tokens (fixed seed)."""
    if share >= 1:
        return set(tokens)
    return set(np.random.default_rng(seed).choice(tokens, size=int(len(tokens) * share), replace=False).tolist())


# --- the glove.840B-shaped file -------------------------------------------------------------------------

NUMBERS = [f"{v:.5f}".rstrip("0").rstrip(".") if i % 3 else f"{v:.4f}"
           for i, v in enumerate(np.round(np.linspace(-1, 1, 20001), 5))]


def big_token(i: int) -> str:
    """Mostly plain words; every 997th a phrase with spaces, every 1499th non-ASCII, as in glove.840B."""
    if i % 997 == 5:
        return f"New York {i}"
    if i % 1499 == 7:
        return f"café{i}"
    return f"t{i}"


def big_lines(start: int, stop: int, rng: np.random.Generator) -> bytes:
    """Lines start..stop-1; every 1009th line repeats the token of the line 500 before it."""
    picks = rng.integers(0, len(NUMBERS), (stop - start, DIM))
    out = []
    for row, i in zip(picks, range(start, stop)):
        token = big_token(i - 500 if i % 1009 == 3 and i >= 500 else i)
        out.append(token + " " + " ".join([NUMBERS[j] for j in row.tolist()]) + "\n")
    return "".join(out).encode("utf-8")


def make_big(lines: int) -> tuple[Path, Path, Path]:
    """(text file, gzip copy, 50,000-word vocabulary); about 2.5 KB a line (2 GB at 800,000 lines)."""
    WORK.mkdir(parents=True, exist_ok=True)
    text = WORK / f"big_{lines}x{DIM}.txt"

    def write_text(p: Path) -> None:
        rng = np.random.default_rng(840)
        with open(p, "wb") as f:
            for start in range(0, lines, 10_000):
                f.write(big_lines(start, min(start + 10_000, lines), rng))

    def write_gzip(p: Path) -> None:
        with open(p, "wb") as f:
            if shutil.which("gzip"):
                subprocess.run(["gzip", "-1", "-c", str(text)], stdout=f, check=True)
            else:
                with open(text, "rb") as src, gzip.GzipFile(fileobj=f, mode="wb", compresslevel=1) as z:
                    shutil.copyfileobj(src, z, 1 << 24)

    def write_vocab(p: Path) -> None:
        rng = np.random.default_rng(50)
        present = rng.choice(lines, size=min(45_000, lines), replace=False)
        words = [big_token(int(i)) for i in present] + [f"absent{i}" for i in range(50_000 - len(present))]
        p.write_text("\n".join(words) + "\n", encoding="utf-8")

    _write_once(text, write_text)
    compressed = _write_once(text.with_name(text.name + ".gz"), write_gzip)
    vocab = _write_once(WORK / f"big_{lines}_vocab50k.txt", write_vocab)
    return text, compressed, vocab
