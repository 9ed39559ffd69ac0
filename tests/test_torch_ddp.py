"""DDP and FSDP2 with 2 processes on the CPU (gloo): frozen rows bit-identical, trainable rows equal on both ranks."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from _hf_models import MIDDLE_IDS, VOCAB  # noqa: E402

WORKER = Path(__file__).resolve().parent / "_torch_ddp_worker.py"
FROZEN = [i for i in range(VOCAB) if i not in MIDDLE_IDS]
FAMILIES = ["gpt2", "llama"]   # tied, untied
# With pytest-xdist (--dist loadfile, or loadgroup), one worker runs this file: one two-process run.
pytestmark = pytest.mark.xdist_group("ddp")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One two-process run trains every family (one process group, one torch import per rank)."""
    out = tmp_path_factory.mktemp("ddp")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(WORKER), str(out), *FAMILIES]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.fixture(params=FAMILIES)
def ranks(request, trained) -> list[dict]:
    return [torch.load(trained / f"{request.param}-rank{r}.pt", weights_only=True) for r in range(2)]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_two_processes_keep_frozen_rows_and_agree_on_trainable_rows(ranks, mode):
    assert [r["world_size"] for r in ranks] == [2, 2]
    for rank in ranks:
        result = rank[mode]
        for old, new in zip(result["before"], result["after"], strict=True):
            if old is None:
                continue
            assert torch.equal(new[FROZEN], old[FROZEN])                    # bit-identical frozen rows
            assert (new[MIDDLE_IDS] != old[MIDDLE_IDS]).any(dim=-1).all()  # the new rows trained
        # No optimizer state has the frozen block's [VOCAB, ...] shape; the trainable rows have theirs.
        assert all(shape[0] != VOCAB for shape in result["state_shapes"])
        assert (len(MIDDLE_IDS), 16) in result["state_shapes"]
        assert result["buffers_with_grad"] == []
    for a, b in zip(ranks[0][mode]["after"], ranks[1][mode]["after"], strict=True):
        if a is not None:
            assert torch.equal(a, b)   # the same model on both ranks, trainable rows included


@pytest.mark.slow
def test_fsdp2_trains_the_same_rows_as_ddp(ranks):
    # Both average the two ranks' gradients; only the order of the sums may differ.
    for ddp, fsdp in zip(ranks[0]["ddp"]["after"], ranks[0]["fsdp"]["after"], strict=True):
        if ddp is not None:
            torch.testing.assert_close(fsdp, ddp, rtol=1e-4, atol=1e-5)
