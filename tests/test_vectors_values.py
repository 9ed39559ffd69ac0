"""A value no float32 row can hold (NaN, +-inf, |x| > float32's max such as an fp64 1e39) is refused by
every reader of rows: GloVe and word2vec text, word2vec binary, fastText `.bin`, Hugging Face
checkpoints (fp32, fp16, bf16, fp64), reindex exports and old runs. The error names the file, the line,
byte, or tensor and row; no numpy or torch warning is raised; through the CLI it is one line, exit 1,
and nothing is written."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from _fasttext_files import fasttext_bytes

from reindex.errors import ReindexError

ROOT = Path(__file__).resolve().parent.parent
TOKENS = ["<pad>", "the", "cat", "dog"]
BAD_ROW = 2  # the row of "cat", in every file below


def _matrix(value: float, dtype=np.float64) -> np.ndarray:
    m = np.arange(12, dtype=np.float64).reshape(4, 3) / 7
    m[BAD_ROW, 1] = value
    return m.astype(dtype)


def _text(value: str, *, header: bool) -> bytes:
    lines = [f"{t} 0.5 {value if t == 'cat' else '1.5'} 2.5" for t in TOKENS]
    return ("\n".join((["4 3"] if header else []) + lines) + "\n").encode()


def _binary(value: float) -> bytes:
    return b"4 3\n" + b"".join(t.encode() + b" " + row.astype("<f4").tobytes() + b"\n"
                               for t, row in zip(TOKENS, _matrix(value, np.float32), strict=True))


def _checkpoint(directory: Path, value: float, dtype: str) -> Path:
    import torch
    from safetensors.torch import save_file
    from tokenizers import Tokenizer, models

    directory.mkdir()
    weight = torch.from_numpy(_matrix(value)).to(getattr(torch, dtype))
    save_file({"model.embed_tokens.weight": weight}, str(directory / "model.safetensors"))
    Tokenizer(models.WordLevel({t: i for i, t in enumerate(TOKENS)}, unk_token="<pad>")).save(
        str(directory / "tokenizer.json"))
    return directory


def _export(path: Path, value: float) -> Path:
    from safetensors.numpy import save_file

    save_file({"weight": _matrix(value)}, str(path), metadata={"tokens": json.dumps(TOKENS)})
    return path


def _old_run(tmp: Path, value: float) -> Path:
    from safetensors import safe_open
    from safetensors.numpy import save_file

    from reindex.commands.build import build

    (tmp / "v.txt").write_bytes(_text("1.5", header=False))
    (tmp / "vocab.txt").write_text("".join(t + "\n" for t in TOKENS))
    build(vocab=tmp / "vocab.txt", vectors=tmp / "v.txt", out=tmp / "old")
    with safe_open(str(tmp / "old" / "embedding.safetensors"), "numpy") as f:
        tensors, metadata = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()
    tensors["fixed"][BAD_ROW, 1] = value  # a damaged run: its fixed rows are the file's four rows
    save_file(tensors, str(tmp / "old" / "embedding.safetensors"), metadata=metadata)
    return tmp / "old"


# (case id, how the file is made, what the error must name)
CASES = {
    "glove nan": (lambda t: _put(t / "v.txt", _text("nan", header=False)), r"v\.txt:3: .*nan"),
    "glove 1e39": (lambda t: _put(t / "v.txt", _text("1e39", header=False)), r"v\.txt:3: .*float32's range"),
    "word2vec text -inf": (lambda t: _put(t / "v.vec", _text("-inf", header=True)), r"v\.vec:4: .*-inf"),
    "word2vec binary inf": (lambda t: _put(t / "v.bin", _binary(np.inf)), r"v\.bin: at byte 40: .*inf"),
    "fasttext bin nan": (lambda t: _put(t / "f.bin", fasttext_bytes(TOKENS, np.vstack([_matrix(np.nan),
                                                                                      np.ones((2, 3))]))),
                         r"f\.bin: at byte \d+: input matrix row 2 is not finite"),
    "hf fp32 nan": (lambda t: _checkpoint(t / "m", np.nan, "float32"),
                    r"model\.safetensors: `model\.embed_tokens\.weight` row 2 holds nan"),
    "hf fp16 inf": (lambda t: _checkpoint(t / "m", np.inf, "float16"), r"model\.safetensors: .*row 2 holds inf"),
    "hf bf16 nan": (lambda t: _checkpoint(t / "m", np.nan, "bfloat16"), r"model\.safetensors: .*row 2 holds nan"),
    "hf fp64 1e39": (lambda t: _checkpoint(t / "m", 1e39, "float64"), r"model\.safetensors: .*row 2 holds 1e\+39"),
    "hf fp64 -1e39": (lambda t: _checkpoint(t / "m", -1e39, "float64"), r"row 2 holds -1e\+39"),
    "export fp64 1e39": (lambda t: _export(t / "e.safetensors", 1e39), r"e\.safetensors: `weight` row 2 holds 1e\+39"),
    "export nan": (lambda t: _export(t / "e.safetensors", np.nan), r"e\.safetensors: `weight` row 2 holds nan"),
    "old run nan": (lambda t: _old_run(t, np.nan), r"old/embedding\.safetensors: `fixed` row 2 holds nan"),
}


def _put(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", CASES)
def test_every_reader_refuses_a_value_float32_cannot_hold(tmp_path, case):
    """Through `build`, the library entry point of every source: a ReindexError naming file and row,
    and no warning from numpy or torch (each turned into an error here)."""
    from reindex.commands.build import build

    make, where = CASES[case]
    vectors = make(tmp_path)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("".join(t + "\n" for t in TOKENS + ["bird"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ReindexError) as info:
            build(vocab=vocab, vectors=vectors, out=tmp_path / "out")
    assert re.search(where, str(info.value)), str(info.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", ["hf fp64 1e39", "glove 1e39", "export fp64 1e39"])
def test_cli_refuses_in_one_line_without_a_foreign_warning(tmp_path, case):
    make, where = CASES[case]
    vectors = make(tmp_path)
    (tmp_path / "vocab.txt").write_text("".join(t + "\n" for t in TOKENS))
    result = subprocess.run([sys.executable, "-m", "reindex", "build", "--vocab", "vocab.txt", "--vectors",
                             str(vectors.relative_to(tmp_path)), "--out", "out", "-q"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("reindex: error: "), result.stderr
    assert re.search(where, result.stderr), result.stderr
    assert not (tmp_path / "out").exists()


def test_values_within_float32s_range_are_read_as_their_float32(tmp_path):
    """The edge stays open: fp64 +-3e38 (inside float32's range) becomes its float32 value."""
    from reindex.vectors.hf_model import read_model_embedding

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        embedding = read_model_embedding(_checkpoint(tmp_path / "m", -3e38, "float64"))
    assert embedding.matrix[BAD_ROW, 1] == np.float32(-3e38)
    assert embedding.matrix.dtype == np.float32
