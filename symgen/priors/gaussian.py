"""Gaussian priors: isotropic and centred (zero centre of mass)."""

import math

import torch
from torch import Tensor

from symgen.masking import masked_center, upper_pair_mask, upper_to_symmetric
from symgen.priors.base import Prior, PriorChannels
from symgen.shapes import PerGraph
from symgen.state import GeometricGraph

__all__ = ["GaussianPrior", "CenteredGaussianPrior"]


def _randn(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    # Draw in float64 so that float32 and float64 runs with one seed see the same numbers.
    return torch.randn(shape, generator=generator, dtype=torch.float64, device=like.device).to(
        like.dtype
    )


class GaussianPrior(Prior):
    """Isotropic Gaussian noise on positions (and, optionally, on node and edge features).

    ``pos_i ~ N(0, std² I_3)`` i.i.d. over real nodes. With ``features=True`` (the continuous
    one-hot relaxation of categorical channels) every real node feature is ``N(0, feature_std²)``
    and every unordered pair of distinct real nodes gets one ``N(0, feature_std² I_e)`` edge
    vector, copied to both ``(j, k)`` and ``(k, j)``; otherwise features are zero and not counted
    in :meth:`log_prob`.

    ``log p(x) = Σ_real log N(pos; 0, std²)``
    ``[+ Σ_real log N(node; 0, s²) + Σ_{j<k} log N(edge; 0, s²)]``.

    Examples:
        >>> t = GeometricGraph(torch.zeros(1, 3, 3), torch.zeros(1, 3, 2),
        ...                    torch.ones(1, 3, dtype=bool))
        >>> x = GaussianPrior(std=2.0).sample(t, generator=torch.Generator().manual_seed(0))
        >>> x.pos.shape, x.node.shape
        (torch.Size([1, 3, 3]), torch.Size([1, 3, 2]))
    """

    def __init__(
        self, std: float = 1.0, *, features: bool = True, feature_std: float = 1.0
    ) -> None:
        if not std > 0 or not feature_std > 0:
            raise ValueError(f"std and feature_std must be positive, got {std}, {feature_std}")
        self.std = float(std)
        self.features = bool(features)
        self.feature_std = float(feature_std)

    @property
    def channels(self) -> PriorChannels:
        features = "gaussian" if self.features else "none"
        return PriorChannels(pos="gaussian", node=features, edge=features)

    def _sample_pos(self, template: GeometricGraph, generator: torch.Generator | None) -> Tensor:
        m = template.mask[..., None].to(template.dtype)
        return self.std * _randn(tuple(template.pos.shape), template.pos, generator) * m

    def sample(
        self, template: GeometricGraph, *, generator: torch.Generator | None = None
    ) -> GeometricGraph:
        pos = self._sample_pos(template, generator)
        m = template.mask[..., None].to(template.dtype)
        if self.features:
            node = (
                self.feature_std * _randn(tuple(template.node.shape), template.node, generator) * m
            )
            edge = None
            if template.edge is not None:
                raw = self.feature_std * _randn(
                    tuple(template.edge.shape), template.edge, generator
                )
                edge = upper_to_symmetric(raw, template.mask)
        else:
            node = torch.zeros_like(template.node)
            edge = None if template.edge is None else torch.zeros_like(template.edge)
        return GeometricGraph.unchecked(pos=pos, node=node, mask=template.mask, edge=edge)

    def _pos_log_prob(self, x: GeometricGraph) -> Tensor:
        m = x.mask[..., None].to(x.dtype)
        sq = ((x.pos * m) ** 2).sum((1, 2))
        dof = 3 * x.num_nodes.to(x.dtype)
        return -0.5 * sq / self.std**2 - 0.5 * dof * math.log(2 * math.pi * self.std**2)

    def _feature_log_prob(self, x: GeometricGraph) -> Tensor:
        s2 = self.feature_std**2
        m = x.mask[..., None].to(x.dtype)
        sq = ((x.node * m) ** 2).sum((1, 2))
        dof = x.num_nodes.to(x.dtype) * x.node.shape[-1]
        if x.edge is not None:
            pm = upper_pair_mask(x.mask)[..., None].to(x.dtype)
            sq = sq + ((x.edge * pm) ** 2).sum((1, 2, 3))
            dof = dof + pm.sum((1, 2, 3)) * x.edge.shape[-1]
        return -0.5 * sq / s2 - 0.5 * dof * math.log(2 * math.pi * s2)

    def log_prob(self, x: GeometricGraph) -> PerGraph:
        lp = self._pos_log_prob(x)
        if self.features:
            lp = lp + self._feature_log_prob(x)
        return lp

    def __repr__(self) -> str:
        return f"{type(self).__name__}(std={self.std}, features={self.features})"


class CenteredGaussianPrior(GaussianPrior):
    """Gaussian on the zero-centre-of-mass subspace: invariant under S_n × SO(3) × T(3).

    Sampling draws ``pos ~ N(0, std² I)`` on the ``k`` real nodes and subtracts the centroid,
    which is the isotropic Gaussian restricted to the ``(k - 1)·3``-dimensional subspace
    ``{Σ_i pos_i = 0}``. The log-density is taken with respect to the Lebesgue measure of that
    subspace, after centring the input (so it is translation invariant by construction):

    ``log p(x) = -|x - x̄|² / (2 std²) - (k - 1)·3/2 · log(2π std²)``.

    Features, if ``features=True``, are as in :class:`GaussianPrior`.

    Examples:
        >>> t = GeometricGraph(torch.zeros(1, 4, 3), torch.zeros(1, 4, 1),
        ...                    torch.ones(1, 4, dtype=bool))
        >>> x = CenteredGaussianPrior().sample(t, generator=torch.Generator().manual_seed(0))
        >>> bool(x.pos.sum(1).abs().max() < 1e-5)
        True
    """

    centered = True

    def _sample_pos(self, template: GeometricGraph, generator: torch.Generator | None) -> Tensor:
        return masked_center(super()._sample_pos(template, generator), template.mask)

    def _pos_log_prob(self, x: GeometricGraph) -> Tensor:
        centred = masked_center(x.pos, x.mask)
        sq = (centred**2).sum((1, 2))
        dof = 3 * (x.num_nodes.to(x.dtype) - 1)
        return -0.5 * sq / self.std**2 - 0.5 * dof * math.log(2 * math.pi * self.std**2)
