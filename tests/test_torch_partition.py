"""The stable partition of a weight's rows: the weight's own memory when no row moves, a copy otherwise.

A view of the old weight that someone holds never sees its rows reordered.
"""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from reindex.errors import ReindexError
from reindex.mapping import build_permutation
from reindex.torch import SplitEmbedding, SplitLinear
from reindex.torch.embedding import IdOutOfRangeError
from reindex.torch.partition import can_reuse, is_suffix, partition_rows, private_mapping, stable_order
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



@pytest.mark.parametrize("name", sorted(masks()))
def test_the_order_is_mappings_stable_partition(name):
    trains = masks()[name]
    assert stable_order(~trains).tolist() == build_permutation((~trains).numpy()).tolist()
    weight = torch.randn(V, D)
    assert torch.equal(partition_rows(weight, ~trains), weight[stable_order(~trains)])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("name", sorted(masks()))
def test_partition_never_rewrites_the_weight(name, dtype):
    trains = masks()[name]
    weight = torch.randn(V, D).to(dtype)
    before = weight.clone()
    block = partition_rows(weight, ~trains, reuse=True)
    assert torch.equal(weight, before)
    assert torch.equal(block, before[stable_order(~trains)])
    # Reused only when no row moves: the trainable rows are already the last ones.
    assert (block.data_ptr() == weight.data_ptr()) == is_suffix(~trains)


def test_a_suffix_is_recognised():
    mask = torch.zeros(V, dtype=torch.bool)
    mask[: V - 3] = True
    assert is_suffix(mask) and not is_suffix(~masks()["middle"]) and is_suffix(torch.ones(V, dtype=torch.bool))


@pytest.mark.parametrize("name", ["middle", "random3", "first", "alternate"])
def test_a_view_taken_before_from_embedding_in_place_keeps_its_rows(name):
    embedding = nn.Embedding(V, D)
    w = embedding.weight.detach()          # the user's view of the old weight
    row3 = w[3]
    before = w.clone()
    split = SplitEmbedding.from_embedding(embedding, ~masks()[name], in_place=True)
    assert torch.equal(w, before) and torch.equal(row3, before[3])
    with torch.no_grad():
        split.trainable.add_(1.0)          # training the new rows does not reach the old view either
    assert torch.equal(w, before)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_a_view_taken_before_train_only_keeps_its_rows(family):
    pytest.importorskip("transformers")
    import reindex.hf as rh

    from _hf_models import MIDDLE_IDS, tiny_model

    model = tiny_model(family)
    w = model.get_input_embeddings().weight.detach()
    before = w.clone()
    rh.train_only(model, MIDDLE_IDS)       # not a suffix: the rows are copied, never reordered
    assert torch.equal(w, before)
    rh.merge(model)
    assert torch.equal(w, before)
    assert torch.equal(model.get_input_embeddings().weight, before)


@pytest.mark.parametrize("name", ["end_run", "last", "none"])
def test_from_embedding_in_place_shares_a_suffix_and_matches_the_default(name):
    frozen = ~masks()[name]
    embedding = nn.Embedding(V, D, padding_idx=3)
    copy_ = copy.deepcopy(embedding)
    kept = SplitEmbedding.from_embedding(copy_, frozen)
    assert torch.equal(copy_.weight, embedding.weight)   # the default leaves the user's embedding untouched
    assert memory(kept.fixed) != memory(copy_.weight)
    ptr = embedding.weight.data_ptr()
    split = SplitEmbedding.from_embedding(embedding, frozen, in_place=True)
    assert memory(split.fixed) == ptr and split.block() is not None and split.input == "sorted"
    assert torch.equal(split.merged_weight(), kept.merged_weight())
    assert torch.equal(split.merged_weight(order="original"), copy_.weight.detach())
    ids = torch.randint(0, V, (4, 6))
    assert torch.equal(split(ids), copy_(ids))


def test_split_linear_in_place_gives_the_same_logits():
    linear = nn.Linear(D, V)
    reference = copy.deepcopy(linear)
    head = SplitLinear.from_linear(linear, ~masks()["random5"], in_place=True)
    x = torch.randn(3, D)
    assert torch.equal(head(x), reference(x))


