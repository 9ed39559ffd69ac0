"""Where new tokens of a language model start: reindex `--init pieces` against the usual choices.

    python -m benchmarks.bench_hf_init            # 64 new tokens, 100 training steps
    python -m benchmarks.bench_hf_init --quick    # 32 new tokens, 20 training steps

A BPE tokenizer (2,000 tokens) is trained by `tokenizers` on gensim's Lee background corpus, and a
tiny Llama (2 layers, hidden 64, untied head) on the same text. The most frequent words that this
tokenizer splits into several pieces are added as tokens (`add_tokens`). The new rows of embedding and
head start from:
- `pieces`: reindex build --init pieces (embedding; head with --vectors-key lm_head.weight);
- `mean`: the mean of the old rows (what reindex --init mean gives);
- `mean_resizing`: transformers `resize_token_embeddings(mean_resizing=True)`;
- `normal`: reindex build --init normal (per-dimension mean and std of the old rows).
Then only the new rows train (reindex.hf.train_only, AdamW). Loss is measured on held-out text
(gensim's lee.cor) encoded with the new tokenizer: over every position, and over the positions whose
target is a new token.
"""
from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from collections import Counter
from pathlib import Path

OLD_VOCAB, DIM, SEQ, BATCH = 2_000, 64, 64, 8
INITS = ("pieces", "mean", "mean_resizing", "normal")


def lee(name: str) -> str:
    import gensim

    # lee.cor holds a few Latin-1 bytes (a pound sign): decode them rather than fail
    return (Path(gensim.__file__).parent / "test" / "test_data" / name).read_bytes().decode("utf-8", "replace")


def train_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(lee("lee_background.cor").splitlines(), trainers.BpeTrainer(
        vocab_size=OLD_VOCAB, special_tokens=["<pad>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    return tok


def chunks(ids: list[int], torch):
    """The token stream cut into [n, SEQ] rows."""
    n = len(ids) // SEQ
    return torch.tensor(ids[:n * SEQ]).view(n, SEQ)


def train(model, data, *, steps: int, lr: float, seed: int, torch) -> None:
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        batch = data[torch.randint(0, data.shape[0], (BATCH,), generator=generator)]
        model(input_ids=batch, labels=batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def evaluate(model, data, new_ids: set[int], torch) -> tuple[float, float]:
    """(mean loss over every target, mean loss over targets that are new tokens)."""
    import torch.nn.functional as F

    model.eval()
    with torch.no_grad():
        logits = model(input_ids=data).logits[:, :-1]
        targets = data[:, 1:]
        losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
    is_new = torch.isin(targets.reshape(-1), torch.tensor(sorted(new_ids)))
    return float(losses.mean()), float(losses[is_new].mean())


def new_words(tok, count: int) -> list[str]:
    """The most frequent words the tokenizer splits into two or more pieces."""
    words = Counter(w for w in lee("lee_background.cor").split() if w.isalpha() and len(w) > 4)
    split = [w for w, _ in words.most_common() if len(tok.encode(" " + w).ids) >= 2]
    return split[:count]


def starting_rows(name: str, old_model, directory: Path, new_size: int, torch):
    """(embedding rows, head rows) of the new tokens under init `name`."""
    from reindex.commands.build import build

    old = OLD_VOCAB
    if name in ("pieces", "normal"):
        rows = []
        for key in (None, "lm_head.weight"):
            out = directory / f"run-{name}-{key}"
            result = build(vocab=directory / "new" / "tokenizer.json", vectors=directory / "old", out=out,
                           init=name, vectors_key=key, force=True)
            rows.append(torch.from_numpy(result.run.weight(order="original")[old:]))
        return rows
    if name == "mean":
        return [w[:old].mean(dim=0, keepdim=True).expand(new_size - old, -1).clone()
                for w in (old_model.get_input_embeddings().weight.detach(),
                          old_model.get_output_embeddings().weight.detach())]
    resized = copy.deepcopy(old_model)
    torch.manual_seed(0)
    resized.resize_token_embeddings(new_size, mean_resizing=True)
    return [resized.get_input_embeddings().weight.detach()[old:].clone(),
            resized.get_output_embeddings().weight.detach()[old:].clone()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_hf_init", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: on a shared machine more oversubscribe)")
    args = parser.parse_args(argv)
    count, steps, pretrain = (32, 20, 150) if args.quick else (64, 100, 400)

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from transformers.utils import logging

    import reindex.hf

    logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    tok = train_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=OLD_VOCAB, hidden_size=DIM, intermediate_size=2 * DIM, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=SEQ,
                         tie_word_embeddings=False)
    old_model = LlamaForCausalLM(config)
    train(old_model, chunks(tok.encode(lee("lee_background.cor")).ids, torch), steps=pretrain, lr=3e-3, seed=0,
          torch=torch)
    words = new_words(tok, count)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        old_model.save_pretrained(str(directory / "old"))
        PreTrainedTokenizerFast(tokenizer_object=tok).save_pretrained(str(directory / "old"))
        new_tok = copy.deepcopy(tok)
        new_tok.add_tokens(words)
        (directory / "new").mkdir()
        new_tok.save(str(directory / "new" / "tokenizer.json"))
        new_size = new_tok.get_vocab_size()
        new_ids = set(range(OLD_VOCAB, new_size))
        train_data = chunks(new_tok.encode(lee("lee_background.cor")).ids, torch)
        test_data = chunks(new_tok.encode(lee("lee.cor")).ids, torch)
        base = evaluate(old_model, chunks(tok.encode(lee("lee.cor")).ids, torch), set(), torch)[0]
        print(f"\n### Where {len(words)} new tokens start: tiny Llama (2 layers, hidden {DIM}) trained "
              f"{pretrain} steps on Lee; then {steps} steps training only the new rows\n")
        print(f"Old model, old tokenizer, held-out loss {base:.3f}. New tokens e.g. {', '.join(words[:6])}.\n")
        print(f"| init | loss step 0 | loss on new targets step 0 | loss step {steps} | "
              f"loss on new targets step {steps} |")
        print("|---|---:|---:|---:|---:|")
        for name in INITS:
            embed_rows, head_rows = starting_rows(name, old_model, directory, new_size, torch)
            model = copy.deepcopy(old_model)
            model.resize_token_embeddings(new_size, mean_resizing=False)
            with torch.no_grad():
                model.get_input_embeddings().weight[OLD_VOCAB:] = embed_rows
                model.get_output_embeddings().weight[OLD_VOCAB:] = head_rows
            start = evaluate(model, test_data, new_ids, torch)
            model.requires_grad_(False)
            reindex.hf.train_only(model, sorted(new_ids))
            train(model, train_data, steps=steps, lr=1e-2, seed=1, torch=torch)
            end = evaluate(model, test_data, new_ids, torch)
            print(f"| {name} | {start[0]:.3f} | {start[1]:.3f} | {end[0]:.3f} | {end[1]:.3f} |")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
