"""reindex.hf under Accelerate: save_state/load_state round-trip a patched model, tied or untied."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")
accelerate = pytest.importorskip("accelerate")

import reindex.hf as rh  # noqa: E402

from _hf_models import MIDDLE_IDS, plain_weights, tiny_model  # noqa: E402


def step(model, optimizer) -> None:
    ids = torch.tensor([MIDDLE_IDS + [7, 8]])
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    optimizer.zero_grad()


@pytest.mark.parametrize("family", ["gpt2", "llama"])   # tied (safetensors drops lm_head.weight), untied
def test_save_state_then_load_state_restores_the_rows(family, tmp_path):
    accelerator = accelerate.Accelerator(cpu=True)
    model = rh.train_only(tiny_model(family), MIDDLE_IDS)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model, optimizer = accelerator.prepare(model, optimizer)
    step(model, optimizer)
    accelerator.save_state(tmp_path / "state")
    saved = plain_weights(model)
    step(model, optimizer)
    assert not torch.equal(plain_weights(model)[0], saved[0])
    accelerator.load_state(tmp_path / "state")
    assert all(torch.equal(a, b) for a, b in zip(plain_weights(model)[:2], saved[:2], strict=True))
    step(model, optimizer)   # and training goes on from there
    assert not torch.equal(plain_weights(model)[0], saved[0])


def test_a_tied_state_dict_without_the_head_key_loads_as_on_the_plain_model():
    plain, patched = tiny_model("gpt2"), rh.train_only(tiny_model("gpt2"), MIDDLE_IDS)
    state = {k: v for k, v in plain.state_dict().items() if k != "lm_head.weight"}
    expected = plain.load_state_dict(state, strict=False)
    assert patched.load_state_dict(state, strict=False) == expected   # lm_head.weight missing, nothing unexpected
    assert torch.equal(plain_weights(patched)[0], state["transformer.wte.weight"])
