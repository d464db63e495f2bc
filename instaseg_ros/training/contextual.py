"""The contextual loss of YOLACT-SE (seed 000) and the embedding head it trains.

The seed turns the mask branch into a pixel-embedding branch trained with non-parametric
instance-level discrimination (Wu et al., 2018) plus a cosine term between adjacent pixels
of the same instance. Here the embedding head is a small convolutional branch on top of
the prototype maps, so its gradient shapes the prototypes that the masks are built from;
it is used only in training and is not part of the saved inference model.

Formula. Let ``e_p`` be the L2-normalised embedding of pixel ``p`` (seed step a) and ``y_p``
its instance id at embedding resolution (0 = background, -1 = ignored: crowd or pixels
claimed by two instances). For a sample ``S`` of pixels of one image:

* similarity ``s_pq = clamp(e_p . e_q, -1, 1)`` (steps b, c), cosine distance ``d_pq = 1 - s_pq``;
* Gaussian kernel ``k_pq = exp(-d_pq^2 / (2 sigma^2))`` (step d), ``k_pp = 0``;
* instance discrimination (soft nearest neighbour, non-parametric: the "classes" are the
  instances of the image, each represented by its own pixels, so the loss also sees the
  context, i.e. the other objects and the background)::

      L_disc = mean_p  -log( sum_{q: y_q = y_p} k_pq / sum_{q} k_pq )      (step e, f)

  over pixels ``p`` with at least one partner of the same id;
* adjacency (the seed's cosine distance between neighbouring pixels of one instance)::

      L_adj = mean over 4-neighbour pairs (p, q) with y_p = y_q > 0 of (1 - s_pq)

``L_context = L_disc + adjacency_weight * L_adj``; the trainer adds ``context_weight * L_context``
to the YOLACT loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class EmbeddingHead(nn.Module):
    """Pixel embeddings from a feature map: conv3x3-ReLU-conv1x1.

    ``forward(x [B, C, h, w]) -> [B, dim, h, w]`` (not normalised; the loss normalises).
    """

    def __init__(self, in_channels: int, dim: int = 16, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, dim, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def gaussian_kernel(f1: Tensor, f2: Tensor, sigma: float = 0.5) -> Tensor:
    """Seed steps a-d: ``[N, E]`` x ``[M, E]`` features -> ``[N, M]`` kernel
    ``exp(-(1 - clamp(cos, -1, 1))^2 / (2 sigma^2))`` in (0, 1]."""
    if f1.shape[-1] != f2.shape[-1]:
        raise ValueError(f"feature sizes differ: {tuple(f1.shape)} vs {tuple(f2.shape)}")
    a = F.normalize(f1.float(), dim=-1)
    b = F.normalize(f2.float(), dim=-1)
    sim = (a @ b.t()).clamp(-1.0, 1.0)
    dist = 1.0 - sim
    return torch.exp(-dist.pow(2) / (2.0 * sigma**2))


def instance_id_map(masks: Tensor, size: tuple[int, int], iscrowd: Tensor | None = None) -> Tensor:
    """[N, H, W] binary instance masks -> [h, w] int64 ids at ``size``.

    0 = background, ``i + 1`` = instance ``i``, -1 = ignored (claimed by several instances,
    or covered by a crowd region).
    """
    h, w = size
    out = torch.zeros(h, w, dtype=torch.long, device=masks.device)
    if len(masks) == 0:
        return out
    small = F.interpolate(masks[None].float(), size=(h, w), mode="bilinear", align_corners=False)[0] > 0.5
    if iscrowd is None:
        iscrowd = torch.zeros(len(masks), dtype=torch.bool)
    crowd = iscrowd.bool().to(masks.device)
    ids = torch.arange(1, len(masks) + 1, device=masks.device)
    normal = small & ~crowd[:, None, None]
    count = normal.sum(dim=0)
    out = (normal.long() * ids[:, None, None]).sum(dim=0)
    out[count > 1] = -1
    if crowd.any():
        out[small[crowd].any(dim=0)] = -1
    return out


def discrimination_loss(emb: Tensor, ids: Tensor, sigma: float = 0.5) -> Tensor:
    """``L_disc`` for one sample of pixels: ``emb [N, E]``, ``ids [N]`` (>= 0). Returns a scalar
    (0 with no valid pair)."""
    k = gaussian_kernel(emb, emb, sigma)
    eye = torch.eye(len(ids), dtype=torch.bool, device=emb.device)
    k = k.masked_fill(eye, 0.0)
    same = (ids[:, None] == ids[None, :]) & ~eye
    has_pos = same.any(dim=1)
    if not has_pos.any():
        return emb.sum() * 0.0
    num = (k * same).sum(dim=1)
    den = k.sum(dim=1)
    loss = -torch.log((num + 1e-8) / (den + 1e-8))
    return loss[has_pos].mean()


def adjacency_loss(emb: Tensor, ids: Tensor) -> Tensor:
    """``L_adj`` for one image: ``emb [E, h, w]``, ``ids [h, w]``; mean ``1 - cos`` over
    horizontally and vertically adjacent pixels of the same instance (0 if none)."""
    e = F.normalize(emb.float(), dim=0)
    terms = []
    for dy, dx in ((0, 1), (1, 0)):
        a = e[:, : e.shape[1] - dy, : e.shape[2] - dx]
        b = e[:, dy:, dx:]
        ia = ids[: ids.shape[0] - dy, : ids.shape[1] - dx]
        ib = ids[dy:, dx:]
        valid = (ia == ib) & (ia > 0)
        if valid.any():
            terms.append((1.0 - (a * b).sum(dim=0).clamp(-1.0, 1.0))[valid])
    if not terms:
        return emb.sum() * 0.0
    return torch.cat(terms).mean()


def contextual_loss(
    emb: Tensor,
    ids: Tensor,
    sigma: float = 0.5,
    adjacency_weight: float = 1.0,
    max_pixels: int = 512,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """The contextual loss of a batch (see the module docstring for the formula).

    Args:
        emb: [B, E, h, w] embeddings.
        ids: [B, h, w] int64 instance ids (:func:`instance_id_map`).
        sigma: width of the Gaussian kernel on cosine distance.
        adjacency_weight: weight of ``L_adj``.
        max_pixels: pixels sampled per image for ``L_disc`` (half on objects when possible),
            which bounds the ``O(n^2)`` kernel.
        generator: RNG for the pixel sample.

    Returns:
        dict with ``disc``, ``adj`` and ``total`` (= disc + adjacency_weight * adj), batch means.
    """
    if emb.dim() != 4 or ids.shape != (emb.shape[0], *emb.shape[2:]):
        raise ValueError(
            f"need emb [B, E, h, w] and ids [B, h, w]; got {tuple(emb.shape)}, {tuple(ids.shape)}"
        )
    b = emb.shape[0]
    disc, adj = [], []
    for i in range(b):
        flat = emb[i].flatten(1).t()  # [h*w, E]
        fid = ids[i].flatten()
        fg = torch.nonzero(fid > 0).flatten()
        bg = torch.nonzero(fid == 0).flatten()
        n_fg = min(len(fg), max(max_pixels // 2, max_pixels - len(bg)))
        n_bg = min(len(bg), max_pixels - n_fg)
        pick = torch.cat([_sample(fg, n_fg, generator), _sample(bg, n_bg, generator)])
        disc.append(discrimination_loss(flat[pick], fid[pick], sigma))
        adj.append(adjacency_loss(emb[i], ids[i]))
    d = torch.stack(disc).mean()
    a = torch.stack(adj).mean()
    return {"disc": d, "adj": a, "total": d + adjacency_weight * a}


def _sample(idx: Tensor, n: int, generator: torch.Generator | None) -> Tensor:
    if n >= len(idx):
        return idx
    perm = torch.randperm(len(idx), generator=generator)[:n]
    return idx[perm.to(idx.device)]
