"""Peak memory of `reindex.hf.train_only` on a Llama-3-8B-shaped embedding and head.

    python -m benchmarks.bench_hf_memory            # vocabulary 128,256 x 4,096 in bfloat16, one tiny layer

A LlamaForCausalLM with Llama-3-8B's vocabulary and width (untied head: two 128,256 x 4,096 bf16
matrices, 1.05 GB each) and a single decoder layer with a small MLP, saved once with
`save_pretrained`. Each case runs in its own process: load with `from_pretrained(low_cpu_mem_usage=True)`
(safetensors), then `train_only` with 256 new ids, then one forward/backward/AdamW step on the rows.
It prints the process's peak RSS against the model's own size (parameters and buffers, in bytes).
"suffix": the new ids are the last 256 (tokens appended by a resize); "spread": 256 ids spread
through the vocabulary (the rows are copied once). "built-*": the model built in the worker from the
config (torch's own memory) instead of loaded. A bf16 checkpoint loaded without a cast is a private
(copy-on-write) file mapping: with suffix ids train_only uses it as the split block, so no second
copy (only the trained rows' pages are copied, and the file is never written).
The ratios include the interpreter with torch and transformers imported (about 0.4 GB).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

VOCAB, DIM, NEW = 128_256, 4_096, 256


def build(directory: Path) -> None:
    import torch
    import transformers as T

    config = T.LlamaConfig(vocab_size=VOCAB, hidden_size=DIM, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=False)
    torch.set_default_dtype(torch.bfloat16)
    model = T.LlamaForCausalLM(config)
    model.save_pretrained(directory)


def worker(directory: Path, case: str) -> dict:
    import torch
    import transformers as T

    import reindex.hf

    if case.startswith("built"):   # built in this process: torch's own memory
        config = T.AutoConfig.from_pretrained(directory)
        torch.set_default_dtype(torch.bfloat16)
        model = T.LlamaForCausalLM(config)
        torch.set_default_dtype(torch.float32)
    else:   # loaded: a bf16 checkpoint is memory-mapped, not copied, by safetensors
        model = T.AutoModelForCausalLM.from_pretrained(directory, dtype=torch.bfloat16, low_cpu_mem_usage=True)
    size = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    ids = list(range(VOCAB - NEW, VOCAB)) if case.endswith("suffix") else list(range(1_000, VOCAB, VOCAB // NEW))[:NEW]
    reindex.hf.train_only(model, ids)
    patched = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    batch = torch.tensor([ids[:16]])
    model(input_ids=batch, labels=batch).loss.backward()
    optimizer.step()
    stepped = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"case": case, "model_bytes": size, "peak_after_load": loaded, "peak_after_train_only": patched,
            "peak_after_step": stepped}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_hf_memory", description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.dir, args.worker)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        build(Path(tmp))
        print(f"{'case':13} {'model GB':>9} {'after load':>11} {'after train_only':>17} {'after 1 step':>13}")
        for case in ("built-suffix", "built-spread", "suffix", "spread"):
            out = subprocess.run([sys.executable, "-m", "benchmarks.bench_hf_memory", "--worker", case,
                                  "--dir", tmp], check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            gb, size = 1e9, r["model_bytes"]
            print(f"{case:13} {size / gb:9.2f} " + " ".join(
                f"{r[k] / gb:6.2f} ({r[k] / size:.2f}x)".rjust(w) for k, w in
                (("peak_after_load", 11), ("peak_after_train_only", 17), ("peak_after_step", 13))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
