"""Masked operations on padded batches: the one home of every mask-aware helper in symgen.

A padded batch of ``b`` graphs with ``n`` node slots carries a *prefix* node mask
``mask[b, n]`` (real nodes first). Every layer (state, groups, canonicalizers, priors,
generators, networks) takes its masked means, centring, pair masks and node/edge gathers from
here, so each rule is written once:

* node reductions count real nodes only, ``Σ_i m_i v_i / Σ_i m_i``;
* pairs are ordered pairs ``(j, k)`` of *distinct* real nodes unless stated otherwise;
* symmetric edge tensors are zero on the diagonal and on every pair touching padding.

This module imports only torch and the shape aliases, so every other module may use it.
"""

import torch
from jaxtyping import Bool, Float, Shaped
from torch import Tensor

from symgen.shapes import EdgeFeatures, NodeMask, PerGraphInt, Permutations

__all__ = [
    "prefix_mask",
    "node_weights",
    "pair_mask",
    "upper_pair_mask",
    "masked_mean",
    "masked_center",
    "symmetrize_edges",
    "upper_to_symmetric",
    "gather_nodes",
    "gather_edges",
    "per_graph_mean",
]


def prefix_mask(num_nodes: PerGraphInt, max_nodes: int) -> Bool[Tensor, "b {max_nodes}"]:
    """Node mask with the first ``num_nodes[i]`` slots of row ``i`` set.

    ``mask[i, j] = j < num_nodes[i]``.

    Examples:
        >>> prefix_mask(torch.tensor([1, 3]), 3)
        tensor([[ True, False, False],
                [ True,  True,  True]])
    """
    return torch.arange(max_nodes, device=num_nodes.device)[None, :] < num_nodes[:, None]


def node_weights(mask: NodeMask, dtype: torch.dtype) -> Float[Tensor, "b n 1"]:
    """The mask as 0/1 weights broadcastable over a feature axis: ``mask[..., None]``.

    Examples:
        >>> node_weights(torch.tensor([[True, False]]), torch.float32).shape
        torch.Size([1, 2, 1])
    """
    return mask[..., None].to(dtype)


def pair_mask(mask: NodeMask, *, self_loops: bool = False) -> Bool[Tensor, "b n n"]:
    """``True`` on pairs ``(j, k)`` of real nodes, with ``j != k`` unless ``self_loops``.

    Examples:
        >>> pair_mask(torch.tensor([[True, True, False]]))[0].int().tolist()
        [[0, 1, 0], [1, 0, 0], [0, 0, 0]]
    """
    pm = mask[:, :, None] & mask[:, None, :]
    if not self_loops:
        pm = pm & ~torch.eye(mask.shape[1], dtype=torch.bool, device=mask.device)
    return pm


def upper_pair_mask(mask: NodeMask) -> Bool[Tensor, "b n n"]:
    """``True`` on unordered pairs of distinct real nodes, stored once as ``j < k``.

    Examples:
        >>> upper_pair_mask(torch.tensor([[True, True, True]]))[0].int().tolist()
        [[0, 1, 1], [0, 0, 1], [0, 0, 0]]
    """
    n = mask.shape[1]
    upper = torch.triu(torch.ones(n, n, dtype=torch.bool, device=mask.device), 1)
    return pair_mask(mask) & upper


def masked_mean(values: Float[Tensor, "b n d"], mask: NodeMask) -> Float[Tensor, "b d"]:
    """Mean over the real nodes of each graph: ``Σ_j m_j v_j / Σ_j m_j`` (0 for no real node).

    Examples:
        >>> mask = torch.tensor([[True, True, False]])
        >>> masked_mean(torch.tensor([[[1.0], [3.0], [100.0]]]), mask)
        tensor([[2.]])
    """
    m = node_weights(mask, values.dtype)
    return (values * m).sum(1) / m.sum(1).clamp_min(1.0)


