"""The examples run end to end (as CI runs them) on the sample data and on a hand-written run."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reindex.run import read_embedding

from _runs import make_run

# Each example is a fresh process that imports torch (and Lightning) and trains: 3-10 s apiece.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory) -> Path:
    """`reindex build` on the sample inputs in data/, as `make demo` runs it."""
    from reindex.commands.build import build

    out = tmp_path_factory.mktemp("sample") / "run"
    build(vocab=DATA / "vocab.txt", vectors=DATA / "vectors.txt", out=out, pad="<pad>",
          lowercase_fallback=True, data=[DATA / "train.parquet"])
    return out


def run_example(name: str, *args: str | Path) -> str:
    result = subprocess.run([sys.executable, str(ROOT / "examples" / name), *map(str, args)],
                            capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_train_classifier_on_the_sample_run(sample_run, tmp_path):
    out = run_example("train_classifier.py", "--run", sample_run, "--epochs", "2", "--save", tmp_path / "t.safetensors")
    _, meta = read_embedding(sample_run)
    fixed, trainable = meta["num_fixed"], meta["num_trainable"]
    assert "epoch 2: loss" in out
    assert f"fixed rows unchanged: {fixed}/{fixed}; trainable rows moved: {trainable}/{trainable}" in out
    assert (tmp_path / "t.safetensors").exists()


def test_train_classifier_sparse_on_a_hand_written_run(tmp_path):
    make_run(tmp_path / "run", vocab_size=60, num_fixed=20)
    out = run_example("train_classifier.py", "--run", tmp_path / "run", "--epochs", "1", "--sparse")
    assert "fixed rows unchanged: 20/20; trainable rows moved: 40/40" in out


def test_lightning_vocabulary_expansion(sample_run):
    out = run_example("lightning_expand.py", "--run", sample_run, "--epochs", "1", "--new-tokens", "30")
    vocab_size = read_embedding(sample_run)[1]["vocab_size"]
    assert f"old rows exact: {vocab_size}/{vocab_size}; new rows trained: 30/30; model still uses Embedding" in out
