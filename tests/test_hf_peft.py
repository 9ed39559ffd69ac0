"""reindex.hf with PEFT (LoRA) and Trainer: the new rows survive every checkpoint, and resume is exact."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

import reindex.hf as rh  # noqa: E402
from reindex.errors import ReindexError  # noqa: E402
from reindex.torch.hf_peft import SWAP  # noqa: E402

from _hf_models import MIDDLE_IDS, VOCAB, plain_weights, tiny_model  # noqa: E402

TARGETS = {"llama": ["q_proj", "v_proj"], "gpt2": ["c_attn"]}   # untied head, tied head


class Windows(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> dict:
        ids = torch.randint(3, VOCAB, (9,), generator=torch.Generator().manual_seed(i))
        ids[1:5] = torch.tensor(MIDDLE_IDS)   # every new token is seen
        return {"input_ids": ids, "labels": ids}


def lora_model(family: str):
    model = peft.get_peft_model(tiny_model(family), peft.LoraConfig(target_modules=TARGETS[family], r=4,
                                                                     fan_in_fan_out=family == "gpt2"))
    return rh.train_only(model, MIDDLE_IDS)


def trainer(model, out, steps: int):
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(output_dir=str(out), max_steps=steps, per_device_train_batch_size=2, learning_rate=0.05,
                             weight_decay=0.1, save_steps=2, report_to=[], use_cpu=True, disable_tqdm=True,
                             logging_strategy="no", lr_scheduler_type="constant", seed=3)
    return Trainer(model=model, args=args, train_dataset=Windows())


def everything(model) -> dict[str, torch.Tensor]:
    """Every weight that trains: LoRA's, and the embedding and head in the model's own layout."""
    embedding, head, _ = plain_weights(model.get_base_model())
    state = {k: v.detach().clone() for k, v in model.named_parameters() if "lora_" in k}
    return {**state, "embedding": embedding, "head": head}


@pytest.mark.slow
@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_lora_trainer_resume_gives_the_uninterrupted_run(family, tmp_path):
    model = lora_model(family)
    initial = everything(model)
    trainer(model, tmp_path / "run", 4).train()
    uninterrupted = everything(model)
    assert not torch.equal(uninterrupted["embedding"][MIDDLE_IDS], initial["embedding"][MIDDLE_IDS])
    checkpoint = tmp_path / "run" / "checkpoint-2"
    assert (checkpoint / rh.ROWS_FILE).is_file()   # the rows sit beside adapter_model.safetensors
    resumed = lora_model(family)
    trainer(resumed, tmp_path / "resumed", 4).train(resume_from_checkpoint=str(checkpoint))
    after = everything(resumed)
    diffs = {k: float((after[k].float() - v.float()).abs().max()) for k, v in uninterrupted.items()}
    assert max(diffs.values()) == 0.0, diffs


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_a_saved_adapter_folder_restores_with_from_pretrained_and_one_call(family, tmp_path):
    model = lora_model(family)
    trainer(model, tmp_path / "run", 2).train()
    model.save_pretrained(tmp_path / "adapter")
    ids = torch.tensor([MIDDLE_IDS + [7, 8]])
    expected = model.eval()(input_ids=ids).logits
    loaded = peft.PeftModel.from_pretrained(tiny_model(family), tmp_path / "adapter")
    rh.load_trainable(loaded, tmp_path / "adapter")   # the folder: its rows file
    assert torch.equal(loaded.eval()(input_ids=ids).logits, expected)


def test_train_only_before_get_peft_model_is_refused_at_the_first_training_step():
    model = rh.train_only(tiny_model("llama"), MIDDLE_IDS)
    wrapped = peft.get_peft_model(model, peft.LoraConfig(target_modules=TARGETS["llama"], r=4))
    ids = torch.tensor([MIDDLE_IDS])
    with pytest.raises(ReindexError, match=r"the new rows are frozen.*after get_peft_model"):
        wrapped.train()(input_ids=ids, labels=ids)
    wrapped.eval()(input_ids=ids)   # evaluation is fine


@pytest.mark.parametrize("family", ["llama", "gpt2"])
@pytest.mark.parametrize("owner", ["peft_model", "tuner"])
def test_merge_and_unload_gives_a_plain_base_model(family, owner, tmp_path):
    import copy

    model = lora_model(family)
    trainer(model, tmp_path / "run", 2).train()
    ids = torch.tensor([MIDDLE_IDS + [7, 8]])
    expected = model.eval()(input_ids=ids).logits
    twin = copy.deepcopy(model)
    base = (model if owner == "peft_model" else model.base_model).merge_and_unload()
    assert type(base.get_input_embeddings()) is torch.nn.Embedding
    assert torch.allclose(base(input_ids=ids).logits, expected, atol=1e-5)   # LoRA merged: float rounding
    assert SWAP not in model.__dict__
    base.tie_weights()
    base.resize_token_embeddings(VOCAB + 2)   # a plain transformers model again
    assert base.get_input_embeddings().weight.shape[0] == VOCAB + 2
    copied = twin.merge_and_unload()   # a deep copy merges its own rows, not the original's
    assert type(copied.get_input_embeddings()) is torch.nn.Embedding
    assert torch.allclose(copied(input_ids=ids).logits, expected, atol=1e-5)