def masked_center(values: Float[Tensor, "b n d"], mask: NodeMask) -> Float[Tensor, "b n d"]:
    """Subtract the masked mean from the real nodes and zero the padding (zero centre of mass).

    ``v'_i = m_i (v_i - (1/k) Σ_{j real} v_j)``.

    Examples:
        >>> p = torch.tensor([[[1., 0, 0], [3., 0, 0], [9., 9, 9]]])
        >>> masked_center(p, torch.tensor([[True, True, False]]))[0, :, 0].tolist()
        [-1.0, 1.0, 0.0]
    """
    m = node_weights(mask, values.dtype)
    k = m.sum(1, keepdim=True).clamp_min(1.0)
    centroid = (values * m).sum(1, keepdim=True) / k
    return (values - centroid) * m


def symmetrize_edges(edge: EdgeFeatures, mask: NodeMask) -> EdgeFeatures:
    """``(E + Eᵀ) / 2`` over the two node axes, zero on the diagonal and on padding pairs.

    Examples:
        >>> e = torch.arange(4.0).reshape(1, 2, 2, 1)
        >>> symmetrize_edges(e, torch.ones(1, 2, dtype=torch.bool))[0, :, :, 0].tolist()
        [[0.0, 1.5], [1.5, 0.0]]
    """
    sym = 0.5 * (edge + edge.transpose(1, 2))
    return sym * pair_mask(mask)[..., None].to(edge.dtype)


def upper_to_symmetric(values: EdgeFeatures, mask: NodeMask) -> EdgeFeatures:
    """Copy the strict upper triangle onto the lower one; zero diagonal and padding.

    One value per unordered pair: ``out[j, k] = out[k, j] = values[min(j,k), max(j,k)]``.

    Examples:
        >>> e = torch.arange(4.0).reshape(1, 2, 2, 1)
        >>> upper_to_symmetric(e, torch.ones(1, 2, dtype=torch.bool))[0, :, :, 0].tolist()
        [[0.0, 1.0], [1.0, 0.0]]
    """
    n = mask.shape[1]
    upper = torch.triu(torch.ones(n, n, dtype=torch.bool, device=mask.device), 1)
    up = values * upper[None, :, :, None].to(values.dtype)
    full = up + up.transpose(1, 2)
    return full * pair_mask(mask)[..., None].to(values.dtype)


def gather_nodes(
    index: Permutations, values: Shaped[Tensor, "b n *rest"]
) -> Shaped[Tensor, "b n *rest"]:
    """``out[i, j] = values[i, index[i, j]]`` along the node axis (axis 1).

    Examples:
        >>> gather_nodes(torch.tensor([[1, 0]]), torch.tensor([[[1.0], [2.0]]]))[0, :, 0].tolist()
        [2.0, 1.0]
    """
    idx = index.reshape(index.shape + (1,) * (values.ndim - 2)).expand_as(values)
    return torch.gather(values, 1, idx)


def gather_edges(index: Permutations, edge: EdgeFeatures) -> EdgeFeatures:
    """``out[i, j, k] = edge[i, index[i, j], index[i, k]]`` on both node axes.

    Examples:
        >>> e = torch.arange(4.0).reshape(1, 2, 2, 1)
        >>> gather_edges(torch.tensor([[1, 0]]), e)[0, :, :, 0].tolist()
        [[3.0, 2.0], [1.0, 0.0]]
    """
    rows = gather_nodes(index, edge)
    idx = index[:, None, :, None].expand_as(rows)
    return torch.gather(rows, 2, idx)


def per_graph_mean(values: Tensor, weight: Tensor) -> Float[Tensor, ""]:
    """``Σ values / Σ weight`` per graph (over all axes but the first), averaged over graphs.

    Graphs with zero total weight are left out; with none left the result is 0 (with the
    graph's gradient path kept). This is how every masked loss in symgen averages: per graph
    first, so that large graphs do not outweigh small ones.

    Examples:
        >>> per_graph_mean(torch.tensor([[2.0, 4.0], [1.0, 0.0]]),
        ...                torch.tensor([[1.0, 1.0], [1.0, 0.0]]))
        tensor(2.)
    """
    dims = tuple(range(1, values.ndim))
    num = values.sum(dims)
    den = weight.sum(dims)
    ok = den > 0
    if not bool(ok.any()):
        return values.sum() * 0.0
    return (num[ok] / den[ok]).mean()