def test_weights_that_may_not_be_reused_are_copied():
    backing = torch.randn(V, 2 * D)
    strided = backing[:, :D]              # not contiguous
    assert not can_reuse(strided)
    shared = torch.frombuffer(bytearray(V * D * 4), dtype=torch.float32).view(V, D)   # not torch's own memory
    assert not can_reuse(shared)
    suffix = torch.ones(V, dtype=torch.bool)
    suffix[-2:] = False
    block = partition_rows(shared, suffix, reuse=True)
    assert block.data_ptr() != shared.data_ptr() and torch.equal(block, shared)


def mapped_rows(path, *, shared: bool) -> torch.Tensor:
    """A [V, D] float32 tensor whose memory is a mapping of the file `path` (private unless `shared`)."""
    torch.arange(V * D, dtype=torch.float32).numpy().tofile(path)
    storage = torch.UntypedStorage.from_file(str(path), shared=shared, nbytes=V * D * 4)
    return torch.empty(0).set_(storage, 0, (V, D))


def test_a_private_file_mapping_is_reused_and_the_file_never_changes(tmp_path):
    rows = mapped_rows(tmp_path / "rows.bin", shared=False)   # copy-on-write, as a safetensors checkpoint
    assert not rows.untyped_storage().resizable() and can_reuse(rows)
    suffix = torch.ones(V, dtype=torch.bool)
    suffix[-2:] = False
    split = SplitEmbedding.from_embedding(nn.Embedding.from_pretrained(rows), suffix, in_place=True)
    assert memory(split.fixed) == memory(rows)   # no second [V, D] copy
    with torch.no_grad():
        split.trainable.add_(1.0)
    assert torch.equal(torch.from_file(str(tmp_path / "rows.bin"), size=V * D), torch.arange(V * D).float())


def test_shared_and_anonymous_memory_is_not_reused(tmp_path):
    assert not can_reuse(mapped_rows(tmp_path / "rows.bin", shared=True))   # writes would reach the file
    heap = bytearray(V * D * 4)   # anonymous memory: a Python object's, not a file's
    assert not private_mapping(torch.frombuffer(heap, dtype=torch.uint8).data_ptr(), len(heap))
    assert not private_mapping(0, 1)


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
    swap = swap_in(model, model.embed, frozen_rows=~masks()["end_run"], head=model.head)
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
    model.register_buffer("alias", model.embed.weight.detach()[-5:])   # someone else reads these rows
    before = model.embed.weight.detach().clone()
    swap_in(model, model.embed, frozen_rows=~masks()["end_run"], head=model.head)
    assert memory(model.embed.fixed) != memory(model.alias)
    with torch.no_grad():
        model.embed.trainable.add_(1.0)
    assert torch.equal(model.alias, before[-5:])


@pytest.mark.parametrize("name", ["end_run", "random2"])
@pytest.mark.parametrize("tied", [False, True])
def test_in_place_restore_gives_the_trained_rows_back_and_empties_the_split_modules(tied, name):
    model = Tiny(tied=tied)
    reference = copy.deepcopy(model)
    swap = swap_in(model, model.embed, frozen_rows=~masks()[name], head=model.head)
    split, block_ptr = model.embed, memory(model.embed.fixed)
    with torch.no_grad():
        split.trainable.add_(1.0)   # trained rows must come back too
        if not tied:
            model.head.rows.trainable.add_(2.0)
    swap.restore(in_place=True)
    # A suffix hands the block's own memory back; other rows are merged into a new tensor.
    assert (memory(model.embed.weight) == block_ptr) == (name == "end_run")
    trains = masks()[name]
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
def test_train_only_and_merge_keep_the_models_own_memory_for_appended_tokens(family):
    pytest.importorskip("transformers")
    import reindex.hf as rh

    from _hf_models import VOCAB, tiny_model

    model = tiny_model(family).eval()
    reference = copy.deepcopy(model)
    emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    where = (memory(emb), memory(head))
    rh.train_only(model, list(range(VOCAB - 4, VOCAB)))   # new tokens appended by a resize
    assert (memory(model.get_input_embeddings().fixed), memory(model.get_output_embeddings().rows.fixed)) == where
    rh.merge(model)
    assert (memory(model.get_input_embeddings().weight), memory(model.get_output_embeddings().weight)) == where
    ids = torch.randint(0, 90, (2, 7))
    assert torch.equal(model(ids).logits, reference(ids).logits)
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
