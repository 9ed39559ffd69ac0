"""examples/llm_new_tokens.py runs end to end (as CI runs it): a tiny Llama from a config, nothing downloaded."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow   # a fresh process: transformers, tokenizers, training and generation
def test_llm_new_tokens_example(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "llm_new_tokens.py"), "--out", str(tmp_path),
                             "--steps", "5"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "tokenizer: 603 tokens, 3 new: {'SplitEmbedding': 600, 'fastText': 601, 'GloVe': 602}" in out
    assert "old rows unchanged: embedding 600/600, head 600/600; new rows trained: 3/3" in out
    assert "reloaded with from_pretrained (Embedding): identical logits: True" in out
    assert "generated:  The trainable rows" in out
    assert (tmp_path / "model.safetensors").exists() and (tmp_path / "tokenizer.json").exists()
