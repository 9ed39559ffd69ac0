"""One rank of the DDP test: `torchrun --standalone --nproc_per_node 2 tests/_ddp_worker.py OUT FAMILY`.

Each rank trains a tiny model (same seed, its own data) with only MIDDLE_IDS trainable, then saves
what the test compares: the plain weights before and after, and the optimizer's state shapes.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import reindex.hf as rh  # noqa: E402
from _hf_models import MIDDLE_IDS, VOCAB, plain_weights, tiny_model  # noqa: E402


def main(out: Path, family: str) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.set_num_threads(1)
    model = tiny_model(family, seed=0)
    before = plain_weights(model)
    rh.train_only(model, MIDDLE_IDS)
    ddp = DistributedDataParallel(model)
    optimizer = torch.optim.AdamW(ddp.parameters(), lr=0.05, weight_decay=0.1)
    generator = torch.Generator().manual_seed(100 + rank)   # each rank sees its own batches
    for _ in range(10):
        ids = torch.randint(3, VOCAB, (2, 8), generator=generator)
        ids[:, 1:5] = torch.tensor(MIDDLE_IDS)
        loss = ddp(input_ids=ids, labels=ids).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    split = model.get_input_embeddings()
    state_shapes = sorted(tuple(s["exp_avg"].shape) for s in optimizer.state.values())
    buffers_with_grad = [name for name, b in model.named_buffers() if b.grad is not None or b.requires_grad]
    torch.save({"before": before, "after": plain_weights(model), "state_shapes": state_shapes,
                "buffers_with_grad": buffers_with_grad, "fixed_rows": split.num_fixed,
                "world_size": dist.get_world_size()}, out / f"rank{rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main(Path(sys.argv[1]), sys.argv[2])
