"""Fine-tune a tiny model three ways after adding tokens, for `reindex audit` to tell them apart (docs/audit.md).

    python examples/audit_demo.py --out audit_demo

Writes OUT/base (a tiny Llama built from a config, nothing downloaded, with a 64-word tokenizer)
and three fine-tunes of it, each with two added tokens, `<tool>` and `</tool>`, trained for a few
AdamW steps (weight decay 0.1) on random sequences that use them:
- OUT/masked: the whole embedding and head trainable, the old rows' gradients zeroed by a hook
  (the usual "freeze these rows" recipe): weight decay still moves every old row;
- OUT/full: the whole embedding and head trained: every row moves;
- OUT/train_only: `reindex.hf.train_only(model, new_ids)`: only the new rows can move.
Only the embedding and the head train; every other weight is frozen, as the audit reads nothing else.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

import reindex.hf

WORDS = ["<pad>", "<s>", "</s>"] + [f"word{i}" for i in range(61)]
NEW_TOKENS = ["<tool>", "</tool>"]


def tokenizer(words: list[str]) -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, models, pre_tokenizers

    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>")


def base_model() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(WORDS), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=False,
                         pad_token_id=0, bos_token_id=1, eos_token_id=2)
    return LlamaForCausalLM(config)


def fine_tune(base: Path, out: Path, how: str, *, steps: int) -> None:
    """Add NEW_TOKENS, resize, and train the embedding and head `how`; save model and tokenizer to `out`."""
    model = LlamaForCausalLM.from_pretrained(base)
    tok = tokenizer(WORDS)
    tok.add_tokens(NEW_TOKENS)
    model.resize_token_embeddings(len(tok))
    new_ids = tok.convert_tokens_to_ids(NEW_TOKENS)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    if how == "train_only":
        reindex.hf.train_only(model, new_ids)
    else:
        for module in (model.get_input_embeddings(), model.get_output_embeddings()):
            module.weight.requires_grad_(True)
            if how == "masked":
                mask = torch.zeros(module.weight.shape[0], 1)
                mask[new_ids] = 1.0
                module.weight.register_hook(lambda grad, mask=mask: grad * mask)
    train(model, new_ids, steps=steps)
    if how == "train_only":
        reindex.hf.merge(model)
    model.save_pretrained(out)
    tok.save_pretrained(out)


def train(model: LlamaForCausalLM, new_ids: list[int], *, steps: int) -> None:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.1)
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        ids = torch.randint(3, len(WORDS), (8, 12), generator=generator)
        ids[:, ::4] = torch.tensor(new_ids)[torch.randint(0, len(new_ids), (8, 3), generator=generator)]
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("audit_demo"), help="folder for base/ and the three tunes")
    parser.add_argument("--steps", type=int, default=20, help="AdamW steps per fine-tune")
    args = parser.parse_args()
    base = args.out / "base"
    base_model().save_pretrained(base)
    tokenizer(WORDS).save_pretrained(base)
    for how in ("masked", "full", "train_only"):
        fine_tune(base, args.out / how, how, steps=args.steps)
        print(f"wrote {args.out / how}")


if __name__ == "__main__":
    main()
