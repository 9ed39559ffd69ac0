"""SplitEmbedding: forward and gradients equal nn.Embedding's, fixed rows never move, I/O round trips."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from torch import nn

from reindex.errors import ReindexError
from reindex.torch import IdOutOfRangeError, SplitEmbedding

from _runs import make_run

NUM_FIXED, NUM_TRAINABLE, DIM = 12, 9, 5


def split(*, padding_idx: int | None = None, sparse: bool = False, seed: int = 0) -> SplitEmbedding:
    g = torch.Generator().manual_seed(seed)
    return SplitEmbedding(torch.randn(NUM_FIXED, DIM, generator=g), torch.randn(NUM_TRAINABLE, DIM, generator=g),
                          padding_idx=padding_idx, sparse=sparse)


def test_worked_example_by_hand():
    emb = SplitEmbedding(torch.tensor([[0.0, 0.0], [1.0, 1.0]]), torch.tensor([[5.0, 6.0]]))
    assert emb(torch.tensor([2, 0, 1, 2])).tolist() == [[5.0, 6.0], [0.0, 0.0], [1.0, 1.0], [5.0, 6.0]]
    assert repr(emb) == "SplitEmbedding(2 fixed + 1 trainable, 2)"


@pytest.mark.parametrize("padding_idx", [None, 3, NUM_FIXED + 2])
@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("shape", [(7,), (4, 6), (2, 3, 5), (0, 3)])
def test_forward_equals_f_embedding_of_merged_weight(padding_idx, dtype, shape):
    emb = split(padding_idx=padding_idx)
    ids = torch.randint(0, NUM_FIXED + NUM_TRAINABLE, shape, dtype=dtype)
    expected = F.embedding(ids, torch.cat([emb.fixed, emb.trainable.detach()]), padding_idx)
    assert torch.equal(emb(ids), expected)


@settings(max_examples=60, deadline=None)
@given(num_fixed=st.integers(0, 6), num_trainable=st.integers(0, 6), seed=st.integers(0, 2**16),
       length=st.integers(0, 20))
def test_forward_property_any_split(num_fixed, num_trainable, seed, length):
    vocab = num_fixed + num_trainable
    if vocab == 0:
        return
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(vocab, 3, generator=g)
    emb = SplitEmbedding(weight[:num_fixed], weight[num_fixed:].clone())
    ids = torch.randint(0, vocab, (length,), generator=g)
    assert torch.equal(emb(ids), F.embedding(ids, weight))


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("padding_idx", [None, 2, NUM_FIXED + 1])
def test_gradient_equals_full_embedding_restricted_to_trainable_rows(sparse, padding_idx):
    emb = split(padding_idx=padding_idx, sparse=sparse)
    full = nn.Embedding.from_pretrained(emb.merged_weight().clone(), freeze=False, padding_idx=padding_idx)
    ids = torch.randint(0, NUM_FIXED + NUM_TRAINABLE, (6, 8))
    ids[0, :4] = torch.tensor([NUM_FIXED + 1, NUM_FIXED + 1, 3, NUM_FIXED])   # repeats and padding
    upstream = torch.randn(6, 8, DIM)
    (emb(ids) * upstream).sum().backward()
    (full(ids) * upstream).sum().backward()
    grad = emb.trainable.grad
    assert grad.is_sparse == sparse
    grad = grad.to_dense() if sparse else grad
    torch.testing.assert_close(grad, full.weight.grad[NUM_FIXED:], rtol=0, atol=1e-6)
    assert grad.abs().sum() > 0


def test_batch_of_fixed_ids_only_still_backpropagates():
    emb = split()
    emb(torch.tensor([0, 1, 2])).sum().backward()
    assert torch.equal(emb.trainable.grad, torch.zeros(NUM_TRAINABLE, DIM))


def test_parameters_hold_no_fixed_row():
    model = nn.Sequential(split(), nn.Flatten(), nn.Linear(DIM, 2))
    parameters = dict(model.named_parameters())
    assert list(parameters) == ["0.trainable", "2.weight", "2.bias"]
    assert parameters["0.trainable"].shape == (NUM_TRAINABLE, DIM)
    assert "0.fixed" in dict(model.named_buffers())


def tiny_model(emb: nn.Module) -> nn.Module:
    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed, self.head = emb, nn.Linear(DIM, 2)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.head(self.embed(ids).mean(1))

    return Model()


OPTIMIZERS = {
    "AdamW(wd=0.01)": (False, lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.01)),
    "Adam(weight_decay=0.01)": (False, lambda p: torch.optim.Adam(p, lr=0.05, weight_decay=0.01)),
    "SGD(momentum=0.9, wd=0.01)": (False, lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.01)),
    "SparseAdam": (True, lambda p: torch.optim.SparseAdam(p, lr=0.05)),
    "SGD sparse": (True, lambda p: torch.optim.SGD(p, lr=0.1)),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_fixed_rows_bit_identical_after_100_steps(name):
    sparse, make_optimizer = OPTIMIZERS[name]
    torch.manual_seed(0)
    emb = split(sparse=sparse)
    model = tiny_model(emb)
    fixed_before, trainable_before = emb.fixed.clone(), emb.trainable.detach().clone()
    if sparse:  # SparseAdam takes sparse gradients only: the head gets its own dense optimizer
        optimizers = [make_optimizer([emb.trainable]), torch.optim.Adam(model.head.parameters())]
    else:
        optimizers = [make_optimizer(model.parameters())]
    for _ in range(100):
        ids = torch.randint(0, NUM_FIXED + NUM_TRAINABLE, (8, 6))
        loss = F.cross_entropy(model(ids), torch.randint(0, 2, (8,)))
        for opt in optimizers:
            opt.zero_grad()
        loss.backward()
        for opt in optimizers:
            opt.step()
    assert torch.equal(emb.fixed, fixed_before)
    moved = (emb.trainable.detach() != trainable_before).any(dim=1)
    assert moved.all(), f"{int((~moved).sum())} trainable rows never moved"


def test_state_dict_round_trips():
    source = SplitEmbedding.from_embedding(nn.Embedding(10, 4, padding_idx=1), [7, 2, 5])
    target = SplitEmbedding.from_embedding(nn.Embedding(10, 4, padding_idx=1), [7, 2, 5])
    assert set(source.state_dict()) == {"fixed", "trainable", "original_to_sorted"}
    target.load_state_dict(source.state_dict())
    ids = torch.arange(10)
    assert torch.equal(target(ids), source(ids))


def test_loads_a_plain_embedding_state_dict_in_original_order():
    original = nn.Embedding(10, 4)
    emb = SplitEmbedding.from_embedding(nn.Embedding(10, 4), [7, 2, 5])
    emb.load_state_dict(original.state_dict())
    assert torch.equal(emb.merged_weight(order="original"), original.weight.detach())
    assert torch.equal(emb(torch.arange(10)), original(torch.arange(10)))


def test_save_and_load_trainable_rows_only(tmp_path):
    emb = split()
    path = tmp_path / "trainable.safetensors"
    emb.save_trainable(path)
    with safe_open(str(path), framework="pt") as f:
        assert list(f.keys()) == ["trainable"]
        assert f.metadata()["format"] == "reindex.trainable"
        assert torch.equal(f.get_tensor("trainable"), emb.trainable.detach())
    other = split(seed=1)
    other.fixed.copy_(emb.fixed)
    other.load_trainable(path)
    assert torch.equal(other.merged_weight(), emb.merged_weight())
    assert [p.name for p in tmp_path.iterdir()] == ["trainable.safetensors"]   # no temporary left


def test_load_trainable_refuses_another_shape(tmp_path):
    path = tmp_path / "t.safetensors"
    SplitEmbedding(torch.zeros(3, DIM), torch.zeros(4, DIM)).save_trainable(path)
    with pytest.raises(ReindexError) as e:
        split().load_trainable(path)
    assert str(e.value) == (f"{path}: `trainable` has shape (4, 5), this embedding needs (9, 5) "
                            "(these weights were trained on another run)")


def test_out_of_range_ids_raise_with_position():
    emb = split()
    with pytest.raises(IdOutOfRangeError) as e:
        emb(torch.tensor([[0, 1], [21, 2]]))
    assert str(e.value) == ("at index [1, 0]: sorted id 21 is outside the vocabulary [0, 21) "
                            "(ids must come from the same run/vocabulary as this embedding)")
    assert isinstance(e.value, IndexError) and isinstance(e.value, ReindexError)
    with pytest.raises(IdOutOfRangeError, match="sorted id -1 "):
        emb(torch.tensor([-1]))


def test_ids_must_be_integers():
    with pytest.raises(ReindexError, match="ids must be int32 or int64, got torch.float32"):
        split()(torch.tensor([1.0]))


def test_reset_parameters_touches_trainable_rows_only():
    emb = split(padding_idx=NUM_FIXED + 3)
    fixed, trainable = emb.fixed.clone(), emb.trainable.detach().clone()
    emb.reset_parameters()
    assert torch.equal(emb.fixed, fixed)
    assert not torch.equal(emb.trainable.detach(), trainable)
    assert torch.equal(emb.trainable[3].detach(), torch.zeros(DIM))


def test_extra_repr_names_every_option():
    emb = SplitEmbedding.from_embedding(nn.Embedding(6, 3, padding_idx=0, sparse=True), [1, 4])
    assert repr(emb) == "SplitEmbedding(2 fixed + 4 trainable, 3, padding_idx=2, sparse=True, input='original')"


def test_moves_with_to_dtype():
    emb = SplitEmbedding.from_embedding(nn.Embedding(8, 3), [0, 5]).to(torch.float64)
    assert emb.fixed.dtype == emb.trainable.dtype == torch.float64
    assert emb.original_to_sorted.dtype == torch.int64
    assert emb(torch.tensor([5, 1])).dtype == torch.float64


def test_from_embedding_freezes_any_rows_and_takes_original_ids():
    torch.manual_seed(0)
    base = nn.Embedding(30, 4, padding_idx=6)
    frozen = torch.tensor([3, 17, 6, 29, 0])
    emb = SplitEmbedding.from_embedding(base, frozen)
    ids = torch.randint(0, 30, (5, 7))
    assert torch.equal(emb(ids), base(ids))
    opt = torch.optim.AdamW(emb.parameters(), lr=0.1)
    for _ in range(20):
        opt.zero_grad()
        emb(torch.randint(0, 30, (5, 7))).pow(2).sum().backward()
        opt.step()
    after = emb.merged_weight(order="original")
    assert torch.equal(after[frozen], base.weight.detach()[frozen])
    others = torch.ones(30, dtype=torch.bool)
    others[frozen] = False
    assert (after[others] != base.weight.detach()[others]).any(dim=1).all()
    back = emb.to_embedding()
    assert back.padding_idx == 6 and torch.equal(back.weight.detach(), after)


def test_from_embedding_of_a_prefix_needs_no_lookup_table():
    emb = SplitEmbedding.from_embedding(nn.Embedding(8, 3), torch.arange(3))
    assert emb.original_to_sorted is None and emb.input == "sorted"
    assert set(emb.state_dict()) == {"fixed", "trainable"}


def test_from_embedding_refuses_rows_outside():
    with pytest.raises(ReindexError, match=r"frozen_rows holds a row outside \[0, 8\)"):
        SplitEmbedding.from_embedding(nn.Embedding(8, 3), [2, 8])


@pytest.mark.parametrize("input", ["sorted", "original"])
def test_from_run_hand_written(tmp_path, input):
    run = make_run(tmp_path / "run")
    emb = SplitEmbedding.from_run(tmp_path / "run", input=input)
    assert (emb.num_fixed, emb.padding_idx, emb.input) == (run["num_fixed"], 0, input)
    original = torch.from_numpy(run["original_ids"])
    to_sorted = np.argsort(run["sorted_to_original"])
    ids = original if input == "original" else torch.from_numpy(to_sorted[run["original_ids"]])
    assert torch.equal(emb(ids), torch.from_numpy(run["weight"])[original])
    assert torch.equal(emb.merged_weight(order="original"), torch.from_numpy(run["weight"]))


def test_from_run_built_by_reindex_build_gives_the_vector_file_rows(small, tmp_path):
    from reindex.commands.build import build

    from conftest import VECTORS, VOCAB

    build(vocab=small["vocab"], vectors=small["vectors"], out=tmp_path / "run", pad="<pad>")
    emb = SplitEmbedding.from_run(tmp_path / "run", input="original")
    tokens = (tmp_path / "run" / "vocab.txt").read_text(encoding="utf-8").splitlines()
    fixed_tokens = tokens[1:emb.num_fixed]                     # sorted id 0 is the pad row
    assert sorted(fixed_tokens) == sorted(t for t in VOCAB if t in VECTORS and t != "<pad>")
    for token in fixed_tokens:
        got = emb(torch.tensor([VOCAB.index(token)]))[0]
        assert torch.equal(got, torch.tensor(VECTORS[token]))
    assert torch.equal(emb(torch.tensor([0]))[0], torch.zeros(3))


def test_from_run_refuses_unknown_input(tmp_path):
    make_run(tmp_path / "run")
    with pytest.raises(ReindexError, match="input must be 'sorted' or 'original', got 'both'"):
        SplitEmbedding.from_run(tmp_path / "run", input="both")


@pytest.mark.slow   # inductor compiles C++ kernels: 5-17 s
def test_works_under_torch_compile():
    torch.manual_seed(0)
    eager = tiny_model(split())
    compiled_model = tiny_model(split())
    compiled_model.load_state_dict(eager.state_dict())
    compiled = torch.compile(compiled_model, backend="inductor")
    ids = torch.randint(0, NUM_FIXED + NUM_TRAINABLE, (4, 6))
    torch.testing.assert_close(compiled(ids), eager(ids))
    fixed = compiled_model.embed.fixed.clone()
    opt = torch.optim.AdamW(compiled_model.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        compiled(ids).sum().backward()
        opt.step()
    assert torch.equal(compiled_model.embed.fixed, fixed)
    assert compiled_model.embed.trainable.grad is not None


def test_import_reindex_torch_does_not_import_lightning():
    code = "import sys, reindex.torch; assert 'lightning' not in sys.modules, 'lightning imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("sparse", [False, True])
def test_rows_moved_apart_give_the_same_values_and_gradients(sparse):
    packed, apart = split(sparse=sparse, padding_idx=NUM_FIXED + 2), split(sparse=sparse, padding_idx=NUM_FIXED + 2)
    apart.trainable.data = apart.trainable.data.clone()     # no longer one block: the slower path
    assert packed.block() is not None and apart.block() is None
    ids = torch.randint(0, NUM_FIXED + NUM_TRAINABLE, (5, 7))
    upstream = torch.randn(5, 7, DIM)
    (packed(ids) * upstream).sum().backward()
    (apart(ids) * upstream).sum().backward()
    assert torch.equal(packed(ids), apart(ids))
    torch.testing.assert_close(packed.trainable.grad.to_dense(), apart.trainable.grad.to_dense(), rtol=0, atol=1e-6)


def test_to_and_load_state_dict_assign_keep_one_block():
    emb = split().to(torch.float64)
    assert emb.block() is not None and emb.block().dtype == torch.float64
    other = split(seed=3)
    other.load_state_dict(split().state_dict(), assign=True)
    assert other.block() is not None
    assert torch.equal(other.merged_weight(), split().merged_weight())


def test_deepcopy_keeps_one_block_and_its_own_rows():
    import copy

    emb = split()
    twin = copy.deepcopy(emb)
    assert twin.block() is not None and twin.fixed.data_ptr() != emb.fixed.data_ptr()
    assert torch.equal(twin.merged_weight(), emb.merged_weight())


def test_fixed_only_and_trainable_only_splits():
    weight = torch.randn(4, 3)
    ids = torch.tensor([3, 0, 2])
    for emb in (SplitEmbedding(weight, torch.zeros(0, 3)), SplitEmbedding(torch.zeros(0, 3), weight)):
        out = emb(ids)
        assert torch.equal(out, weight[ids])
        out.sum().backward()
        assert emb.trainable.grad.shape == emb.trainable.shape


@pytest.mark.parametrize("bad", [-1, 8])
def test_original_ids_out_of_range_fail_instead_of_wrapping(bad):
    emb = SplitEmbedding.from_embedding(nn.Embedding(8, 3), [5, 1])
    with pytest.raises(IdOutOfRangeError, match=rf"at index 2: original id {bad} is outside the vocabulary \[0, 8\)"):
        emb(torch.tensor([0, 1, bad]))
