"""Building blocks shared by the networks: time/rank embeddings, distance bases, masked ops.

Everything here is mask-aware: a padded batch of ``b`` graphs with ``n`` node slots carries a
prefix mask ``mask[b, n]`` and helpers never let padding slots influence real ones.
"""

import math
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor, nn

from symgen.conditioning import Context
from symgen.masking import pair_mask
from symgen.shapes import EdgeFeatures, NodeFeatures, NodeMask, PerGraph, Permutations, Positions
from symgen.state import GeometricGraph

__all__ = [
    "sinusoidal_embedding",
    "TimeEmbedding",
    "ContextEmbedding",
    "check_context_input",
    "GaussianBasis",
    "real_pairs",
    "RealPairs",
    "symmetrize_pairs",
    "zero_padding_inputs",
    "check_inputs",
    "check_estimate",
    "make_output",
    "mlp",
    "rank_positions",
]


def sinusoidal_embedding(
    x: Float[Tensor, "*batch"], dim: int, max_period: float = 10_000.0
) -> Float[Tensor, "*batch {dim}"]:
    """Transformer-style sinusoidal features of a real-valued input.

    ``emb(x) = [sin(x ω_0), ..., sin(x ω_{k-1}), cos(x ω_0), ..., cos(x ω_{k-1})]`` with
    ``k = dim // 2`` and ``ω_i = max_period^(-i / k)``; an odd ``dim`` gets one extra zero column.

    Examples:
        >>> sinusoidal_embedding(torch.tensor([0.0, 1.0]), 4).shape
        torch.Size([2, 4])
    """
    if dim < 1:
        raise ValueError(f"embedding dim must be >= 1, got {dim}")
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, device=x.device, dtype=x.dtype) / max(half, 1)
    )
    angles = x[..., None] * freqs
    emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[..., :1])], dim=-1)
    return emb


def mlp(dims: list[int], act: type[nn.Module] = nn.SiLU, last_act: bool = False) -> nn.Sequential:
    """A plain MLP ``Linear -> act -> ... -> Linear`` through the widths ``dims``.

    Examples:
        >>> mlp([4, 8, 2])(torch.zeros(3, 4)).shape
        torch.Size([3, 2])
    """
    if len(dims) < 2:
        raise ValueError(f"an MLP needs at least input and output widths, got {dims}")
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2 or last_act:
            layers.append(act())
    return nn.Sequential(*layers)


class TimeEmbedding(nn.Module):
    """Embedding of a per-graph time ``t ∈ [0, 1]``: sinusoidal features then a 2-layer MLP.

    ``emb(t) = W_2 silu(W_1 sin_cos(scale · t))`` with ``scale = 1000`` so that the sinusoid
    frequencies resolve the unit interval.

    Examples:
        >>> TimeEmbedding(16)(torch.rand(5)).shape
        torch.Size([5, 16])
    """

    def __init__(self, width: int, freq_dim: int = 64, scale: float = 1000.0) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.scale = scale
        self.net = mlp([freq_dim, width, width])

    def forward(self, t: PerGraph) -> Float[Tensor, "b w"]:
        return self.net(sinusoidal_embedding(t * self.scale, self.freq_dim))


class ContextEmbedding(nn.Module):
    """Embedding of a per-graph :class:`~symgen.conditioning.Context` of ``c`` targets.

    ``emb(ctx) = W_2 silu(W_1 [values · mask, mask])``; ``context=None`` is the all-masked
    context (the unconditional model). The result is invariant under any group acting on the
    graph, since the context does not depend on positions or node order.

    Examples:
        >>> emb = ContextEmbedding(2, 8)
        >>> emb(Context.full(torch.ones(3, 2)), 3).shape
        torch.Size([3, 8])
        >>> torch.equal(emb(None, 3), emb(Context.empty(3, 2), 3))
        True
    """

    def __init__(self, context_dim: int, width: int) -> None:
        super().__init__()
        if context_dim < 1:
            raise ValueError(f"context_dim must be >= 1, got {context_dim}")
        self.context_dim = context_dim
        self.net = mlp([2 * context_dim, width, width])

    def forward(self, context: Context | None, batch_size: int) -> Float[Tensor, "b w"]:
        w = self.net[0].weight
        if context is None:
            context = Context.empty(batch_size, self.context_dim, dtype=w.dtype, device=w.device)
        context.check(batch_size, self.context_dim, values=False)
        return self.net(context.features().to(w.dtype))


def check_context_input(context: Context | None, context_dim: int, who: str) -> None:
    """Raise ``ValueError`` if a network built without context (``context_dim = 0``) gets one."""
    if context is not None and context_dim == 0:
        raise ValueError(f"this {who} takes no context: build it with context_dim > 0")


class GaussianBasis(nn.Module):
    """Gaussian radial basis of distances on ``[0, cutoff]``.

    ``φ_k(d) = exp(-(d - μ_k)² / (2 σ²))`` with ``num`` centres ``μ_k`` evenly spaced on
    ``[0, cutoff]`` and ``σ`` their spacing. Distances beyond ``cutoff`` decay smoothly (no hard
    cut), which suits fully connected molecular graphs.

    Examples:
        >>> GaussianBasis(8, cutoff=5.0)(torch.tensor([0.0, 2.5])).shape
        torch.Size([2, 8])
    """

    def __init__(self, num: int, cutoff: float = 10.0) -> None:
        super().__init__()
        if num < 1 or cutoff <= 0:
            raise ValueError(f"GaussianBasis needs num >= 1 and cutoff > 0, got {num}, {cutoff}")
        self.num = num
        self.register_buffer("centers", torch.linspace(0.0, cutoff, num), persistent=False)
        self.width = cutoff / max(num - 1, 1)

    def forward(self, d: Float[Tensor, "*batch"]) -> Float[Tensor, "*batch k"]:
        mu = self.centers.to(d.dtype)
        return torch.exp(-0.5 * ((d[..., None] - mu) / self.width) ** 2)


