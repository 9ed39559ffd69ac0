"""One rank of the distributed tests:
`torchrun --standalone --nproc_per_node 2 tests/_torch_ddp_worker.py OUT FAMILY...`.

For each FAMILY, each rank trains a tiny model (same seed, its own batches) with only MIDDLE_IDS
trainable, once under DDP and once under FSDP2 (`fully_shard`), and saves what the test compares
(OUT/FAMILY-rankR.pt): the plain weights before and after, the optimizer's state shapes, and buffers
that would carry a gradient.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.fsdp import fully_shard
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import reindex.hf as rh  # noqa: E402

from _hf_models import MIDDLE_IDS, VOCAB, tiny_model  # noqa: E402


def weights(state: dict) -> tuple:
    """(embedding, head, head bias) from a plain-layout state dict (a tied head: the embedding)."""
    embedding = next(v for k, v in state.items() if k.endswith(("embed_tokens.weight", "wte.weight")))
    return embedding.clone(), state.get("lm_head.weight", embedding).clone(), state.get("lm_head.bias")


def train(model, wrapped, rank: int) -> list[tuple[int, ...]]:
    optimizer = torch.optim.AdamW(wrapped.parameters(), lr=0.05, weight_decay=0.1)
    generator = torch.Generator().manual_seed(100 + rank)   # each rank sees its own batches
    for _ in range(10):
        ids = torch.randint(3, VOCAB, (2, 8), generator=generator)
        ids[:, 1:5] = torch.tensor(MIDDLE_IDS)
        loss = wrapped(input_ids=ids, labels=ids).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return sorted(tuple(s["exp_avg"].shape) for s in optimizer.state.values())


def main(out: Path, families: list[str]) -> None:
    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    for family in families:
        run_family(out, family)
    dist.barrier()  # neither rank tears the group down while the other may still use it
    dist.destroy_process_group()


def run_family(out: Path, family: str) -> None:
    rank = dist.get_rank()
    results = {"world_size": dist.get_world_size()}
    for mode in ("ddp", "fsdp"):
        model = tiny_model(family, seed=0)
        before = weights(model.state_dict())
        rh.train_only(model, MIDDLE_IDS)
        if mode == "ddp":
            wrapped = DistributedDataParallel(model)
        else:
            layers = model.model.layers if family == "llama" else model.transformer.h
            for layer in layers:
                fully_shard(layer)
            wrapped = fully_shard(model)
        shapes = train(model, wrapped, rank)
        # Gathers FSDP2's shards; the plain layout (`...embed_tokens.weight`) as save_pretrained writes it.
        state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True))
        buffers_with_grad = [name for name, b in model.named_buffers() if b.grad is not None or b.requires_grad]
        results[mode] = {"before": before, "after": weights(state), "state_shapes": shapes,
                         "buffers_with_grad": buffers_with_grad}
    torch.save(results, out / f"{family}-rank{rank}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
    sys.stdout.flush()
    sys.stderr.flush()
    # The results are saved and the group is gone. At interpreter exit, gloo's threads were torn down
    # in an order that aborted a rank about one run in six ("terminate called without an active
    # exception", SIGABRT) after it had written everything: leave without running those destructors.
    os._exit(0)
