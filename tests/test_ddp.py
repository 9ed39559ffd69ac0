"""DDP with 2 processes on the CPU (gloo): frozen rows bit-identical, trainable rows equal on both ranks."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from _hf_models import MIDDLE_IDS, VOCAB  # noqa: E402

WORKER = Path(__file__).resolve().parent / "_ddp_worker.py"
FROZEN = [i for i in range(VOCAB) if i not in MIDDLE_IDS]


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gpt2", "llama"])   # tied, untied
def test_ddp_two_processes_keep_frozen_rows_and_agree_on_trainable_rows(family, tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(WORKER), str(tmp_path), family]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    for rank in ranks:
        for old, new in zip(rank["before"], rank["after"]):
            if old is None:
                continue
            assert torch.equal(new[FROZEN], old[FROZEN])                 # bit-identical frozen rows
            assert (new[MIDDLE_IDS] != old[MIDDLE_IDS]).any(dim=-1).all()  # the new rows trained
        # Optimizer state exists for no [VOCAB, ...] tensor: the frozen block carries none.
        assert all(shape[0] != VOCAB for shape in rank["state_shapes"])
        assert (len(MIDDLE_IDS), 16) in rank["state_shapes"]
        assert rank["buffers_with_grad"] == []
    for a, b in zip(ranks[0]["after"], ranks[1]["after"]):
        if a is not None:
            assert torch.equal(a, b)   # the same model on both ranks, trainable rows included