@dataclass(frozen=True)
class RealPairs:
    """Flat indices of the ordered pairs (i, j), ``i != j``, of real nodes in a padded batch.

    Attributes:
        batch: graph index of each pair, shape ``(p,)``.
        dst: flat index ``b * n + i`` of the receiving node ``i``.
        src: flat index ``b * n + j`` of the sending node ``j``.
        flat: flat index ``(b * n + i) * n + j`` of the pair in a ``(b, n, n)`` layout.
        num_slots: ``b * n``, the number of flat node slots.
    """

    batch: Tensor
    dst: Tensor
    src: Tensor
    flat: Tensor
    num_slots: int


def real_pairs(mask: NodeMask) -> RealPairs:
    """Enumerate the ordered pairs of distinct real nodes (messages j -> i) of every graph.

    Examples:
        >>> p = real_pairs(torch.tensor([[True, True, False]]))
        >>> p.dst.tolist(), p.src.tolist()
        ([0, 1], [1, 0])
    """
    b, n = mask.shape
    g, i, j = pair_mask(mask).nonzero(as_tuple=True)
    return RealPairs(
        batch=g, dst=g * n + i, src=g * n + j, flat=(g * n + i) * n + j, num_slots=b * n
    )


def symmetrize_pairs(values: EdgeFeatures) -> EdgeFeatures:
    """Symmetrize a pair tensor over its node axes: ``(v_ij + v_ji) / 2``."""
    return 0.5 * (values + values.transpose(1, 2))


def check_inputs(x: GeometricGraph, t: Tensor, node_in: int, edge_in: int, who: str) -> PerGraph:
    """Validate a network's inputs against its configured widths; return ``t`` as ``x``'s dtype.

    Raises:
        ValueError: naming the mismatch (node width, missing or unexpected edges, time shape).
    """
    if x.node.shape[-1] != node_in:
        raise ValueError(
            f"{who}: expected node features of width node_in={node_in}, got {x.node.shape[-1]}"
        )
    if edge_in > 0:
        if x.edge is None:
            raise ValueError(
                f"{who}: configured with edge_in={edge_in} but the input graph has no edges"
            )
        if x.edge.shape[-1] != edge_in:
            raise ValueError(
                f"{who}: expected edge features of width edge_in={edge_in}, got {x.edge.shape[-1]}"
            )
    if t.ndim == 0:
        t = t.expand(x.batch_size)
    if t.shape != (x.batch_size,):
        raise ValueError(
            f"{who}: time must have shape (b,) = ({x.batch_size},), got {tuple(t.shape)}"
        )
    return t.to(dtype=x.dtype, device=x.device)


def check_estimate(
    cond: GeometricGraph, x: GeometricGraph, node_out: int, enabled: bool, who: str
) -> GeometricGraph:
    """Validate a self-conditioning estimate against the input and the network's output width;
    return it with zero padding.

    Raises:
        ValueError: the network was built without self-conditioning (``enabled`` false), or the
            estimate's positions or node width differ from the output's.
    """
    if not enabled:
        raise ValueError(f"this {who} was built without self_condition=True")
    if cond.pos.shape != x.pos.shape or cond.node.shape[-1] != node_out:
        raise ValueError(
            f"cond must be shaped like the output: positions {tuple(x.pos.shape)} and "
            f"{node_out} node channels, got {tuple(cond.pos.shape)} and {cond.node.shape[-1]}"
        )
    return cond.zero_padding()


def zero_padding_inputs(x: GeometricGraph) -> GeometricGraph:
    """Zero every padding slot of the input (nodes and pairs touching padding).

    Networks call this first, so that whatever finite values padding holds cannot reach real
    nodes through any path (including numerical ones such as large distances).
    """
    return x.zero_padding()


def make_output(
    x: GeometricGraph,
    pos: Positions,
    node: NodeFeatures,
    edge: EdgeFeatures | None,
) -> GeometricGraph:
    """Wrap predictions as a :class:`GeometricGraph` with ``x``'s mask, dtype and zeroed padding.

    Node outputs are zeroed on padding slots; edge outputs are zeroed outside
    :attr:`GeometricGraph.edge_mask` (padding pairs and the diagonal). Outputs are cast to the
    input's dtype (under bfloat16 autocast, layers return bfloat16).
    """
    dtype = x.dtype
    m = x.mask[..., None].to(dtype)
    if edge is not None:
        edge = edge.to(dtype) * x.edge_mask[..., None].to(dtype)
    return GeometricGraph.unchecked(
        pos=pos.to(dtype) * m, node=node.to(dtype) * m, mask=x.mask, edge=edge
    )


def rank_positions(x: GeometricGraph, rank: Permutations | None) -> Permutations:
    """The canonical rank of every slot: ``rank`` if given, else the slot index ``0..n-1``."""
    if rank is None:
        return torch.arange(x.max_nodes, device=x.device).expand(x.batch_size, -1)
    if rank.shape != x.mask.shape:
        raise ValueError(
            f"rank must have shape {tuple(x.mask.shape)} like the mask, got {tuple(rank.shape)}"
        )
    return rank.to(x.device)
