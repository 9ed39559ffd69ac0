"""reindex.hf.init_rows and set_rows: a run's rows reach the model's rows of the same tokens, before train_only."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

import reindex.hf as rh  # noqa: E402
from reindex.errors import ReindexError  # noqa: E402

from _hf_models import VOCAB, plain_weights, tiny_model  # noqa: E402
from _runs import make_run  # noqa: E402


class Tokenizer:
    """A tokenizer whose ids are the run's original ids shifted by one (so strings, not ids, must decide)."""
    unk_token, unk_token_id = "<unk>", 0

    def __init__(self, known: int) -> None:
        self.known = known

    def convert_tokens_to_ids(self, token: str) -> int:
        i = int(token.removeprefix("tok"))
        return (i + 1) % VOCAB if i < self.known else self.unk_token_id


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_init_rows_by_original_id_then_train_only(family, tmp_path):
    arrays = make_run(tmp_path / "run", vocab_size=VOCAB, num_fixed=80, dim=16)
    model = tiny_model(family)
    ids = rh.init_rows(model, tmp_path / "run")
    expected = [int(i) for i in arrays["sorted_to_original"][80:]]
    assert ids == expected
    rh.train_only(model, ids)
    embedding, _, _ = plain_weights(model)
    assert torch.equal(embedding[ids], torch.from_numpy(arrays["weight"][ids]))


def test_init_rows_by_token_string(tmp_path):
    arrays = make_run(tmp_path / "run", vocab_size=VOCAB, num_fixed=80, dim=16)
    model = rh.train_only(tiny_model("llama"), list(range(VOCAB - 16, VOCAB)))   # patched first: also works
    originals = [int(i) for i in arrays["sorted_to_original"][80:]]
    ids = rh.init_rows(model, tmp_path / "run", Tokenizer(known=VOCAB))
    assert ids == [(i + 1) % VOCAB for i in originals]
    embedding, _, _ = plain_weights(model)
    assert torch.equal(embedding[ids], torch.from_numpy(arrays["weight"][originals]))


def test_init_rows_refuses_a_token_the_tokenizer_lacks(tmp_path):
    make_run(tmp_path / "run", vocab_size=VOCAB, num_fixed=80, dim=16)
    with pytest.raises(ReindexError, match=r"is not in the tokenizer .*add_tokens"):
        rh.init_rows(tiny_model("llama"), tmp_path / "run", Tokenizer(known=0))


def test_init_rows_refuses_another_dimension(tmp_path):
    make_run(tmp_path / "run", vocab_size=VOCAB, num_fixed=80, dim=8)
    with pytest.raises(ReindexError, match="dimension 8, the model's embedding 16"):
        rh.init_rows(tiny_model("llama"), tmp_path / "run")
