"""reindex.hf under TRL's SFTTrainer (LoRA + new rows): checkpoints resume exactly, and untied head rows train.

SFTTrainer computes its loss from `lm_head.weight` itself (a fused, chunked head), not from the
model's logits, so these pin that `.weight` carries gradients to the trainable head rows.
"""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")
peft = pytest.importorskip("peft")
trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

from test_hf_peft import everything, lora_model  # noqa: E402

import reindex.hf as rh  # noqa: E402

from _hf_models import MIDDLE_IDS, VOCAB, plain_weights, tiny_model  # noqa: E402


def tokenizer():
    """A word-level tokenizer over the tiny models' ids (SFTTrainer needs one; nothing downloaded)."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, **{f"t{i}": i for i in range(3, VOCAB)}}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<pad>")),
                                   pad_token="<pad>", bos_token="<s>", eos_token="</s>")


def windows():
    rows = []
    for i in range(8):
        ids = torch.randint(3, VOCAB, (9,), generator=torch.Generator().manual_seed(i))
        ids[1:5] = torch.tensor(MIDDLE_IDS)   # every new token is seen
        rows.append(ids.tolist())
    return datasets.Dataset.from_dict({"input_ids": rows})


def sft(model, out, steps: int):
    args = trl.SFTConfig(output_dir=str(out), max_steps=steps, per_device_train_batch_size=2, learning_rate=0.05,
                         weight_decay=0.1, save_steps=2, report_to=[], use_cpu=True, disable_tqdm=True,
                         logging_strategy="no", lr_scheduler_type="constant", seed=3, max_length=None)
    return trl.SFTTrainer(model=model, args=args, train_dataset=windows(), processing_class=tokenizer())


@pytest.mark.slow
@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_lora_sft_resume_gives_the_uninterrupted_run(family, tmp_path):
    model = lora_model(family)
    initial = everything(model)
    sft(model, tmp_path / "run", 4).train()
    uninterrupted = everything(model)
    assert not torch.equal(uninterrupted["embedding"][MIDDLE_IDS], initial["embedding"][MIDDLE_IDS])
    checkpoint = tmp_path / "run" / "checkpoint-2"
    assert (checkpoint / rh.ROWS_FILE).is_file()
    resumed = lora_model(family)
    sft(resumed, tmp_path / "resumed", 4).train(resume_from_checkpoint=str(checkpoint))
    after = everything(resumed)
    diffs = {k: float((after[k].float() - v.float()).abs().max()) for k, v in uninterrupted.items()}
    print(family, "resume max diffs", diffs)
    assert max(diffs.values()) == 0.0, diffs


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_sft_trains_the_head_rows_and_only_them(family, tmp_path):
    model = rh.train_only(tiny_model(family), MIDDLE_IDS)
    embedding, head, _ = plain_weights(model)
    sft(model, tmp_path / "run", 2).train()
    embedding_after, head_after, _ = plain_weights(model)
    old = [i for i in range(VOCAB) if i not in MIDDLE_IDS]
    assert torch.equal(embedding_after[old], embedding[old]) and torch.equal(head_after[old], head[old])
    assert (embedding_after[MIDDLE_IDS] != embedding[MIDDLE_IDS]).any(dim=1).all()
    moved = (head_after[MIDDLE_IDS] - head[MIDDLE_IDS]).abs().max(dim=1).values
    print(family, "head rows moved", moved.tolist())
    assert (moved > 0).all()   # untied (Llama): its own rows; tied (GPT-2): the embedding's
