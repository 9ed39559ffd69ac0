"""SplitLinear: logits over fixed and trainable rows, gradients for the trainable rows only."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from reindex.torch import SplitEmbedding, SplitLinear

V, D = 12, 5
MIDDLE = [3, 4, 7, 10]   # trainable rows in the middle of the vocabulary, not a suffix


def frozen_except(trainable: list[int], vocab_size: int = V) -> list[int]:
    return [i for i in range(vocab_size) if i not in trainable]


@pytest.mark.parametrize("trainable", [MIDDLE, [9, 10, 11]])
@pytest.mark.parametrize("bias", [False, True])
def test_logits_and_gradients_match_nn_linear(trainable, bias):
    torch.manual_seed(0)
    linear = nn.Linear(D, V, bias=bias, dtype=torch.float64)
    head = SplitLinear.from_linear(linear, frozen_except(trainable))
    x = torch.randn(3, 4, D, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    target = torch.randn(3, 4, V, dtype=torch.float64)
    logits, reference = head(x), linear(x_ref)
    assert torch.equal(logits, reference)          # the model's own id order, bit for bit
    (logits * target).sum().backward()
    (reference * target).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-12, atol=1e-12)
    sorted_trainable = sorted(trainable)
    torch.testing.assert_close(head.rows.trainable.grad, linear.weight.grad[sorted_trainable], rtol=1e-12, atol=1e-12)
    if bias:
        torch.testing.assert_close(head.bias_trainable.grad, linear.bias.grad[sorted_trainable], rtol=1e-12, atol=1e-12)
    assert [name for name, _ in head.named_parameters()] == ["bias_trainable", "_own_rows.trainable"][1 - bias:]


def test_weight_gradient_never_touches_the_fixed_columns():
    # The backward reads only the trainable columns of the logits' gradient: a NaN in a fixed
    # column must not reach the trainable rows' gradient.
    head = SplitLinear.from_linear(nn.Linear(D, V, bias=False), frozen_except([11]))
    x = torch.randn(2, D)
    logits = head(x)
    grad = torch.zeros_like(logits)
    grad[:, :11] = float("nan")
    grad[:, 11] = 1.0
    (grad_x_free,) = torch.autograd.grad(logits, head.rows.trainable, grad)
    torch.testing.assert_close(grad_x_free, x.sum(0, keepdim=True))


@pytest.mark.parametrize("tied", [False, True])
def test_old_rows_bit_identical_after_adamw_with_weight_decay(tied):
    torch.manual_seed(1)
    embedding, linear = nn.Embedding(V, D), nn.Linear(D, V, bias=not tied)
    if tied:
        linear.weight = embedding.weight
    old_embedding, old_head = embedding.weight.detach().clone(), linear.weight.detach().clone()
    split = SplitEmbedding.from_embedding(embedding, frozen_except(MIDDLE))
    head = SplitLinear.tied_to(split) if tied else SplitLinear.from_linear(linear, frozen_except(MIDDLE))
    model = nn.ModuleDict({"embed": split, "head": head})
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.1)
    for _ in range(50):
        ids = torch.randint(0, V, (4, 6))
        loss = nn.functional.cross_entropy(head(split(ids)).reshape(-1, V), ids.roll(1).reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    frozen = frozen_except(MIDDLE)
    new_embedding, new_head = split.merged_weight(order="original"), head.merged_weight()
    assert torch.equal(new_embedding[frozen], old_embedding[frozen])
    assert torch.equal(new_head[frozen], old_head[frozen])
    assert (new_embedding[MIDDLE] != old_embedding[MIDDLE]).all(dim=1).all()
    assert (new_head[MIDDLE] != old_head[MIDDLE]).all(dim=1).all()
    # One trainable Parameter per distinct weight; tied rows are the very same storage.
    trainable_params = [p for group in optimizer.param_groups for p in group["params"]]
    assert len(trainable_params) == (1 if tied else 3)
    assert all(p.shape[0] == len(MIDDLE) for p in trainable_params)
    assert set(optimizer.state) == set(trainable_params)
    if tied:
        assert head.rows is split and head.rows.trainable.data_ptr() == split.trainable.data_ptr()
        assert torch.equal(new_embedding, new_head)


def test_to_linear_gives_back_the_merged_layer_in_the_models_order():
    linear = nn.Linear(D, V)
    head = SplitLinear.from_linear(linear, frozen_except(MIDDLE))
    with torch.no_grad():
        head.rows.trainable.add_(1.0)
        head.bias_trainable.add_(1.0)
    plain = head.to_linear()
    x = torch.randn(3, D)
    assert torch.equal(plain(x), head(x))
    assert torch.equal(plain.weight[MIDDLE], linear.weight.detach()[MIDDLE] + 1.0)
    assert torch.equal(plain.bias[frozen_except(MIDDLE)], linear.bias.detach()[frozen_except(MIDDLE)])


def test_no_grad_forward_matches_and_a_bad_bias_is_refused():
    linear = nn.Linear(D, V)
    head = SplitLinear.from_linear(linear, frozen_except(MIDDLE))
    x = torch.randn(2, D)
    with torch.no_grad():
        assert torch.equal(head(x), linear(x))
    with pytest.raises(ValueError, match=r"bias has shape \[3\], the head has 12 rows"):
        SplitLinear(head.rows, bias=torch.zeros(3))


def test_rows_kept_apart_give_the_same_logits_and_gradients():
    # FSDP2 gathers `trainable` into a buffer of its own: the head then computes two products.
    torch.manual_seed(2)
    linear = nn.Linear(D, V, dtype=torch.float64)
    joined = SplitLinear.from_linear(linear, frozen_except(MIDDLE))
    apart = SplitLinear.from_linear(linear, frozen_except(MIDDLE))
    apart.rows.trainable = nn.Parameter(apart.rows.trainable.detach().clone())
    assert apart.rows.block() is None and joined.rows.block() is not None
    x = torch.randn(3, D, dtype=torch.float64)
    target = torch.randn(3, V, dtype=torch.float64)
    (joined(x) * target).sum().backward()
    (apart(x) * target).sum().backward()
    torch.testing.assert_close(apart(x), joined(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(apart.rows.trainable.grad, joined.rows.trainable.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(apart.bias_trainable.grad, joined.bias_trainable.grad, rtol=1e-12, atol=1e-12)


def test_tied_head_weight_is_the_embeddings_and_bfloat16_works():
    split = SplitEmbedding.from_embedding(nn.Embedding(V, D), frozen_except(MIDDLE))
    head = SplitLinear.tied_to(split)
    weight = split.weight
    assert torch.equal(head.weight, weight) and weight.shape == (V, D)
    state: dict = {}   # within one state dict, the tied head's weight is the embedding's very tensor
    from reindex.torch._merged import state_weight
    assert state_weight(head.rows, state) is state_weight(split, state)
    assert list(head.state_dict()) == []                       # the rows are saved where the embedding lives
    model = nn.Sequential(split, head).to(torch.bfloat16)
    assert model(torch.tensor([[3, 4]])).dtype == torch.bfloat16 and head.rows.trainable.dtype == torch.bfloat16
