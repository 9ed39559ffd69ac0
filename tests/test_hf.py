"""reindex.hf: train only some token rows of a transformers model, tied or untied, and save it vanilla."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

import reindex.hf as rh  # noqa: E402
from reindex.errors import ReindexError  # noqa: E402
from reindex.torch import SplitEmbedding, SplitLinear  # noqa: E402

from _hf_models import MIDDLE_IDS, VOCAB, plain_weights, tiny_model  # noqa: E402

FAMILIES = ["llama", "gpt2", "gemma", "phi"]
TIED = {"llama": False, "gpt2": True, "gemma": True, "phi": False}
FROZEN = [i for i in range(VOCAB) if i not in MIDDLE_IDS]


def batch(seed: int = 0) -> torch.Tensor:
    ids = torch.randint(3, VOCAB, (4, 9), generator=torch.Generator().manual_seed(seed))
    ids[:, 1:5] = torch.tensor(MIDDLE_IDS)   # every new token is seen
    return ids


def train(model, steps: int) -> torch.optim.Optimizer:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.05, weight_decay=0.1)
    model.train()
    for step in range(steps):
        ids = batch(step)
        loss = model(input_ids=ids, labels=ids).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return optimizer


@pytest.mark.parametrize("family", FAMILIES)
def test_patch_keeps_logits_and_layout(family):
    model = tiny_model(family).eval()
    ids = batch()
    before = model(ids).logits
    layout = {k: (v.shape, v.dtype) for k, v in model.state_dict().items()}
    assert rh.train_only(model, MIDDLE_IDS) is model
    assert isinstance(model.get_input_embeddings(), SplitEmbedding)
    head = model.get_output_embeddings()
    assert isinstance(head, SplitLinear) and head.tied == TIED[family]
    assert torch.equal(model(ids).logits, before)
    assert {k: (v.shape, v.dtype) for k, v in model.state_dict().items()} == layout


@pytest.mark.parametrize("family", FAMILIES)
def test_old_rows_bit_identical_after_50_adamw_steps_and_new_rows_train(family):
    model = tiny_model(family)
    old_embedding, old_head, old_bias = plain_weights(model)
    # Freeze one layer before: with freeze_rest=False, every other requires_grad stays as it was.
    others = {n: p.requires_grad for n, p in model.named_parameters()}
    first_norm = next(n for n in others if "norm" in n or "ln_" in n)
    model.get_parameter(first_norm).requires_grad_(False)
    rh.train_only(model, torch.tensor(MIDDLE_IDS), freeze_rest=False)
    optimizer = train(model, 50)
    embedding, head, bias = plain_weights(model)
    assert torch.equal(embedding[FROZEN], old_embedding[FROZEN])
    assert torch.equal(head[FROZEN], old_head[FROZEN])
    assert (embedding[MIDDLE_IDS] != old_embedding[MIDDLE_IDS]).any(dim=1).all()
    assert (head[MIDDLE_IDS] != old_head[MIDDLE_IDS]).any(dim=1).all()
    if old_bias is not None:
        assert torch.equal(bias[FROZEN], old_bias[FROZEN])
        assert (bias[MIDDLE_IDS] != old_bias[MIDDLE_IDS]).all()
    assert model.get_parameter(first_norm).requires_grad is False
    assert all(p.requires_grad for n, p in model.named_parameters() if n != first_norm)
    split, split_head = model.get_input_embeddings(), model.get_output_embeddings()
    # Optimizer state exists only for [len(MIDDLE_IDS), ...] rows of embedding/head, never for the frozen block.
    row_states = [p for p in optimizer.state if p.shape[0] == len(MIDDLE_IDS)]
    assert all(p.shape[0] != VOCAB for p in optimizer.state)
    assert len(row_states) == {"llama": 2, "gpt2": 1, "gemma": 1, "phi": 3}[family]
    assert split.fixed.grad is None and not split.fixed.requires_grad
    if TIED[family]:
        assert split_head.rows is split and torch.equal(embedding, head)
        assert split_head.rows.trainable.untyped_storage().data_ptr() == split.trainable.untyped_storage().data_ptr()


@pytest.mark.parametrize("family", FAMILIES)
def test_save_pretrained_loads_vanilla_with_identical_logits(family, tmp_path):
    model = tiny_model(family)
    reference_keys = {k: v.shape for k, v in model.state_dict().items()}
    rh.train_only(model, MIDDLE_IDS)
    train(model, 3)
    model.eval()
    ids = batch(7)
    logits = model(ids).logits
    model.save_pretrained(tmp_path)
    from safetensors import safe_open
    with safe_open(str(tmp_path / "model.safetensors"), framework="pt") as f:
        saved = {k: f.get_slice(k).get_shape() for k in f.keys()}
    assert {k: list(v) for k, v in reference_keys.items() if k in saved} == saved
    assert set(reference_keys) - set(saved) <= {"lm_head.weight"}   # only a tied alias may be left out
    assert ("lm_head.weight" in saved) != TIED[family]
    vanilla = type(model).from_pretrained(tmp_path).eval()
    assert type(vanilla.get_input_embeddings()) is not SplitEmbedding
    assert torch.equal(vanilla(ids).logits, logits)
    if TIED[family]:
        assert vanilla.get_output_embeddings().weight is vanilla.get_input_embeddings().weight


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_state_dict_round_trip_generate_and_merge(family):
    model = rh.train_only(tiny_model(family), MIDDLE_IDS)
    train(model, 3)
    model.eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    other = rh.train_only(tiny_model(family, seed=1), MIDDLE_IDS).eval()
    assert other.load_state_dict(state) is not None
    ids = batch(3)
    assert torch.equal(other(ids).logits, model(ids).logits)
    generated = model.generate(ids[:, :4], attention_mask=torch.ones(4, 4, dtype=torch.long), max_new_tokens=5,
                               do_sample=False)
    assert generated.shape == (4, 9)
    rh.merge(model)
    assert type(model.get_input_embeddings()) is torch.nn.Embedding
    assert type(model.get_output_embeddings()) is torch.nn.Linear
    assert torch.equal(model(ids).logits, other(ids).logits)
    assert (model.get_output_embeddings().weight is model.get_input_embeddings().weight) == TIED[family]
    assert model.get_input_embeddings().weight.requires_grad
    again = model.generate(ids[:, :4], attention_mask=torch.ones(4, 4, dtype=torch.long), max_new_tokens=5,
                           do_sample=False)
    assert torch.equal(again, generated)


def test_merge_keeps_gemmas_scaled_embedding_class():
    model = tiny_model("gemma")
    cls = type(model.get_input_embeddings())
    ids = batch()
    rh.train_only(model, MIDDLE_IDS)
    train(model, 2)
    model.eval()
    logits = model(ids).logits
    rh.merge(model)
    assert type(model.get_input_embeddings()) is cls and cls.__name__.endswith("ScaledWordEmbedding")
    assert torch.equal(model(ids).logits, logits)


def test_resize_is_refused_and_tie_weights_keeps_the_tie():
    model = rh.train_only(tiny_model("gpt2"), MIDDLE_IDS)
    with pytest.raises(ReindexError, match=r"^cannot resize the token embeddings while reindex.hf.train_only is "
                                           r"applied \(resize before train_only, or call reindex.hf.merge\(model\) "
                                           r"first\)$"):
        model.resize_token_embeddings(VOCAB + 8)
    model.tie_weights()
    assert model.get_output_embeddings().rows is model.get_input_embeddings()
    with pytest.raises(ReindexError, match="already applied"):
        rh.train_only(model, MIDDLE_IDS)


def test_bad_token_ids_are_refused_with_the_fix():
    with pytest.raises(ReindexError, match=r"token id 96 is outside the model's vocabulary \[0, 96\) "
                                           r"\(call model.resize_token_embeddings"):
        rh.train_only(tiny_model("llama"), [3, 96])
    with pytest.raises(ReindexError, match="non-empty list of ints"):
        rh.train_only(tiny_model("llama"), [])
    with pytest.raises(ReindexError, match="not patched"):
        rh.merge(tiny_model("llama"))


@pytest.mark.parametrize("family", ["llama", "gpt2", "phi"])
def test_save_and_load_trainable_rows_only(family, tmp_path):
    model = tiny_model(family).requires_grad_(False)   # only the new rows train, as with a frozen base
    rh.train_only(model, MIDDLE_IDS)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == [
        n for n, _ in model.named_parameters() if "trainable" in n]
    train(model, 3)
    model.eval()
    path = tmp_path / "rows.safetensors"
    rh.save_trainable(model, path)
    from safetensors.torch import load_file
    tensors = load_file(path)
    expected = {"ids", "embedding"} | ({"head"} if not TIED[family] else set())
    expected |= {"head_bias"} if family == "phi" else set()
    assert set(tensors) == expected
    assert tensors["ids"].tolist() == MIDDLE_IDS and tensors["embedding"].shape == (len(MIDDLE_IDS), 16)
    fresh = rh.load_trainable(tiny_model(family), path).eval()   # patches with the file's ids
    ids = batch(5)
    assert torch.equal(fresh(ids).logits, model(ids).logits)
    other_base = tiny_model(family, seed=3)
    with pytest.raises(ReindexError, match=r"rows.safetensors: the frozen rows of this model differ from those "
                                           r"the file was trained with"):
        rh.load_trainable(other_base, path)
    with pytest.raises(ReindexError, match="other ids than this model trains"):
        rh.load_trainable(rh.train_only(tiny_model(family), [7, 8]), path)


def test_composes_with_lora(tmp_path):
    peft = pytest.importorskip("peft")
    model = tiny_model("llama")
    old_embedding, old_head, _ = plain_weights(model)
    wrapped = peft.get_peft_model(model, peft.LoraConfig(target_modules=["q_proj", "v_proj"], r=4))
    rh.train_only(wrapped, MIDDLE_IDS)   # after wrapping: PEFT freezes every base parameter
    trainable = [n for n, p in wrapped.named_parameters() if p.requires_grad]
    assert sum("lora_" in n for n in trainable) == 4
    assert [n for n in trainable if "lora_" not in n] == ["base_model.model.model.embed_tokens.trainable",
                                                          "base_model.model.lm_head._own_rows.trainable"]
    train(wrapped, 5)
    embedding, head, _ = plain_weights(model)
    assert torch.equal(embedding[FROZEN], old_embedding[FROZEN]) and torch.equal(head[FROZEN], old_head[FROZEN])
    assert (embedding[MIDDLE_IDS] != old_embedding[MIDDLE_IDS]).any(dim=1).all()
    rh.save_trainable(wrapped, tmp_path / "rows.safetensors")
    rh.merge(wrapped)
    assert type(model.get_input_embeddings()) is torch.nn.Embedding
    assert torch.equal(model.get_input_embeddings().weight.detach(), embedding)


def test_import_reindex_hf_stays_light():
    import subprocess
    import sys

    code = "import sys, reindex.hf; assert 'transformers' not in sys.modules and 'peft' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_a_deep_copy_is_an_independent_patched_model_that_merges():
    import copy

    model = rh.train_only(tiny_model("gpt2"), MIDDLE_IDS).eval()
    twin = copy.deepcopy(model)
    ids = batch()
    assert torch.equal(twin(ids).logits, model(ids).logits)
    assert twin.get_output_embeddings().rows is twin.get_input_embeddings() is not model.get_input_embeddings()
    with torch.no_grad():
        twin.get_input_embeddings().trainable.add_(1.0)
    assert not torch.equal(twin(ids).logits, model(ids).logits)
    rh.merge(twin)
    assert twin.lm_head.weight is twin.transformer.wte.weight and twin.lm_head.weight.requires_grad


@pytest.mark.parametrize("family", ["gpt2", "phi"])   # tied; untied with a head bias
def test_bfloat16_after_patching_saves_and_merges(family, tmp_path):
    model = rh.train_only(tiny_model(family), MIDDLE_IDS).to(torch.bfloat16).eval()
    ids = batch()
    logits = model(ids).logits
    model(input_ids=ids, labels=ids).loss.backward()
    assert model.get_input_embeddings().trainable.grad.dtype == torch.bfloat16
    model.save_pretrained(tmp_path)
    vanilla = type(model).from_pretrained(tmp_path, dtype=torch.bfloat16).eval()
    assert logits.dtype == torch.bfloat16 and torch.equal(vanilla(ids).logits, logits)
    rh.merge(model)
    assert model.get_input_embeddings().weight.dtype == torch.bfloat16
    assert torch.equal(model(ids).logits, logits)


class _Windows(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> dict:
        ids = batch(i)[0]
        return {"input_ids": ids, "labels": ids}


@pytest.mark.slow   # two Trainer runs with a checkpoint between them
def test_hf_trainer_checkpoints_and_resumes(tmp_path):
    from transformers import Trainer, TrainingArguments

    def trainer(model, steps: int) -> Trainer:
        args = TrainingArguments(output_dir=str(tmp_path), max_steps=steps, per_device_train_batch_size=4,
                                 learning_rate=0.05, weight_decay=0.1, save_steps=2, report_to=[], use_cpu=True,
                                 disable_tqdm=True, logging_strategy="no", lr_scheduler_type="constant")
        return Trainer(model=model, args=args, train_dataset=_Windows())

    model = tiny_model("gpt2")
    old_embedding, _, _ = plain_weights(model)
    trainer(rh.train_only(model, MIDDLE_IDS), 2).train()
    embedding, _, _ = plain_weights(model)
    assert torch.equal(embedding[FROZEN], old_embedding[FROZEN])
    assert (embedding[MIDDLE_IDS] != old_embedding[MIDDLE_IDS]).any(dim=1).all()
    # The checkpoint Trainer wrote loads into a patched model (plain layout) and training resumes.
    resumed = rh.train_only(tiny_model("gpt2", seed=5), MIDDLE_IDS)
    trainer(resumed, 3).train(resume_from_checkpoint=str(tmp_path / "checkpoint-2"))
    after, _, _ = plain_weights(resumed)
    assert torch.equal(after[FROZEN], old_embedding[FROZEN])      # the checkpoint's frozen rows, not seed 5's
    assert not torch.equal(after[MIDDLE_IDS], embedding[MIDDLE_IDS])   # one more step trained them
