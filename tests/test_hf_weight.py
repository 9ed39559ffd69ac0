"""`.weight` of a patched model is the weight: current under any optimizer, differentiable, never a silent copy."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

import reindex.hf as rh  # noqa: E402
from reindex.errors import ReindexError  # noqa: E402

from _hf_models import MIDDLE_IDS, VOCAB, plain_weights, tiny_model  # noqa: E402

SUFFIX = list(range(VOCAB - 4, VOCAB))   # new tokens appended by a resize
CASES = [("llama", MIDDLE_IDS), ("llama", SUFFIX), ("gpt2", MIDDLE_IDS), ("gpt2", SUFFIX)]


@pytest.mark.parametrize(("family", "ids"), CASES)
def test_a_loss_from_lm_head_weight_trains_the_head_rows(family, ids):
    model = rh.train_only(tiny_model(family), ids)
    before = plain_weights(model)[1][ids]
    hidden = torch.randn(5, 16)
    loss = torch.nn.functional.cross_entropy(hidden @ model.lm_head.weight.t(), torch.tensor(ids + [ids[0]]))
    loss.backward()   # as TRL's trainers compute it, from the weight itself
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0).step()
    assert (plain_weights(model)[1][ids] != before).any(dim=1).all()


@pytest.mark.parametrize(("family", "ids"), CASES)
def test_state_dict_is_current_under_fused_adamw_while_an_old_one_is_held(family, ids):
    model = rh.train_only(tiny_model(family), ids)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1, fused=True)
    held_state, held_weight = model.state_dict(), model.lm_head.weight   # kept alive across the step
    for param in optimizer.param_groups[0]["params"]:
        param.grad = torch.ones_like(param)
    optimizer.step()
    split = model.get_input_embeddings()
    expected = split.merged_weight(order="original") if split.input == "original" else split.merged_weight()
    assert torch.equal(plain_weights(model)[0], expected)   # read through state_dict()
    assert torch.equal(model.get_input_embeddings().weight.detach(), expected)
    del held_state, held_weight


@pytest.mark.parametrize(("family", "ids"), CASES)
def test_writes_through_weight_reach_the_rows_or_name_set_rows(family, ids):
    model = rh.train_only(tiny_model(family), ids)
    embedding = model.get_input_embeddings()
    with torch.no_grad():
        if ids == SUFFIX:   # the weight is the rows' own memory
            embedding.weight[ids] = 0.5
            assert torch.equal(embedding(torch.tensor(ids)), torch.full((4, 16), 0.5))
            assert torch.equal(plain_weights(model)[0][ids], torch.full((4, 16), 0.5))
        else:
            with pytest.raises(ReindexError, match=r"reindex.hf.set_rows\(model, ids, values\)"):
                embedding.weight[ids] = 0.5
