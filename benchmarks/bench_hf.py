"""New tokens in a Hugging Face language model: reindex against what users would pick instead.

    python -m benchmarks.bench_hf            # vocabularies 32,000 and 128,256; 2, 64 and 4,096 new tokens
    python -m benchmarks.bench_hf --quick    # vocabulary 32,000; 2 and 64 new tokens; 20 steps of drift

Table 1, training only the new rows of embedding and head of a tiny Llama built from a config
(2 layers, hidden 256, untied head), AdamW(lr=1e-3, weight_decay=0.1), the same batch for all:
- reindex `reindex.hf.train_only(model, new_ids)`, checkpoint `reindex.hf.save_trainable`;
- PEFT `TrainableTokensConfig` on `embed_tokens` and `lm_head` (what `trainable_token_indices` wraps),
  checkpoint `save_pretrained` (the adapter);
- full training of embedding and head (what `modules_to_save` trains), checkpoint both matrices;
- a gradient-mask hook zeroing the old rows' gradient, checkpoint both matrices.
Each contender runs in its own process, so its peak RSS is its own. "old-row drift" is the largest
change of any old row of embedding and head after the drift steps (the merged weights for reindex
and PEFT); "new-row change" shows the new rows did train.

Table 2, where new tokens start (`--init`): a tiny Llama first trained on gensim's Lee corpus with a
BPE tokenizer trained on the same text; words the tokenizer splits into pieces are then added as
tokens. Loss on held-out text (gensim's lee.cor) at step 0 and after training only the new rows, with
their rows started by: reindex `--init pieces`, the mean of the old rows (`--init mean`), transformers
`resize_token_embeddings(mean_resizing=True)`, and reindex `--init normal`.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import peak_rss_of

CONTENDERS = ("reindex", "peft", "full", "mask")
DIM, LAYERS, BATCH, SEQ = 256, 2, 2, 32
LR, WEIGHT_DECAY = 1e-3, 0.1


# --- the worker: one contender, one cell, in its own process -----------------------------------

def tiny_llama(vocab: int, *, seed: int = 0, dim: int = DIM, layers: int = LAYERS):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab, hidden_size=dim, intermediate_size=2 * dim, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                         tie_word_embeddings=False)
    return LlamaForCausalLM(config)


def prepare(contender: str, model, new_ids: list[int]):
    """Make only the new rows of embedding and head trainable, the way each contender does it."""
    import torch

    model.requires_grad_(False)
    if contender == "reindex":
        import reindex.hf

        return reindex.hf.train_only(model, new_ids)
    if contender == "peft":
        from peft import TrainableTokensConfig, get_peft_model

        config = TrainableTokensConfig(target_modules=["embed_tokens", "lm_head"], token_indices=new_ids)
        return get_peft_model(model, config)
    matrices = [model.get_input_embeddings().weight, model.get_output_embeddings().weight]
    for weight in matrices:
        weight.requires_grad_(True)
        if contender == "mask":
            mask = torch.zeros(weight.shape[0], 1)
            mask[new_ids] = 1.0
            weight.register_hook(lambda grad, mask=mask: grad * mask)
    return model


def merged_matrices(contender: str, model):
    """(embedding, head) as the model now computes with them, old rows included."""
    if contender == "reindex":
        import reindex.hf

        model = reindex.hf.merge(model)
    elif contender == "peft":
        model = model.merge_and_unload()
    return (model.get_input_embeddings().weight.detach().clone(),
            model.get_output_embeddings().weight.detach().clone())


def save_checkpoint(contender: str, model, directory: Path) -> int:
    """What each contender saves for these new tokens; returns its size in bytes."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True)
    if contender == "reindex":
        import reindex.hf

        reindex.hf.save_trainable(model, directory / "trainable.safetensors")
    elif contender == "peft":
        model.save_pretrained(str(directory))
    else:
        save_file({"embed": model.get_input_embeddings().weight.detach().contiguous(),
                   "head": model.get_output_embeddings().weight.detach().contiguous()},
                  str(directory / "embed_head.safetensors"))
    return sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())


def setup(contender: str, vocab: int, new: int):
    """(model, optimizer, trainable params, batches, embedding and head before training) for one contender."""
    import torch

    model = tiny_llama(vocab + new)
    before = (model.get_input_embeddings().weight.detach().clone(),
              model.get_output_embeddings().weight.detach().clone())
    model = prepare(contender, model, list(range(vocab, vocab + new)))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=LR, weight_decay=WEIGHT_DECAY)
    generator = torch.Generator().manual_seed(1)
    batches = []
    for _ in range(4):   # half the positions are new tokens, so their rows get gradient
        ids = torch.randint(0, vocab, (BATCH, SEQ), generator=generator)
        fresh = torch.randint(vocab, vocab + new, (BATCH, SEQ), generator=generator)
        batches.append(torch.where(torch.rand(BATCH, SEQ, generator=generator) < 0.5, fresh, ids))
    return model, optimizer, params, batches, before


def train_step(model, optimizer, ids) -> float:
    """One AdamW step; its seconds."""
    start = time.perf_counter()
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    model, optimizer, params, batches, before = setup(args.contender, args.vocab, args.new)
    trainable = sum(p.numel() for p in params)   # now: reindex's merge hands the rows back (params emptied)
    times = [train_step(model, optimizer, batches[step % len(batches)]) for step in range(args.steps)]
    with tempfile.TemporaryDirectory() as tmp:
        size = save_checkpoint(args.contender, model, Path(tmp) / "ckpt")
    after = merged_matrices(args.contender, model)
    old = slice(0, args.vocab)
    drift = max(float((a[old] - b[old]).abs().max()) for a, b in zip(after, before))
    moved = min(float((a[args.vocab:] - b[args.vocab:]).abs().max()) for a, b in zip(after, before))
    timed = times[args.warmup:args.warmup + args.timed]
    Path(args.result).write_text(json.dumps({
        "step_ms": 1000 * statistics.median(timed), "ckpt_bytes": size, "old_drift": drift, "new_change": moved,
        "trainable_params": trainable}))


