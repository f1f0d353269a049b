"""An SE(3)-equivariant message-passing network built from e3nn tensor products.

Needs the optional ``e3nn`` extra (``pip install symgen[e3nn]``); e3nn is imported here only,
so ``import symgen`` and ``import symgen.models`` stay light.

Node features are direct sums of irreducible representations (``S x 0e + V x 1o [+ T x 2e]``).
Messages are tensor products of the sender's features with spherical harmonics of the edge
direction, weighted per channel by an MLP of a Gaussian distance basis (and the bond
features), in the style of NequIP; a gated nonlinearity (``e3nn.nn.Gate``) follows each layer.
"""

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from e3nn import o3
from e3nn.nn import Gate
from jaxtyping import Float
from torch import Tensor, nn

from symgen.masking import masked_center
from symgen.models.common import (
    GaussianBasis,
    RealPairs,
    TimeEmbedding,
    check_inputs,
    make_output,
    mlp,
    real_pairs,
    symmetrize_pairs,
)
from symgen.shapes import PerGraph
from symgen.state import GeometricGraph

__all__ = ["E3NNConfig", "E3NNNetwork"]


@dataclass(frozen=True)
class E3NNConfig:
    """Sizes and options of an :class:`E3NNNetwork`.

    Attributes:
        node_in: width of the input node features (scalars).
        node_out: width of the invariant node prediction.
        edge_in: width of the input edge features, fed to the radial weights (0: none).
        edge_out: width of the invariant edge prediction (0: ``edge=None``).
        scalars: number of ``0e`` channels ``S`` in the hidden features.
        vectors: number of ``1o`` channels ``V`` (>= 1: the positional output is a ``1o``).
        tensors: number of ``2e`` channels ``T`` (0 to leave them out).
        lmax: degree of the edge spherical harmonics (1 or 2 are typical).
        depth: number of message-passing layers.
        num_rbf: Gaussian distance basis size.
        cutoff: largest centre of the distance basis (the graph stays fully connected).
        radial_hidden: hidden width of the radial weight MLP.
        normalization_factor: neighbour sums are divided by this (about √(mean degree)).
        zero_com: remove the masked mean from the vector output (zero centre of mass).

    The hidden features are ``scalars x 0e + vectors x 1o [+ tensors x 2e]``.

    Examples:
        >>> cfg = E3NNConfig(node_in=5, node_out=5, scalars=8, vectors=4, tensors=2)
        >>> cfg.hidden_irreps
        '8x0e + 4x1o + 2x2e'
        >>> E3NNNetwork(cfg, depth=1).config.depth  # keyword arguments override the fields
        1
    """

    node_in: int
    node_out: int
    edge_in: int = 0
    edge_out: int = 0
    scalars: int = 64
    vectors: int = 16
    tensors: int = 0
    lmax: int = 2
    depth: int = 3
    num_rbf: int = 16
    cutoff: float = 10.0
    radial_hidden: int = 64
    normalization_factor: float = 4.0
    zero_com: bool = True

    def __post_init__(self) -> None:
        for name in (
            "node_in",
            "node_out",
            "scalars",
            "vectors",
            "lmax",
            "depth",
            "num_rbf",
            "radial_hidden",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"E3NNConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("edge_in", "edge_out", "tensors"):
            if getattr(self, name) < 0:
                raise ValueError(f"E3NNConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.normalization_factor <= 0 or self.cutoff <= 0:
            raise ValueError("normalization_factor and cutoff must be positive")

    @property
    def hidden_irreps(self) -> str:
        """The hidden feature irreps, e.g. ``"64x0e + 16x1o"``."""
        parts = [f"{self.scalars}x0e", f"{self.vectors}x1o"]
        if self.tensors:
            parts.append(f"{self.tensors}x2e")
        return " + ".join(parts)


def _depthwise_tp(
    irreps_in: o3.Irreps, irreps_sh: o3.Irreps, allowed: o3.Irreps
) -> o3.TensorProduct:
    """Channel-wise ('uvu') tensor product onto the irreps of ``allowed``; weights per edge."""
    allowed_set = {ir for _, ir in allowed}
    mid: list[tuple[int, o3.Irrep]] = []
    instructions = []
    for i, (mul, ir_in) in enumerate(irreps_in):
        for j, (_, ir_sh) in enumerate(irreps_sh):
            for ir_out in ir_in * ir_sh:
                if ir_out in allowed_set:
                    instructions.append((i, j, len(mid), "uvu", True))
                    mid.append((mul, ir_out))
    irreps_mid, perm, _ = o3.Irreps(mid).sort()
    instructions = [(i, j, perm[k], mode, train) for i, j, k, mode, train in instructions]
    return o3.TensorProduct(
        irreps_in, irreps_sh, irreps_mid, instructions, shared_weights=False, internal_weights=False
    )


class _InteractionLayer(nn.Module):
    """Tensor-product messages, channel mixing, self-connection and a gated nonlinearity."""

    def __init__(self, irreps_in: o3.Irreps, irreps_sh: o3.Irreps, cfg: E3NNConfig) -> None:
        super().__init__()
        hidden = o3.Irreps(cfg.hidden_irreps)
        gated = o3.Irreps([(mul, ir) for mul, ir in hidden if ir.l > 0])
        self.gate = Gate(
            f"{cfg.scalars}x0e", [F.silu], f"{gated.num_irreps}x0e", [torch.sigmoid], gated
        )
        self.tp = _depthwise_tp(irreps_in, irreps_sh, self.gate.irreps_in)
        self.radial = mlp([cfg.num_rbf + cfg.edge_in, cfg.radial_hidden, self.tp.weight_numel])
        self.mix = o3.Linear(self.tp.irreps_out, self.gate.irreps_in)
        self.self_connection = o3.Linear(irreps_in, self.gate.irreps_in)
        self.residual = o3.Irreps(irreps_in) == self.gate.irreps_out
        self.norm = cfg.normalization_factor

    def forward(
        self,
        h: Float[Tensor, "N d"],
        pairs: RealPairs,
        sh: Float[Tensor, "p s"],
        radial_in: Float[Tensor, "p r"],
    ) -> Float[Tensor, "N d2"]:
        msg = self.tp(h[pairs.src], sh, self.radial(radial_in))
        agg = msg.new_zeros(h.shape[0], msg.shape[-1]).index_add_(0, pairs.dst, msg) / self.norm
        out = self.gate(self.mix(agg) + self.self_connection(h))
        return out + h if self.residual else out


class E3NNNetwork(nn.Module):
    """SE(3)-equivariant tensor-product network (e3nn) with invariant heads (a GraphNetwork).

    With ``r_ij = x_j - x_i`` over ordered pairs of distinct real atoms, layer ``l`` computes

        ``h_i ← Gate(W_self h_i + W_mix Σ_j [h_j ⊗_{w(|r_ij|, e_ij)} Y(r̂_ij)] / Z)`` (+ ``h_i``),

    where ``Y`` are spherical harmonics up to ``lmax``, ``⊗_w`` a channel-wise tensor product
    whose weights ``w`` come from an MLP of a Gaussian basis of ``|r_ij|`` and the edge features,
    and ``Gate`` applies SiLU to scalars and sigmoid-gates of scalars to the ``l > 0`` channels.
    Initial features are scalars: ``h_i⁰ = W f_i + τ(t)``. Outputs: a ``1o`` vector per atom
    (``W_v h^L``, masked mean removed: translation-invariant, rotation-equivariant), invariant
    node predictions from the scalar channels, and, when ``edge_out > 0``, invariant edge
    predictions ``ψ(s_i + s_j, s_i ⊙ s_j, ⟨v_i, v_j⟩_c, φ(|r_ij|), e_ij)`` (``s``: scalar
    channels, ``⟨v_i, v_j⟩_c``: channel-wise dot products of the vectors), symmetric in
    ``(i, j)``. Padding is zero.

    Args:
        config: an :class:`E3NNConfig`; or give its fields as keyword arguments.

    Examples:
        >>> net = E3NNNetwork(node_in=3, node_out=3, scalars=8, vectors=4, depth=2)
        >>> mask = torch.ones(2, 5, dtype=torch.bool)
        >>> x = GeometricGraph(torch.randn(2, 5, 3), torch.rand(2, 5, 3), mask)
        >>> net(x, torch.rand(2)).pos.shape
        torch.Size([2, 5, 3])
    """

    def __init__(self, config: E3NNConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        if config is None:
            config = E3NNConfig(**kwargs)
        elif kwargs:
            config = E3NNConfig(**{**asdict(config), **kwargs})
        self.config = cfg = config
        self.irreps_sh = o3.Irreps.spherical_harmonics(cfg.lmax)
        self.embed = nn.Linear(cfg.node_in, cfg.scalars)
        self.time = TimeEmbedding(cfg.scalars)
        self.rbf = GaussianBasis(cfg.num_rbf, cfg.cutoff)
        layers = []
        irreps = o3.Irreps(f"{cfg.scalars}x0e")
        for _ in range(cfg.depth):
            layer = _InteractionLayer(irreps, self.irreps_sh, cfg)
            layers.append(layer)
            irreps = layer.gate.irreps_out
        self.layers = nn.ModuleList(layers)
        self.irreps_hidden = irreps
        self.vector_head = o3.Linear(irreps, "1x1o")
        self.node_head = mlp([cfg.scalars, cfg.scalars, cfg.node_out])
        if cfg.edge_out > 0:
            self.edge_head = mlp(
                [
                    2 * cfg.scalars + cfg.vectors + cfg.num_rbf + cfg.edge_in,
                    cfg.scalars,
                    cfg.edge_out,
                ]
            )

    def forward(self, x: GeometricGraph, t: PerGraph | Float[Tensor, ""]) -> GeometricGraph:
        """Predict the vector, node and edge outputs for the batch ``x`` at times ``t``."""
        cfg = self.config
        t = check_inputs(x, t, cfg.node_in, cfg.edge_in, "E3NNNetwork")
        x = x.zero_padding()
        b, n = x.batch_size, x.max_nodes
        pairs = real_pairs(x.mask)
        pos = x.pos.reshape(b * n, 3)
        r = pos[pairs.src] - pos[pairs.dst]
        d2 = (r**2).sum(-1, keepdim=True)
        dist = torch.sqrt(d2 + 1e-12)[:, 0]
        # unit direction, smoothly shrunk to 0 for coincident atoms (finite gradients)
        direction = r / torch.sqrt(d2 + 1e-6)
        sh = o3.spherical_harmonics(
            self.irreps_sh, direction, normalize=False, normalization="component"
        )
        radial_in = self.rbf(dist)
        edge = pos.new_zeros(pairs.dst.shape[0], 0)
        if x.edge is not None and cfg.edge_in > 0:
            edge = x.edge.reshape(b * n * n, -1)[pairs.flat]
            radial_in = torch.cat([radial_in, edge], -1)
        h = (self.embed(x.node) + self.time(t)[:, None, :]).reshape(b * n, -1)
        for layer in self.layers:
            h = layer(h, pairs, sh, radial_in)
        vel = self.vector_head(h).reshape(b, n, 3)
        if cfg.zero_com:
            vel = masked_center(vel, x.mask)
        s = h[:, : cfg.scalars]
        node_out = self.node_head(s).reshape(b, n, -1)
        edge_out = None
        if cfg.edge_out > 0:
            v = h[:, cfg.scalars : cfg.scalars + 3 * cfg.vectors].reshape(b * n, cfg.vectors, 3)
            si, sj = s[pairs.dst], s[pairs.src]
            dots = (v[pairs.dst] * v[pairs.src]).sum(-1)
            z = torch.cat([si + sj, si * sj, dots, self.rbf(dist), edge], -1)
            flat = pos.new_zeros(b * n * n, cfg.edge_out).index_copy_(
                0, pairs.flat, self.edge_head(z)
            )
            edge_out = symmetrize_pairs(flat.reshape(b, n, n, -1))
        return make_output(x, vel, node_out, edge_out)
