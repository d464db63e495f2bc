"""Contextual loss (seed 000) on hand-made embeddings: values, shapes, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from instaseg_ros.training.contextual import (
    EmbeddingHead,
    adjacency_loss,
    contextual_loss,
    discrimination_loss,
    gaussian_kernel,
    instance_id_map,
)


def test_gaussian_kernel_values():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    k = gaussian_kernel(a[:1], a, sigma=0.5)
    # cosine distance 0, 1, 2 -> exp(-d^2 / 0.5)
    expected = torch.tensor([[1.0, math.exp(-2.0), math.exp(-8.0)]])
    assert torch.allclose(k, expected, atol=1e-6)
    # scale invariance (L2 normalisation first)
    assert torch.allclose(gaussian_kernel(3 * a, a), gaussian_kernel(a, a))
    with pytest.raises(ValueError, match="feature sizes"):
        gaussian_kernel(a, torch.zeros(2, 3))


def test_discrimination_loss_hand_computed():
    e1, e2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    emb = torch.stack([e1, e1, e2, e2])
    ids = torch.tensor([1, 1, 2, 2])
    # each pixel: same-instance kernel 1, two others exp(-2)
    expected = math.log(1 + 2 * math.exp(-2.0))
    assert torch.allclose(discrimination_loss(emb, ids, 0.5), torch.tensor(expected), atol=1e-5)
    mixed = torch.stack([e1, e2, e1, e2])
    assert discrimination_loss(mixed, ids, 0.5) > discrimination_loss(emb, ids, 0.5) + 1.0
    # no pixel has a partner of the same id: zero, still differentiable
    lonely = discrimination_loss(emb[:2].clone().requires_grad_(), torch.tensor([1, 2]))
    assert lonely == 0
    lonely.backward()


def test_adjacency_loss_values():
    ids = torch.tensor([[1, 1], [0, 0]])
    emb = torch.zeros(2, 2, 2)
    emb[0, 0, 0] = 1.0  # pixel (0,0) along x
    emb[1, 0, 1] = 1.0  # pixel (0,1) along y: orthogonal neighbour of the same instance
    emb[:, 1, :] = torch.tensor([1.0, 0.0])[:, None]
    assert torch.allclose(adjacency_loss(emb, ids), torch.tensor(1.0))
    emb[:, 0, 1] = emb[:, 0, 0]
    assert torch.allclose(adjacency_loss(emb, ids), torch.tensor(0.0), atol=1e-6)
    assert adjacency_loss(emb, torch.zeros(2, 2, dtype=torch.long)) == 0


def test_instance_id_map_overlap_and_crowd_ignored():
    masks = torch.zeros(3, 8, 8)
    masks[0, :4, :4] = 1
    masks[1, 2:6, 2:6] = 1
    masks[2, 6:, 6:] = 1
    ids = instance_id_map(masks, (8, 8), iscrowd=torch.tensor([0, 0, 1]))
    assert ids[0, 0] == 1 and ids[5, 5] == 2 and ids[3, 3] == -1 and ids[7, 7] == -1 and ids[0, 7] == 0
    assert instance_id_map(masks[:0], (4, 4)).abs().sum() == 0
    assert instance_id_map(masks, (4, 4)).shape == (4, 4)


def test_contextual_loss_shapes_gradients_and_separation():
    g = torch.Generator().manual_seed(0)
    head = EmbeddingHead(in_channels=4, dim=8, hidden=16)
    feats = torch.randn(2, 4, 12, 12, generator=g, requires_grad=True)
    emb = head(feats)
    assert emb.shape == (2, 8, 12, 12)
    ids = torch.zeros(2, 12, 12, dtype=torch.long)
    ids[:, 2:6, 2:6] = 1
    ids[:, 6:11, 5:10] = 2
    ids[1, 0, 0] = -1
    out = contextual_loss(emb, ids, max_pixels=64, generator=g)
    assert set(out) == {"disc", "adj", "total"} and out["total"].dim() == 0
    out["total"].backward()
    assert feats.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
    # embeddings equal to one-hot instance codes score far better than random ones
    onehot = torch.nn.functional.one_hot(ids.clamp(min=0), 8).permute(0, 3, 1, 2).float()
    good = contextual_loss(onehot, ids, max_pixels=64, generator=g)
    assert good["adj"] < 1e-6 and good["total"] < 0.5 * float(out["total"].detach())
    with pytest.raises(ValueError, match="ids"):
        contextual_loss(emb, ids[0])


def test_contextual_loss_trains_an_embedding_head():
    torch.manual_seed(0)
    head = EmbeddingHead(in_channels=3, dim=8, hidden=16)
    ids = torch.zeros(1, 10, 10, dtype=torch.long)
    ids[0, 1:5, 1:5] = 1
    ids[0, 5:9, 4:9] = 2
    # the input tells instances apart only through colour: the head must learn to use it
    x = torch.zeros(1, 3, 10, 10)
    for k in range(3):
        x[0, k][ids[0] == k] = 1.0
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = contextual_loss(head(x), ids, max_pixels=100)["total"]
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]
