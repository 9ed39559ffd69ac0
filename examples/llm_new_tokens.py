"""Add tokens to a language model's tokenizer and train only their rows (embedding and output head).

    pip install 'reindex-vocab[hf]'        # transformers and tokenizers: nothing else is needed
    python examples/llm_new_tokens.py --out runs/llm --steps 30

1. Train a small BPE tokenizer on real text (this repository's README.md and docs/*.md) and wrap it
   for transformers.
2. Build a tiny Llama from a config (nothing is downloaded): it stands in for your pretrained model.
3. Add new tokens, resize the model, and `reindex.hf.train_only(model, new_ids)`: only those rows
   of the embedding and the head train; every old row stays bit-identical under AdamW's weight decay.
4. `save_pretrained`, reload with plain `from_pretrained` (no reindex needed), and generate.
The script checks each step and exits non-zero if one fails.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

import reindex.hf

NEW_TOKENS = ["SplitEmbedding", "fastText", "GloVe"]
ROOT = Path(__file__).resolve().parent.parent


def corpus_lines() -> list[str]:
    """English text that comes with the clone: the README and the docs, one paragraph line a line."""
    paths = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return [line for path in paths for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def train_tokenizer(lines: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(lines, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>", unk_token="<unk>")


def batches(tokenizer: PreTrainedTokenizerFast, lines: list[str], *, size: int, length: int):
    """Endless batches of windows around the new tokens, so that every step sees them."""
    ids = [tokenizer(line)["input_ids"] for line in lines if any(token in line for token in NEW_TOKENS)]
    new_ids = set(tokenizer.convert_tokens_to_ids(NEW_TOKENS))
    windows = []
    for row in ids:
        for i, token in enumerate(row):
            if token in new_ids:
                start = max(0, min(i - length // 2, len(row) - length))
                if len(row[start:start + length]) == length:
                    windows.append(row[start:start + length])
    windows = torch.tensor(windows)
    generator = torch.Generator().manual_seed(0)
    while True:
        yield windows[torch.randint(0, len(windows), (size,), generator=generator)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="where to save the model (default: a temporary folder)")
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    torch.manual_seed(0)
    lines = corpus_lines()

    tokenizer = train_tokenizer(lines, vocab_size=600)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=False,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    model = LlamaForCausalLM(config)   # stands in for a pretrained model

    added = tokenizer.add_tokens(NEW_TOKENS)
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    new_ids = tokenizer.convert_tokens_to_ids(NEW_TOKENS)
    print(f"tokenizer: {len(tokenizer)} tokens, {added} new: {dict(zip(NEW_TOKENS, new_ids, strict=True))}")
    old_ids = [i for i in range(len(tokenizer)) if i not in new_ids]
    old_embedding = model.get_input_embeddings().weight.detach().clone()
    old_head = model.get_output_embeddings().weight.detach().clone()

    reindex.hf.train_only(model, new_ids)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.1)
    model.train()
    data = batches(tokenizer, lines, size=8, length=24)
    for step in range(1, args.steps + 1):
        ids = next(data)
        loss = model(input_ids=ids, labels=ids).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step == 1 or step == args.steps:
            print(f"step {step}: loss {loss.item():.3f}")
    model.eval()

    state = model.state_dict()   # the plain layout, exactly as save_pretrained writes it
    embedding, head = state["model.embed_tokens.weight"], state["lm_head.weight"]
    kept = int((embedding[old_ids] == old_embedding[old_ids]).all(1).sum())
    kept_head = int((head[old_ids] == old_head[old_ids]).all(1).sum())
    moved = int(((embedding[new_ids] != old_embedding[new_ids]).any(1)
                 & (head[new_ids] != old_head[new_ids]).any(1)).sum())
    print(f"old rows unchanged: embedding {kept}/{len(old_ids)}, head {kept_head}/{len(old_ids)}; "
          f"new rows trained: {moved}/{len(new_ids)}")

    with tempfile.TemporaryDirectory() as temporary:
        out = args.out or Path(temporary)
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        vanilla = AutoModelForCausalLM.from_pretrained(out).eval()   # plain transformers, no reindex
        reloaded_tokenizer = AutoTokenizer.from_pretrained(out)
        prompt = reloaded_tokenizer("The trainable rows", return_tensors="pt")
        with torch.no_grad():
            same = torch.equal(vanilla(**prompt).logits, model(**prompt).logits)
        print(f"reloaded with from_pretrained ({type(vanilla.get_input_embeddings()).__name__}): "
              f"identical logits: {same}")
        generated = vanilla.generate(**prompt, max_new_tokens=8, do_sample=False,
                                     pad_token_id=reloaded_tokenizer.pad_token_id)
        print("generated:", reloaded_tokenizer.decode(generated[0], skip_special_tokens=True))
    if not (same and kept == kept_head == len(old_ids) and moved == len(new_ids)):
        raise SystemExit("check failed: see the lines above")


if __name__ == "__main__":
    main()
