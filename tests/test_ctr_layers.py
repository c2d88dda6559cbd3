import itertools

import pytest
import torch

from ctr_models.layers import (FMInteraction, SimilarityHeads, SimTierHistogram, TargetAttention, cosine_similarity,
                               length_mask)
from ctr_models.serving_graph import similarity_heads


@pytest.mark.parametrize("act,norm", [("dice", "none"), ("prelu", "softmax")])
def test_decomposed_attention_matches_naive(act, norm):
    torch.manual_seed(0)
    att = TargetAttention(dim=12, hidden=(16, 8), act=act, normalization=norm).double().eval()
    q = torch.randn(5, 12, dtype=torch.float64, requires_grad=True)
    k = torch.randn(5, 7, 12, dtype=torch.float64, requires_grad=True)
    mask = length_mask(torch.tensor([0, 1, 3, 7, 9]), 7)

    fast_first = att.decomposed_first_layer(q, k)
    naive_first = att.naive_first_layer(q, k)
    torch.testing.assert_close(fast_first, naive_first, rtol=1e-10, atol=1e-10)

    fast = att(q, k, mask)
    naive = att(q, k, mask, naive=True)
    torch.testing.assert_close(fast, naive, rtol=1e-10, atol=1e-10)
    # the gradients agree as well, so training with either form is the same
    g_fast = torch.autograd.grad(fast.sum(), [q, k, att.first.weight])
    g_naive = torch.autograd.grad(naive.sum(), [q, k, att.first.weight])
    for a, b in zip(g_fast, g_naive):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    assert torch.all(fast[0] == 0), "an empty history must pool to zeros"


def test_attention_ignores_padding_positions():
    torch.manual_seed(0)
    att = TargetAttention(dim=4, hidden=(8,), act="prelu").eval()
    q, k = torch.randn(2, 4), torch.randn(2, 5, 4)
    mask = length_mask(torch.tensor([2, 2]), 5)
    k2 = k.clone()
    k2[:, 2:] = 1e3  # garbage beyond hist_len must not matter
    torch.testing.assert_close(att(q, k, mask), att(q, k2, mask))


def test_fm_matches_pairwise_sum():
    x = torch.randn(3, 5, 4)
    brute = sum((x[:, i] * x[:, j]).sum(1) for i, j in itertools.combinations(range(5), 2))
    torch.testing.assert_close(FMInteraction()(x), brute)


def test_simtier_histogram_by_hand():
    sim = torch.tensor([[0.95, 0.05, -0.95, 0.0], [0.3, 0.0, 0.0, 0.0]])
    mask = length_mask(torch.tensor([3, 0]), 4)
    h = SimTierHistogram(n_bins=4)(sim * mask, mask)  # tiers [-1,-.5) [-.5,0) [0,.5) [.5,1]
    torch.testing.assert_close(h[0], torch.tensor([1 / 3, 0, 1 / 3, 1 / 3, (0.95 + 0.05 - 0.95) / 3, 0.95]))
    torch.testing.assert_close(h[1], torch.zeros(6))  # empty history


def test_cosine_similarity_zero_vectors_and_padding():
    item = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    hist = torch.tensor([[[2.0, 0.0], [0.0, 3.0]], [[1.0, 1.0], [1.0, 0.0]]])
    mask = length_mask(torch.tensor([1, 2]), 2)
    sim = cosine_similarity(item, hist, mask)
    torch.testing.assert_close(sim, torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    assert torch.isfinite(sim).all()


def test_similarity_heads_by_hand():
    """Two heads that each read one coordinate: per head the mean and max cosine over the valid
    history; a zero MOON vector has cosine 0; an empty history gives zeros."""
    heads = SimilarityHeads(moon_dim=2, heads=2, head_dim=1)
    with torch.no_grad():
        heads.proj.weight.copy_(torch.eye(2))
    item = torch.tensor([[1.0, -2.0], [0.0, 0.0], [3.0, 1.0]])
    hist = torch.tensor([[[2.0, 1.0], [-1.0, -1.0], [5.0, 5.0]]]).expand(3, -1, -1)
    mask = length_mask(torch.tensor([2, 2, 0]), 3)
    out = heads(item, hist, mask)
    # head 0 reads sign(x0): target +1 vs history +1, -1 -> mean 0, max 1; head 1: -1 vs +1, -1 -> 0, 1
    torch.testing.assert_close(out[0], torch.tensor([0.0, 0.0, 1.0, 1.0]))
    torch.testing.assert_close(out[1], torch.zeros(4))  # unknown target
    torch.testing.assert_close(out[2], torch.zeros(4))  # empty history


@pytest.mark.parametrize("n_valid", [0, 1, 4])
def test_similarity_heads_shared_and_graph_forms_agree(n_valid):
    """The shared-history path and the serving graph's reshape-free form equal the general path."""
    torch.manual_seed(0)
    heads = SimilarityHeads(moon_dim=6, heads=3, head_dim=4).double()
    item, hist = torch.randn(5, 6, dtype=torch.float64), torch.randn(1, 4, 6, dtype=torch.float64)
    mask = length_mask(torch.tensor([n_valid]), 4)
    general = heads(item, hist.expand(5, -1, -1), mask.expand(5, -1))
    torch.testing.assert_close(heads(item, hist, mask), general)
    graph = similarity_heads(heads, heads.unit(item), heads.unit(hist[0, :n_valid]))
    torch.testing.assert_close(graph, general)


@pytest.mark.parametrize("norm", ["none", "softmax"])
@pytest.mark.parametrize("n_valid", [0, 1, 5, 7])
def test_shared_history_attention_matches_repeated_history(norm, n_valid):
    """keys of batch size 1 (one user's history for every candidate) take the shared path; it
    must equal the general path over the history repeated per target, gradients included."""
    torch.manual_seed(0)
    att = TargetAttention(dim=12, hidden=(16, 8), act="dice", normalization=norm).double()
    q = torch.randn(6, 12, dtype=torch.float64, requires_grad=True)
    k = torch.randn(1, 7, 12, dtype=torch.float64, requires_grad=True)
    mask = length_mask(torch.tensor([n_valid]), 7)
    bias = torch.randn(6, 7, dtype=torch.float64)
    for train in (True, False):  # training mode: Dice's batch statistics see the same positions
        att.train(train)
        shared = att(q, k, mask, bias)
        repeated = att(q, k.expand(6, -1, -1).contiguous(), mask.expand(6, -1).contiguous(), bias)
        torch.testing.assert_close(shared, repeated, rtol=1e-10, atol=1e-10)
    g_shared = torch.autograd.grad(shared.sum(), [q, k, att.first.weight])
    g_repeated = torch.autograd.grad(repeated.sum(), [q, k, att.first.weight])
    for a, b in zip(g_shared, g_repeated):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(att.shared_first_layer(q, k[0]), att.decomposed_first_layer(q, k.expand(6, -1, -1)))
