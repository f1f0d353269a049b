"""The Canon transformer: a plain (non-equivariant) transformer over the atoms of a canonical slice.

A model trained on canonical representatives ``s = κ(x)`` needs no built-in symmetry: the
canonicalizer has already fixed the pose and the atom order, and the symmetry is restored at
generation by a Haar-random group element. The network may therefore read raw coordinates and
the canonical rank of every atom, which is exactly what an equivariant network cannot do.
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
    TimeEmbedding,
    check_context_input,
    check_estimate,
    check_inputs,
    make_output,
    mlp,
    rank_positions,
    sinusoidal_embedding,
    symmetrize_pairs,
)
from symgen.shapes import NodeMask, PerGraph, Permutations
from symgen.state import GeometricGraph

__all__ = ["CanonTransformerConfig", "CanonTransformer"]


@dataclass(frozen=True)
class CanonTransformerConfig:
    """Sizes and options of a :class:`CanonTransformer`.

    Attributes:
        node_in: width of the input node features (e.g. one-hot types + charges).
        node_out: width of the node prediction (logits or values per node).
        edge_in: width of the input edge features (0: the input has no edges).
        edge_out: width of the edge prediction (0: no edge output, ``edge=None``).
        width: token width ``d``.
        depth: number of transformer blocks.
        heads: attention heads (must divide ``width``).
        pair_width: width of the pair representation ``p_ij`` (distances and edge features).
        mlp_ratio: hidden width of the feed-forward layers as a multiple of ``width``.
        num_rbf: Gaussian distance basis size for the pair representation and attention bias.
        cutoff: largest centre of the distance basis (Å for molecules).
        rank_dim: sinusoidal feature size of the rank encoding (each of rank and size).
        update_pair: update the pair representation from the tokens after every block.
        pair_sum: add ``W Σ_j m_j p_ij / 8`` (an un-normalized sum over real partners) to the
            tokens in every block, and the edge-class counts ``Σ_j e_ij`` of the input to the
            first tokens: attention averages, so without it a token cannot count its bonds.
        zero_com: remove the masked mean from the positional output (for centred targets).
        self_condition: accept ``cond=x̂1`` (self-conditioning): the estimate's positions, node
            probabilities and pair distances / edge probabilities are embedded into the tokens
            and the pair representation (``cond=None``: no estimate, nothing added).
        step_size: accept ``d=`` (few-step objectives): the step size is embedded like the
            time and added to the time conditioning.
        context_dim: accept ``context=`` with this many per-graph targets (0: unconditional):
            an embedding of ``[values · mask, mask]`` is added to the time conditioning.
        fixed_nodes: accept ``fixed=`` (substructure conditioning): a learned vector is added
            to the token of every fixed node, and another to the pair representation of every
            pair of fixed nodes.

    Examples:
        >>> cfg = CanonTransformerConfig(node_in=8, node_out=8, edge_in=4, edge_out=4, width=32,
        ...                              depth=2, heads=4, pair_width=8)
        >>> CanonTransformer(cfg).config.width
        32
    """

    node_in: int
    node_out: int
    edge_in: int = 0
    edge_out: int = 0
    width: int = 128
    depth: int = 4
    heads: int = 8
    pair_width: int = 32
    mlp_ratio: float = 4.0
    num_rbf: int = 32
    cutoff: float = 10.0
    rank_dim: int = 32
    update_pair: bool = True
    pair_sum: bool = True
    zero_com: bool = False
    self_condition: bool = False
    step_size: bool = False
    context_dim: int = 0
    fixed_nodes: bool = False

    def __post_init__(self) -> None:
        for name in (
            "node_in",
            "node_out",
            "width",
            "depth",
            "heads",
            "pair_width",
            "num_rbf",
            "rank_dim",
        ):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"CanonTransformerConfig.{name} must be >= 1, got {getattr(self, name)}"
                )
        for name in ("edge_in", "edge_out", "context_dim"):
            if getattr(self, name) < 0:
                raise ValueError(
                    f"CanonTransformerConfig.{name} must be >= 0, got {getattr(self, name)}"
                )
        if self.width % self.heads:
            raise ValueError(f"heads={self.heads} must divide width={self.width}")
        if self.mlp_ratio <= 0 or self.cutoff <= 0:
            raise ValueError("mlp_ratio and cutoff must be positive")


def _modulate(h: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return h * (1 + scale[:, None, :]) + shift[:, None, :]


class _Block(nn.Module):
    """Pre-norm transformer block with adaLN time conditioning and a pair-biased attention."""

    def __init__(self, cfg: CanonTransformerConfig) -> None:
        super().__init__()
        w, p = cfg.width, cfg.pair_width
        self.heads = cfg.heads
        self.norm1 = nn.LayerNorm(w, elementwise_affine=False)
        self.norm2 = nn.LayerNorm(w, elementwise_affine=False)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(w, 6 * w))
        self.qkv = nn.Linear(w, 3 * w)
        self.out = nn.Linear(w, w)
        self.ff = mlp([w, int(cfg.mlp_ratio * w), w])
        self.pair_norm = nn.LayerNorm(p)
        self.pair_bias = nn.Linear(p, cfg.heads, bias=False)
        self.dist_bias = nn.Linear(cfg.num_rbf, cfg.heads)
        self.update_pair = cfg.update_pair
        self.pair_sum = nn.Linear(p, w) if cfg.pair_sum else None
        if cfg.update_pair:
            self.tok_norm = nn.LayerNorm(w)
            self.to_pair_i = nn.Linear(w, p)
            self.to_pair_j = nn.Linear(w, p, bias=False)
            self.pair_norm2 = nn.LayerNorm(p)
            self.pair_ff = mlp([p, 2 * p, p])

    def forward(
        self,
        h: Float[Tensor, "b n w"],
        pair: Float[Tensor, "b n n p"],
        rbf: Float[Tensor, "b n n k"],
        key_mask: Float[Tensor, "b 1 1 n"],
        cond: Float[Tensor, "b w"],
        pair_weight: Float[Tensor, "b n n 1"],
    ) -> tuple[Float[Tensor, "b n w"], Float[Tensor, "b n n p"]]:
        b, n, w = h.shape
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(cond).chunk(6, dim=-1)
        bias = self.pair_bias(self.pair_norm(pair)) + self.dist_bias(rbf)  # (b, n, n, heads)
        bias = bias.permute(0, 3, 1, 2) + key_mask
        q, k, v = self.qkv(_modulate(self.norm1(h), sh1, sc1)).chunk(3, dim=-1)
        q, k, v = (u.reshape(b, n, self.heads, w // self.heads).transpose(1, 2) for u in (q, k, v))
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        h = h + g1[:, None, :] * self.out(att.transpose(1, 2).reshape(b, n, w))
        if self.pair_sum is not None:
            h = h + self.pair_sum((pair * pair_weight).sum(2) / 8.0)
        h = h + g2[:, None, :] * self.ff(_modulate(self.norm2(h), sh2, sc2))
        if self.update_pair:
            u = self.tok_norm(h)
            pair = pair + self.to_pair_i(u)[:, :, None, :] + self.to_pair_j(u)[:, None, :, :]
            pair = pair + self.pair_ff(self.pair_norm2(pair))
        return h, pair


class CanonTransformer(nn.Module):
    """A non-equivariant transformer for the canonical slice (a :class:`GraphNetwork`).

    Tokens are atoms: ``h_i = W_x x_i + W_f f_i + W_r [sin_cos(rank_i), sin_cos(k)]`` from raw
    positions ``x_i``, node features ``f_i``, the canonical rank of the atom and the graph size
    ``k``. A pair representation ``p_ij = W_d φ(|x_i - x_j|) + W_e e_ij`` (Gaussian distance
    basis ``φ``, edge features ``e_ij``) biases every head's attention:

        ``att_ij^h = softmax_j(q_i^h · k_j^h / √d_h + w_h · LN(p_ij) + u_h · φ(d_ij) + mask_j)``

    with padding keys at ``-inf``. With ``pair_sum`` every block also adds the un-normalized sum
    ``W Σ_j p_ij / 8`` over real partners (softmax attention only averages, so this is what lets
    an atom count its bonds), and the input edge-class counts ``Σ_j e_ij`` enter the first
    tokens. Blocks are time-conditioned by adaptive layer norm
    (``LN(h)(1 + scale(t)) + shift(t)``, gated residuals, as in DiT); the pair representation is
    updated by an outer sum of token projections after each block. Outputs: positions
    ``(b, n, 3)``, node predictions ``(b, n, node_out)`` and, when ``edge_out > 0``, edge
    predictions ``(b, n, n, edge_out)`` symmetric in ``(i, j)``; padding (and the edge
    diagonal) is zero.

    The network is deliberately *not* equivariant: rotating the input or reordering the atoms
    changes the output. It is permutation-equivariant when the rank encoding travels with the
    atoms (pass ``rank`` permuted like the nodes).

    Args:
        config: a :class:`CanonTransformerConfig`; or give its fields as keyword arguments.

    Examples:
        >>> net = CanonTransformer(node_in=3, node_out=3, width=16, depth=1, heads=2, pair_width=4)
        >>> mask = torch.ones(2, 5, dtype=torch.bool)
        >>> x = GeometricGraph(torch.randn(2, 5, 3), torch.rand(2, 5, 3), mask)
        >>> net(x, torch.rand(2)).node.shape
        torch.Size([2, 5, 3])
    """

    def __init__(self, config: CanonTransformerConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        if config is None:
            config = CanonTransformerConfig(**kwargs)
        elif kwargs:
            config = CanonTransformerConfig(**{**asdict(config), **kwargs})
        self.config = cfg = config
        w, p = cfg.width, cfg.pair_width
        self.embed_node = nn.Linear(cfg.node_in, w)
        self.embed_pos = nn.Linear(3, w, bias=False)
        self.embed_rank = nn.Linear(2 * cfg.rank_dim, w, bias=False)
        self.time = TimeEmbedding(w)
        self.step_size_input = cfg.step_size
        if cfg.step_size:  # few-step objectives: the step size conditions like the time
            self.step = TimeEmbedding(w)
        self.context_dim = cfg.context_dim
        if cfg.context_dim > 0:  # per-graph targets condition like the time
            self.context = ContextEmbedding(cfg.context_dim, w)
        self.fixed_nodes_input = cfg.fixed_nodes
        if cfg.fixed_nodes:  # which atoms are given (clean at every t)
            self.fixed_token = nn.Parameter(torch.zeros(w))
            self.fixed_pair = nn.Parameter(torch.zeros(p))
        self.rbf = GaussianBasis(cfg.num_rbf, cfg.cutoff)
        self.embed_dist = mlp([cfg.num_rbf, p, p])
        self.embed_edge = nn.Linear(cfg.edge_in, p, bias=False) if cfg.edge_in > 0 else None
        self.embed_degree = (
            nn.Linear(cfg.edge_in, w, bias=False) if cfg.edge_in > 0 and cfg.pair_sum else None
        )
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.depth))
        self.self_conditioning = cfg.self_condition
        if cfg.self_condition:
            self.sc_pos = nn.Linear(3, w, bias=False)
            self.sc_node = nn.Linear(cfg.node_out, w, bias=False)
            self.sc_dist = nn.Linear(cfg.num_rbf, p, bias=False)
            self.sc_edge = nn.Linear(cfg.edge_out, p, bias=False) if cfg.edge_out > 0 else None
        self.final_norm = nn.LayerNorm(w, elementwise_affine=False)
        self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(w, 2 * w))
        self.pos_head = nn.Linear(w, 3)
        self.node_head = nn.Linear(w, cfg.node_out)
        if cfg.edge_out > 0:
            self.edge_tok = nn.Linear(w, p)
            self.edge_norm = nn.LayerNorm(p)
            self.edge_head = mlp([p, p, cfg.edge_out])

    def forward(
        self,
        x: GeometricGraph,
        t: PerGraph | Float[Tensor, ""],
        cond: GeometricGraph | None = None,
        *,
        d: PerGraph | None = None,
        rank: Permutations | None = None,
        context: Context | None = None,
        fixed: NodeMask | None = None,
    ) -> GeometricGraph:
        """Predict positions, node and edge outputs for the batch ``x`` at times ``t``.

        Args:
            x: padded input batch (noisy state).
            t: per-graph time, shape ``(b,)`` (a scalar is broadcast).
            cond: self-conditioning estimate of the clean data (needs ``self_condition``).
            d: per-graph step size (needs ``step_size``; ``None``: 0, the instantaneous
                velocity).
            rank: canonical rank of each slot; default: the slot index ``0..n-1``.
            context: per-graph targets (needs ``context_dim``; ``None``: none given).
            fixed: ``(b, n)`` mask of the nodes whose values are given (needs
                ``fixed_nodes``; ``None``: none).
        """
        cfg = self.config
        t = check_inputs(x, t, cfg.node_in, cfg.edge_in, "CanonTransformer")
        check_context_input(context, cfg.context_dim, "CanonTransformer")
        x = x.zero_padding()
        pos, mask = x.pos, x.mask
        k = x.num_nodes.to(x.dtype)[:, None].expand(-1, x.max_nodes)
        r = rank_positions(x, rank).to(x.dtype)
        rank_feat = torch.cat(
            [
                sinusoidal_embedding(r, cfg.rank_dim, 256.0),
                sinusoidal_embedding(k, cfg.rank_dim, 256.0),
            ],
            -1,
        )
        h = self.embed_node(x.node) + self.embed_pos(pos) + self.embed_rank(rank_feat)
        diff = pos[:, :, None, :] - pos[:, None, :, :]
        dist = torch.sqrt((diff**2).sum(-1) + 1e-12)
        rbf = self.rbf(dist)
        pair = self.embed_dist(rbf)
        if self.embed_edge is not None:
            assert x.edge is not None  # checked by check_inputs
            pair = pair + self.embed_edge(x.edge)
        if self.embed_degree is not None:
            assert x.edge is not None
            h = h + self.embed_degree(x.edge.sum(2) / 4.0)  # edge-class counts per atom
        key_mask = torch.zeros(x.batch_size, 1, 1, x.max_nodes, dtype=x.dtype, device=x.device)
        key_mask = key_mask.masked_fill(~mask[:, None, None, :], float("-inf"))
        if fixed is not None:
            if not cfg.fixed_nodes:
                raise ValueError(
                    "this CanonTransformer takes no fixed-node mask: build it with fixed_nodes=True"
                )
            f = (fixed & mask).to(h.dtype)
            h = h + f[..., None] * self.fixed_token
            pair = pair + (f[:, :, None] * f[:, None, :])[..., None] * self.fixed_pair
        if cond is not None:
            h, pair = self._add_estimate(x, cond, h, pair)
        tcond = self.time(t)
        if cfg.step_size:
            tcond = tcond + self.step(torch.zeros_like(t) if d is None else d.to(t.dtype))
        elif d is not None:
            raise ValueError(
                "this CanonTransformer takes no step size: build it with step_size=True"
            )
        if cfg.context_dim > 0:
            tcond = tcond + self.context(context, x.batch_size)
        pair_weight = x.edge_mask[..., None].to(x.dtype)  # real partners j != i
        for block in self.blocks:
            h, pair = block(h, pair, rbf, key_mask, tcond, pair_weight)
        shift, scale = self.final_ada(tcond).chunk(2, dim=-1)
        hf = _modulate(self.final_norm(h), shift, scale)
        pos_out = self.pos_head(hf)
        if cfg.zero_com:
            pos_out = masked_center(pos_out, mask)
        node_out = self.node_head(hf)
        edge_out = None
        if cfg.edge_out > 0:
            u = self.edge_tok(hf)
            z = self.edge_norm(symmetrize_pairs(pair)) + u[:, :, None, :] * u[:, None, :, :]
            edge_out = symmetrize_pairs(self.edge_head(z))
        return make_output(x, pos_out, node_out, edge_out)

    def _add_estimate(
        self, x: GeometricGraph, cond: GeometricGraph, h: Tensor, pair: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Embed a self-conditioning estimate into the tokens and the pair representation."""
        cfg = self.config
        c = check_estimate(cond, x, cfg.node_out, cfg.self_condition, "CanonTransformer")
        h = h + self.sc_pos(c.pos) + self.sc_node(c.node)
        d = torch.sqrt(((c.pos[:, :, None, :] - c.pos[:, None, :, :]) ** 2).sum(-1) + 1e-12)
        pair = pair + self.sc_dist(self.rbf(d))
        if self.sc_edge is not None and c.edge is not None:
            pair = pair + self.sc_edge(c.edge)
        return h, pair
