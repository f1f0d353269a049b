"""E(n)-equivariant graph neural network (Satorras, Hoogeboom & Welling, 2021), EDM flavour.

The baseline network of equivariant diffusion/flow models for molecules (EDM, Hoogeboom et al.,
2022): fully connected message passing on the real atoms of each graph, invariant node
features, and coordinate updates along normalized difference vectors with a ``tanh`` bound.
"""

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from symgen.conditioning import Context
from symgen.masking import masked_center
from symgen.models.common import (
    ContextEmbedding,
    GaussianBasis,
    RealPairs,
    check_context_input,
    check_estimate,
    check_inputs,
    make_output,
    mlp,
    real_pairs,
    symmetrize_pairs,
)
from symgen.shapes import PerGraph
from symgen.state import GeometricGraph

__all__ = ["EGNNConfig", "EGNN"]


@dataclass(frozen=True)
class EGNNConfig:
    """Sizes and options of an :class:`EGNN`.

    Attributes:
        node_in: width of the input node features.
        node_out: width of the (invariant) node prediction.
        edge_in: width of the input edge features, used in messages (0: none).
        edge_out: width of the invariant edge prediction (0: ``edge=None``).
        width: hidden width of node embeddings and messages.
        depth: number of equivariant layers (message + coordinate update).
        attention: gate every message by ``sigmoid(w · m_ij)`` (EDM's attention option).
        tanh: bound the coordinate weights by ``coords_range · tanh(·)`` (EDM, for stability).
        coords_range: bound of the coordinate weights when ``tanh``.
        normalization_factor: sums over neighbours are divided by this (EDM: 1 for QM9).
        num_rbf: Gaussian distance basis size for the edge head.
        cutoff: largest centre of the distance basis.
        zero_com: remove the masked mean from the velocity output (zero centre of mass).
        self_condition: accept ``cond=x̂1`` (self-conditioning) through invariant channels
            only, so the network stays equivariant: the estimate's node outputs join the node
            input, its squared pair distances and edge outputs join the pair features.
        context_dim: accept ``context=`` with this many per-graph targets (0: unconditional);
            their embedding is added to every node's initial features (invariant).

    Examples:
        >>> cfg = EGNNConfig(node_in=5, node_out=5, width=32, depth=2)
        >>> EGNN(cfg, depth=3).config.depth  # keyword arguments override the config's fields
        3
        >>> EGNNConfig(node_in=0, node_out=5)
        Traceback (most recent call last):
            ...
        ValueError: EGNNConfig.node_in must be >= 1, got 0
    """

    node_in: int
    node_out: int
    edge_in: int = 0
    edge_out: int = 0
    width: int = 128
    depth: int = 4
    attention: bool = True
    tanh: bool = True
    coords_range: float = 15.0
    normalization_factor: float = 1.0
    num_rbf: int = 16
    cutoff: float = 10.0
    zero_com: bool = True
    self_condition: bool = False
    context_dim: int = 0

    @property
    def pair_extra(self) -> int:
        """Width of the pair features the layers read besides the distances: the input edges
        and, with self-conditioning, the estimate's squared distance and edge outputs."""
        return self.edge_in + (1 + self.edge_out if self.self_condition else 0)

    def __post_init__(self) -> None:
        for name in ("node_in", "node_out", "width", "depth", "num_rbf"):
            if getattr(self, name) < 1:
                raise ValueError(f"EGNNConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("edge_in", "edge_out", "context_dim"):
            if getattr(self, name) < 0:
                raise ValueError(f"EGNNConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.coords_range <= 0 or self.normalization_factor <= 0 or self.cutoff <= 0:
            raise ValueError("coords_range, normalization_factor and cutoff must be positive")


def _pair_mlp(net: nn.Sequential, h: Tensor, pairs: RealPairs, pair: Tensor) -> Tensor:
    """``net([h_i, h_j, pair_ij])`` over the real pairs, with the first layer split by input
    block: ``W [h_i, h_j, p_ij] + b = (W_a h)_i + (W_b h)_j + W_c p_ij + b``. The node blocks are
    computed once per node instead of once per pair (the same weights and the same function, a
    fraction of the first layer's cost on fully connected graphs)."""
    first = net[0]
    assert isinstance(first, nn.Linear)
    w = h.shape[-1]
    a = F.linear(h, first.weight[:, :w])
    b = F.linear(h, first.weight[:, w : 2 * w])
    z = a[pairs.dst] + b[pairs.src] + F.linear(pair, first.weight[:, 2 * w :], first.bias)
    return net[1:](z)


class _EquivariantLayer(nn.Module):
    """One EGNN layer: invariant message passing, then an equivariant coordinate update."""

    def __init__(self, cfg: EGNNConfig) -> None:
        super().__init__()
        w = cfg.width
        pair_in = 2 * w + 2 + cfg.pair_extra
        self.cfg = cfg
        self.message = mlp([pair_in, w, w], last_act=True)
        self.gate = nn.Linear(w, 1) if cfg.attention else None
        self.update = mlp([2 * w, w, w])
        self.coord = mlp([pair_in, w, w], last_act=True)
        self.coord_out = nn.Linear(w, 1, bias=False)
        nn.init.xavier_uniform_(self.coord_out.weight, gain=1e-3)  # start near the identity map

    def forward(
        self,
        h: Float[Tensor, "N w"],
        pos: Float[Tensor, "N 3"],
        pairs: RealPairs,
        d0: Float[Tensor, "p 1"],
        edge: Float[Tensor, "p e"],
    ) -> tuple[Float[Tensor, "N w"], Float[Tensor, "N 3"]]:
        cfg = self.cfg
        diff = pos[pairs.dst] - pos[pairs.src]
        d2 = (diff**2).sum(-1, keepdim=True)
        pair = torch.cat([d2, d0, edge], -1)
        m = _pair_mlp(self.message, h, pairs, pair)
        if self.gate is not None:
            m = m * torch.sigmoid(self.gate(m))
        agg = torch.zeros_like(h).index_add_(0, pairs.dst, m) / cfg.normalization_factor
        h = h + self.update(torch.cat([h, agg], -1))
        c = self.coord_out(_pair_mlp(self.coord, h, pairs, pair))
        if cfg.tanh:
            c = cfg.coords_range * torch.tanh(c)
        unit = diff / (torch.sqrt(d2 + 1e-8) + 1.0)
        shift = torch.zeros_like(pos).index_add_(0, pairs.dst, unit * c) / cfg.normalization_factor
        return h, pos + shift


class EGNN(nn.Module):
    """E(n)-equivariant GNN with an invariant edge head (a :class:`GraphNetwork`).

    Layer ``l`` on the fully connected graph of real atoms (``i != j``):

        ``m_ij = φ_e(h_i, h_j, |x_i - x_j|², |x_i⁰ - x_j⁰|², e_ij)`` (gated by ``σ(w·m_ij)``),
        ``h_i ← h_i + φ_h(h_i, Σ_j m_ij / Z)``,
        ``x_i ← x_i + Σ_j (x_i - x_j) / (|x_i - x_j| + 1) · c·tanh(φ_x(h_i, h_j, ...)) / Z``.

    The time enters as an extra node input (``h⁰ = W [f_i, t]``). With ``self_condition``, a
    clean-data estimate ``x̂1`` enters as invariants: ``h⁰`` also gets ``W' f̂_i`` and the pair
    features ``e_ij`` also get ``|x̂_i - x̂_j|²`` and ``ê_ij`` (zeros when ``cond=None``).
    Outputs: the velocity
    ``x^L - x⁰`` with its masked mean removed (translation-invariant, rotation-equivariant,
    zero centre of mass), invariant node predictions ``W_o h^L``, and, when ``edge_out > 0``,
    invariant edge predictions ``ψ(h_i + h_j, h_i ⊙ h_j, φ(|x_i^L - x_j^L|), e_ij)``
    symmetrized in ``(i, j)``. Everything permutes with the atoms. Padding is zero.

    Args:
        config: an :class:`EGNNConfig`; or give its fields as keyword arguments.

    Examples:
        >>> net = EGNN(node_in=3, node_out=3, width=16, depth=2)
        >>> mask = torch.ones(2, 5, dtype=torch.bool)
        >>> x = GeometricGraph(torch.randn(2, 5, 3), torch.rand(2, 5, 3), mask)
        >>> out = net(x, torch.rand(2))
        >>> torch.allclose(out.pos.mean(1), torch.zeros(2, 3), atol=1e-5)
        True
    """

    def __init__(self, config: EGNNConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        if config is None:
            config = EGNNConfig(**kwargs)
        elif kwargs:
            config = EGNNConfig(**{**asdict(config), **kwargs})
        self.config = cfg = config
        w = cfg.width
        self.embed = nn.Linear(cfg.node_in + 1, w)
        self.self_conditioning = cfg.self_condition
        if cfg.self_condition:
            self.sc_node = nn.Linear(cfg.node_out, w, bias=False)
        self.context_dim = cfg.context_dim
        if cfg.context_dim > 0:  # invariant per-graph targets, added to every node's embedding
            self.context = ContextEmbedding(cfg.context_dim, w)
        self.layers = nn.ModuleList(_EquivariantLayer(cfg) for _ in range(cfg.depth))
        self.node_head = mlp([w, w, cfg.node_out])
        if cfg.edge_out > 0:
            self.rbf = GaussianBasis(cfg.num_rbf, cfg.cutoff)
            self.edge_head = mlp([2 * w + cfg.num_rbf + cfg.pair_extra, w, cfg.edge_out])

    def forward(
        self,
        x: GeometricGraph,
        t: PerGraph | Float[Tensor, ""],
        cond: GeometricGraph | None = None,
        *,
        context: Context | None = None,
    ) -> GeometricGraph:
        """Predict the velocity, node and edge outputs for the batch ``x`` at times ``t``.

        ``cond``: the self-conditioning estimate of the clean data (needs ``self_condition``;
        ``None``: no estimate yet). ``context``: per-graph targets (needs ``context_dim``).
        """
        cfg = self.config
        t = check_inputs(x, t, cfg.node_in, cfg.edge_in, "EGNN")
        check_context_input(context, cfg.context_dim, "EGNN")
        x = x.zero_padding()
        b, n = x.batch_size, x.max_nodes
        pairs = real_pairs(x.mask)
        pos0 = x.pos.reshape(b * n, 3)
        tt = t[:, None, None].expand(b, n, 1)
        h = self.embed(torch.cat([x.node, tt], -1))
        if cfg.context_dim > 0:
            h = h + self.context(context, b)[:, None, :]
        h = h.reshape(b * n, -1)
        d0 = ((pos0[pairs.dst] - pos0[pairs.src]) ** 2).sum(-1, keepdim=True)
        if x.edge is not None and cfg.edge_in > 0:
            edge = x.edge.reshape(b * n * n, -1)[pairs.flat]
        else:
            edge = pos0.new_zeros(pairs.dst.shape[0], 0)
        if cfg.self_condition or cond is not None:
            h, estimate_pairs = self._estimate_features(x, cond, pairs, h)
            edge = torch.cat([edge, estimate_pairs], -1)
        pos = pos0
        for layer in self.layers:
            h, pos = layer(h, pos, pairs, d0, edge)
        vel = (pos - pos0).reshape(b, n, 3)
        if cfg.zero_com:
            vel = masked_center(vel, x.mask)
        node_out = self.node_head(h).reshape(b, n, -1)
        edge_out = None
        if cfg.edge_out > 0:
            dist = torch.sqrt(((pos[pairs.dst] - pos[pairs.src]) ** 2).sum(-1) + 1e-12)
            hi, hj = h[pairs.dst], h[pairs.src]
            z = torch.cat([hi + hj, hi * hj, self.rbf(dist), edge], -1)
            flat = pos0.new_zeros(b * n * n, cfg.edge_out).index_copy_(
                0, pairs.flat, self.edge_head(z)
            )
            edge_out = symmetrize_pairs(flat.reshape(b, n, n, -1))
        return make_output(x, vel, node_out, edge_out)

    def _estimate_features(
        self, x: GeometricGraph, cond: GeometricGraph | None, pairs: RealPairs, h: Tensor
    ) -> tuple[Tensor, Tensor]:
        """The estimate's invariant node embedding (added to ``h``) and pair features."""
        cfg = self.config
        if cond is None:
            return h, h.new_zeros(pairs.dst.shape[0], 1 + cfg.edge_out)
        c = check_estimate(cond, x, cfg.node_out, cfg.self_condition, "EGNN")
        b, n = x.batch_size, x.max_nodes
        h = h + self.sc_node(c.node).reshape(b * n, -1)
        p = c.pos.reshape(b * n, 3)
        feats = [((p[pairs.dst] - p[pairs.src]) ** 2).sum(-1, keepdim=True)]
        if cfg.edge_out > 0:
            if c.edge is None:
                feats.append(h.new_zeros(pairs.dst.shape[0], cfg.edge_out))
            else:
                feats.append(c.edge.reshape(b * n * n, -1)[pairs.flat])
        return h, torch.cat(feats, -1)