def interleaved_worker(args: argparse.Namespace) -> None:
    """Every contender in one process, steps timed in rounds A B C D A B C D ...: a load that comes and
    goes on a shared machine falls on all of them alike."""
    import torch

    torch.set_num_threads(args.threads)
    states = {c: setup(c, args.vocab, args.new) for c in args.contenders}
    times: dict[str, list[float]] = {c: [] for c in states}
    for step in range(args.warmup + args.timed):
        for contender, (model, optimizer, _, batches, _) in states.items():
            times[contender].append(train_step(model, optimizer, batches[step % len(batches)]))
    Path(args.result).write_text(json.dumps(
        {c: 1000 * statistics.median(ts[args.warmup:]) for c, ts in times.items()}))


# --- the driver: every cell, each contender in its own process ---------------------------------

def _worker(kind: str, vocab: int, new: int, *, steps: int, timed: int, threads: int,
            contenders: list[str]) -> tuple[dict, int]:
    """Run one worker process; (its JSON result, its peak RSS in bytes)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        result = Path(f.name)
    try:
        cmd = [sys.executable, "-m", "benchmarks.bench_hf", "--worker", kind, "--vocab", str(vocab),
               "--new", str(new), "--steps", str(steps), "--timed", str(timed), "--threads", str(threads),
               "--contenders", ",".join(contenders), "--result", str(result)]
        _, peak = peak_rss_of(cmd)
        return json.loads(result.read_text()), peak
    finally:
        result.unlink(missing_ok=True)


def contender_table(args: argparse.Namespace) -> None:
    vocabs = args.vocabs or ((32_000,) if args.quick else (32_000, 128_256))
    news = args.news or ((2, 64) if args.quick else (2, 64, 4_096))
    steps = args.drift_steps
    print(f"\n### Training only the new rows: tiny Llama ({LAYERS} layers, hidden {DIM}, untied head), "
          f"batch {BATCH} x {SEQ}, AdamW(weight_decay={WEIGHT_DECAY}), {args.threads} thread(s)\n")
    own = not args.timing_only
    print(f"step ms: median of {args.timed} steps after {args.warmup} warm-up steps, every contender in one process, "
          "steps in rounds A B C D" + ("; own-process columns: each contender alone in a fresh process "
          f"(its step ms, peak RSS, checkpoint, and the drift after {steps} steps)" if own else "")
          + ". Ratios against PEFT in the same cell.\n")
    header = "| vocab | new | contender | step ms | ratio |"
    rule = "|---:|---:|---|---:|---:|"
    if own:
        header += (" own-process step ms | peak RSS MB | ratio | checkpoint | trainable params | old-row drift "
                   "| new-row change |")
        rule += "---:|---:|---:|---:|---:|---:|---:|"
    print(header + "\n" + rule)
    for vocab in vocabs:
        for new in news:
            kwargs = {"steps": steps, "timed": args.timed, "threads": args.threads, "contenders": args.contenders}
            timing, _ = _worker("interleaved", vocab, new, **kwargs)
            cells = {c: {**r, "peak_rss": peak} for c in args.contenders if own
                     for r, peak in [_worker(c, vocab, new, **kwargs)]}
            for contender in args.contenders:
                ms, base = timing[contender], timing.get("peft", timing[contender])
                line = f"| {vocab:,} | {new:,} | {contender} | {ms:.1f} | {ms / base:.2f} |"
                if own:
                    c, p = cells[contender], cells.get("peft", cells[contender])
                    line += (f" {c['step_ms']:.1f} | {c['peak_rss'] / 2**20:,.0f} | {c['peak_rss'] / p['peak_rss']:.2f} | "
                             f"{_size(c['ckpt_bytes'])} | {c['trainable_params']:,} | {c['old_drift']:.3g} | "
                             f"{c['new_change']:.3g} |")
                print(line)
            sys.stdout.flush()


def _size(n: int) -> str:
    for unit, scale in (("MB", 2**20), ("KB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n} B"


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_hf", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: on a shared machine more oversubscribe)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--timed", type=int, default=None, help="steps timed after the warm-up")
    parser.add_argument("--drift-steps", type=int, default=None, help="training steps before the drift is measured")
    parser.add_argument("--timing-only", action="store_true", help="only the interleaved step times")
    parser.add_argument("--vocabs", type=_ints, default=None, help="e.g. 32000,128256")
    parser.add_argument("--news", type=_ints, default=None, help="new tokens, e.g. 2,64,4096")
    # the worker's own options
    parser.add_argument("--worker", choices=(*CONTENDERS, "interleaved"), help=argparse.SUPPRESS)
    parser.add_argument("--vocab", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--new", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.timed = args.timed or (5 if args.quick else 10)
    if args.worker == "interleaved":
        args.contenders = [c for c in args.contenders.split(",") if c]
        interleaved_worker(args)
        return 0
    if args.worker:
        args.contender = args.worker
        worker(args)
        return 0
    args.drift_steps = args.drift_steps or (20 if args.quick else 100)
    args.contenders = [c for c in args.contenders.split(",") if c]
    contender_table(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
