"""Patching reuses the weight's own memory (no second [V, D] copy) and gives exactly the out-of-place rows."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from reindex.errors import ReindexError
from reindex.torch.embedding import IdOutOfRangeError
from reindex.torch import SplitEmbedding, SplitLinear
from reindex.torch.partition import can_partition_in_place, partition_rows, unpartition_rows_
from reindex.torch.swap import swap_in

V, D = 50, 7


def memory(tensor: torch.Tensor) -> int:
    """Where a tensor's storage starts (an empty view's own data_ptr is 0)."""
    return tensor.untyped_storage().data_ptr()


def masks() -> dict[str, torch.Tensor]:
    """Which rows train (True), covering the edge cases of the run-by-run move."""
    g = torch.Generator().manual_seed(0)
    cases = {"none": [], "all": list(range(V)), "first": [0], "last": [V - 1], "middle": [20, 21, 35],
             "start_run": [0, 1, 2], "end_run": [V - 3, V - 2, V - 1], "alternate": list(range(0, V, 2)),
             "both_ends": [0, V - 1]}
    cases.update({f"random{i}": torch.randperm(V, generator=g)[: int(torch.randint(1, V, (1,), generator=g))].tolist()
                  for i in range(8)})
    out = {}
    for name, ids in cases.items():
        mask = torch.zeros(V, dtype=torch.bool)
        mask[torch.tensor(ids, dtype=torch.long)] = True
        out[name] = mask
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("name", sorted(masks()))
def test_in_place_partition_is_bit_identical_to_out_of_place_and_reuses_the_memory(name, dtype):
    trains = masks()[name]
    weight = torch.randn(V, D).to(dtype)
    expected = partition_rows(weight, ~trains)
    assert torch.equal(weight, weight.clone()) and expected.data_ptr() != weight.data_ptr()
    ptr = weight.data_ptr()
    block = partition_rows(weight, ~trains, in_place=True)
    assert block.data_ptr() == ptr
    assert torch.equal(block, expected)
    # The stable partition itself: fixed rows ascending, then trainable rows ascending.
    original = torch.cat([expected[: int((~trains).sum())], expected[int((~trains).sum()):]])
    order = torch.cat([(~trains).nonzero().squeeze(1), trains.nonzero().squeeze(1)])
    assert torch.equal(original[torch.argsort(order)][order], original)


def test_out_of_place_leaves_the_weight_alone():
    weight = torch.randn(V, D)
    before = weight.clone()
    partition_rows(weight, torch.arange(V) % 3 == 0)
    assert torch.equal(weight, before)


@pytest.mark.parametrize("name", ["middle", "random3", "none", "all"])
def test_from_embedding_in_place_shares_storage_and_matches_the_default(name):
    frozen = ~masks()[name]
    embedding = nn.Embedding(V, D, padding_idx=3)
    copy_ = copy.deepcopy(embedding)
    kept = SplitEmbedding.from_embedding(copy_, frozen)
    assert torch.equal(copy_.weight, embedding.weight)   # the default leaves the user's embedding untouched
    assert memory(kept.fixed) != memory(copy_.weight)
    ptr = embedding.weight.data_ptr()
    split = SplitEmbedding.from_embedding(embedding, frozen, in_place=True)
    assert memory(split.fixed) == ptr and split._block() is not None
    assert torch.equal(split.merged_weight(), kept.merged_weight())
    assert torch.equal(split.merged_weight(order="original"), copy_.weight.detach())
    assert split.padding_idx == kept.padding_idx
    ids = torch.randint(0, V, (4, 6))
    assert torch.equal(split(ids), copy_(ids))


def test_split_linear_in_place_shares_storage_and_gives_the_same_logits():
    linear = nn.Linear(D, V)
    reference = copy.deepcopy(linear)
    frozen = ~masks()["random5"]
    ptr = linear.weight.data_ptr()
    head = SplitLinear.from_linear(linear, frozen, in_place=True)
    assert memory(head.rows.fixed) == ptr
    x = torch.randn(3, D)
    assert torch.equal(head(x), reference(x))


def test_weights_that_may_not_move_in_place_are_copied():
    backing = torch.randn(V, 2 * D)
    strided = backing[:, :D]              # not contiguous
    assert not can_partition_in_place(strided)
    shared = torch.frombuffer(bytearray(V * D * 4), dtype=torch.float32).view(V, D)   # not torch's own memory
    assert not can_partition_in_place(shared)
    before = backing.clone()
    block = partition_rows(strided, ~masks()["middle"], in_place=True)
    assert torch.equal(backing, before) and block.data_ptr() != strided.data_ptr()


class Tiny(nn.Module):
    def __init__(self, *, tied: bool, head_rows: int = V) -> None:
        super().__init__()
        self.embed = nn.Embedding(V, D)
        self.head = nn.Linear(D, head_rows, bias=False)
        if tied:
            self.head.weight = self.embed.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(ids))


@pytest.mark.parametrize("tied", [False, True])
def test_swap_in_reuses_the_models_memory_and_restores_exactly(tied):
    model = Tiny(tied=tied)
    reference = copy.deepcopy(model)
    emb_ptr, head_ptr = model.embed.weight.data_ptr(), model.head.weight.data_ptr()
    swap = swap_in(model, model.embed, frozen_rows=~masks()["middle"], head=model.head)
    assert memory(model.embed.fixed) == emb_ptr
    assert memory(model.head.rows.fixed) == head_ptr   # tied: the very same block
    assert model.head.tied == tied
    ids = torch.randint(0, V, (2, 5))
    assert torch.equal(model.embed(ids), reference.embed(ids))
    assert torch.equal(model.head.rows.merged_weight(order="original"), reference.head.weight.detach())
    # Split logits sum in another order than F.linear: equal up to rounding (as before this change).
    assert torch.allclose(model(ids), reference(ids), atol=1e-5)
    twin = copy.deepcopy(model)   # a deep copy carries its own block
    assert memory(twin.embed.fixed) != emb_ptr
    assert torch.equal(twin(ids), model(ids))
    swap.restore()
    assert torch.equal(model.embed.weight, reference.embed.weight)
    assert torch.equal(model.head.weight, reference.head.weight)
    assert (model.head.weight is model.embed.weight) == tied


def test_a_refused_swap_leaves_the_embedding_unchanged():
    model = Tiny(tied=False, head_rows=V + 1)
    before = model.embed.weight.detach().clone()
    with pytest.raises(ReindexError, match="the head has"):
        swap_in(model, model.embed, frozen_rows=~masks()["middle"], head=model.head)
    assert torch.equal(model.embed.weight, before)


def test_memory_shared_with_another_parameter_is_not_moved():
    model = Tiny(tied=False)
    model.register_buffer("alias", model.embed.weight.detach()[:5])   # someone else reads these rows
    before = model.embed.weight.detach().clone()
    swap_in(model, model.embed, frozen_rows=~masks()["first"], head=model.head)
    assert torch.equal(model.alias, before[:5])


@pytest.mark.parametrize("name", sorted(masks()))
def test_unpartition_in_place_gives_back_the_original_rows_bit_for_bit(name):
    trains = masks()[name]
    weight = torch.randn(V, D)
    before = weight.clone()
    block = partition_rows(weight, ~trains, in_place=True)
    back = unpartition_rows_(block, ~trains)
    assert back.data_ptr() == weight.data_ptr()
    assert torch.equal(back, before)


@pytest.mark.parametrize("tied", [False, True])
def test_in_place_restore_hands_the_blocks_memory_back_and_empties_the_split_modules(tied):
    model = Tiny(tied=tied)
    reference = copy.deepcopy(model)
    swap = swap_in(model, model.embed, frozen_rows=~masks()["random2"], head=model.head)
    split, block_ptr = model.embed, memory(model.embed.fixed)
    with torch.no_grad():
        split.trainable.add_(1.0)   # trained rows must come back too
        if not tied:
            model.head.rows.trainable.add_(2.0)
    swap.restore(in_place=True)
    assert memory(model.embed.weight) == block_ptr
    trains = masks()["random2"]
    expected = reference.embed.weight.detach().clone()
    expected[trains] += 1.0
    assert torch.equal(model.embed.weight, expected)
    expected_head = reference.head.weight.detach().clone()
    expected_head[trains] += 1.0 if tied else 2.0
    assert torch.equal(model.head.weight, expected_head)
    assert (model.head.weight is model.embed.weight) == tied
    with pytest.raises(IdOutOfRangeError):   # the emptied split module refuses, never answers wrongly
        split(torch.tensor([0]))


@pytest.mark.parametrize("family", ["llama", "gpt2"])   # untied, tied
def test_train_only_and_merge_keep_the_models_own_memory(family):
    pytest.importorskip("transformers")
    import reindex.hf as rh
    from _hf_models import MIDDLE_IDS, tiny_model

    model = tiny_model(family).eval()
    reference = copy.deepcopy(model)
    emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    where = (memory(emb), memory(head))
    rh.train_only(model, MIDDLE_IDS)
    assert (memory(model.get_input_embeddings().fixed), memory(model.get_output_embeddings().rows.fixed)) == where
    rh.merge(model)
    assert (memory(model.get_input_embeddings().weight), memory(model.get_output_embeddings().weight)) == where
    ids = torch.randint(0, 90, (2, 7))
    assert torch.equal(model(ids).logits, reference(ids).logits)
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
