"""reindex.hf.train_only tells the truth: only the rows train, counts are the real ones, no silent no-ops."""
from __future__ import annotations

import warnings

import pytest
import torch

pytest.importorskip("transformers")

import reindex.hf as rh  # noqa: E402
from reindex.errors import ReindexError  # noqa: E402

from _hf_models import MIDDLE_IDS, VOCAB, plain_weights, tiny_model  # noqa: E402

FAMILIES = ["llama", "gpt2"]   # untied head, tied head


def train(model, steps: int = 3) -> None:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.05)
    model.train()
    for step in range(steps):
        ids = torch.randint(3, VOCAB, (2, 9), generator=torch.Generator().manual_seed(step))
        ids[:, 1:5] = torch.tensor(MIDDLE_IDS)
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()


@pytest.mark.parametrize("family", FAMILIES)
def test_train_only_freezes_everything_else_by_default_and_merge_gives_it_back(family):
    model = rh.train_only(tiny_model(family), MIDDLE_IDS)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert all(n.endswith(".trainable") for n in trainable) and len(trainable) == (1 if family == "gpt2" else 2)
    rh.merge(model)
    assert all(p.requires_grad for p in model.parameters())
    kept = rh.train_only(tiny_model(family), MIDDLE_IDS, freeze_rest=False)
    assert sum(p.requires_grad for p in kept.parameters()) > 2


@pytest.mark.parametrize("family", FAMILIES)
def test_save_trainable_after_the_documented_recipe_reloads_the_same_logits(family, tmp_path):
    model = rh.train_only(tiny_model(family), MIDDLE_IDS)
    train(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # nothing else trained: no warning
        rh.save_trainable(model, tmp_path / "rows.safetensors")
    ids = torch.tensor([MIDDLE_IDS + [7, 9]])
    fresh = rh.load_trainable(tiny_model(family), tmp_path / "rows.safetensors")
    assert torch.equal(fresh.eval()(input_ids=ids).logits, model.eval()(input_ids=ids).logits)


def test_save_trainable_warns_when_other_parameters_trained(tmp_path):
    model = rh.train_only(tiny_model("llama"), MIDDLE_IDS, freeze_rest=False)
    with pytest.warns(UserWarning, match=r"writes only the new rows .* other parameters train"):
        rh.save_trainable(model, tmp_path / "rows.safetensors")


@pytest.mark.parametrize("family", FAMILIES)
def test_counts_are_the_unpatched_models(family):
    plain = tiny_model(family)
    total = plain.num_parameters()
    model = rh.train_only(tiny_model(family), MIDDLE_IDS)
    dim = plain.get_input_embeddings().embedding_dim
    rows = len(MIDDLE_IDS) * dim * (1 if family == "gpt2" else 2)
    assert model.num_parameters() == total
    assert model.num_parameters(only_trainable=True) == rows
    assert model.num_parameters(exclude_embeddings=True) == plain.num_parameters(exclude_embeddings=True)


@pytest.mark.parametrize("family", FAMILIES)
def test_peft_trainable_share_is_the_true_one(family):
    peft = pytest.importorskip("peft")
    targets = {"llama": ["q_proj", "v_proj"], "gpt2": ["c_attn"]}[family]

    def wrapped():
        return peft.get_peft_model(tiny_model(family), peft.LoraConfig(target_modules=targets, r=4,
                                                                       fan_in_fan_out=family == "gpt2"))
    lora_trainable, total = wrapped().get_nb_trainable_parameters()
    model = rh.train_only(wrapped(), MIDDLE_IDS)
    dim = model.get_input_embeddings().embedding_dim
    rows = len(MIDDLE_IDS) * dim * (1 if family == "gpt2" else 2)
    assert model.get_nb_trainable_parameters() == (lora_trainable + rows, total)


@pytest.mark.parametrize("ids", [set(MIDDLE_IDS), iter(MIDDLE_IDS), tuple(MIDDLE_IDS), torch.tensor(MIDDLE_IDS)])
def test_ids_as_any_iterable(ids):
    model = rh.train_only(tiny_model("llama"), ids)
    assert rh.trainable_ids(model).tolist() == MIDDLE_IDS


def test_a_meta_tensor_of_ids_is_refused_clearly():
    with pytest.raises(ReindexError, match="meta tensor"):
        rh.train_only(tiny_model("llama"), torch.tensor(MIDDLE_IDS, device="meta"))


@pytest.mark.parametrize("family", FAMILIES)
def test_set_rows_reaches_forward_and_state_dict(family):
    model = rh.train_only(tiny_model(family), MIDDLE_IDS)
    values = torch.full((len(MIDDLE_IDS), 16), 0.25)
    rh.set_rows(model, MIDDLE_IDS, values)
    embedding, _, _ = plain_weights(model)
    assert torch.equal(embedding[MIDDLE_IDS], values)
    assert torch.equal(model.get_input_embeddings()(torch.tensor(MIDDLE_IDS)), values)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_a_refused_load_leaves_the_model_as_it_was(family, tmp_path):
    model = rh.train_only(tiny_model(family), MIDDLE_IDS)
    rh.save_trainable(model, tmp_path / "rows.safetensors")
    other = tiny_model(family, seed=9)   # another base: refused
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(ReindexError, match="frozen rows of this model differ"):
        rh.load_trainable(other, tmp_path / "rows.safetensors")
    assert type(other.get_input_embeddings()) is torch.nn.Embedding
    assert all(p.requires_grad for p in other.parameters())
    assert all(torch.equal(v, before[k]) for k, v in other.state_dict().items())


@pytest.mark.parametrize("family", FAMILIES)
def test_load_trainable_onto_the_same_base_cast_to_bfloat16(family, tmp_path):
    model = rh.train_only(tiny_model(family), MIDDLE_IDS)
    train(model)
    rh.save_trainable(model, tmp_path / "rows.safetensors")
    base = tiny_model(family).to(torch.bfloat16)
    rh.load_trainable(base, tmp_path / "rows.safetensors")
    embedding, _, _ = plain_weights(base)
    expected, _, _ = plain_weights(model)
    assert torch.equal(embedding[MIDDLE_IDS], expected[MIDDLE_IDS].to(torch.bfloat16))


@pytest.mark.parametrize("family", FAMILIES)
def test_a_memory_mapped_bf16_checkpoint_is_patched_without_a_copy(family, tmp_path):
    from transformers import AutoModelForCausalLM

    tiny_model(family).to(torch.bfloat16).save_pretrained(tmp_path / "base")
    on_disk = (tmp_path / "base" / "model.safetensors").read_bytes()
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "base", dtype=torch.bfloat16)
    weight = model.get_input_embeddings().weight
    assert not weight.untyped_storage().resizable()   # safetensors' copy-on-write mapping, not torch's memory
    where, suffix = weight.data_ptr(), list(range(VOCAB - 4, VOCAB))
    old = plain_weights(model)
    rh.train_only(model, suffix)
    assert model.get_input_embeddings().fixed.data_ptr() == where   # the mapped rows are the split block
    train(model)
    after = plain_weights(model)
    assert torch.equal(after[0][:-4], old[0][:-4]) and torch.equal(after[1][:-4], old[1][:-4])
    assert not torch.equal(after[1][-4:], old[1][-4:])   # the head rows trained (as logits)
    rh.merge(model)
    assert model.get_input_embeddings().weight.data_ptr() == where   # merge hands the memory back
    assert (tmp_path / "base" / "model.safetensors").read_bytes() == on_disk   # the file never changes
