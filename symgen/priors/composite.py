"""Composite priors: canonically aligned noise, and positions × categorical features."""

from collections.abc import Mapping

import torch
from torch import Tensor

from symgen.canon.base import Canonicalizer
from symgen.priors.base import Prior, PriorChannels
from symgen.shapes import PerGraph
from symgen.state import GeometricGraph

__all__ = ["AlignedPrior", "ProductPrior"]


class AlignedPrior(Prior):
    """Prior noise put on the same canonical slice as the data: ``x0 = κ(z)``, ``z ~ base``.

    Choice and effect: the noise itself is canonicalized (centred, canonically ordered and in
    its canonical pose) with the canonicalizer used for the data, rather than aligning each
    noise sample to its data partner (that is :class:`~symgen.couplings.AlignedCoupling`).
    Both ends of every flow-matching path then live on the canonical slice, so the paths do not
    have to undo a random rotation/permutation mismatch between noise and data; the straight
    lines are shorter (lower transport cost and conditional variance) at no extra cost per
    pair. The same canonicalizer must be used at sampling time (it is: this prior does it).

    ``log_prob(x)`` is the base log-density at ``x``. For a G-invariant base this is the density
    of the whole orbit of ``x`` (constant along it), i.e. the pushforward density on the slice
    with respect to the quotient measure up to the orbit-volume factor, which does not depend
    on the prior. Flagged (near-tie) noise samples stay in their orbit, as the canonicalizer
    guarantees.

    Examples:
        >>> from symgen.canon import geometric_spectral_canonicalizer
        >>> from symgen.priors import CenteredGaussianPrior
        >>> canon = geometric_spectral_canonicalizer()
        >>> prior = AlignedPrior(CenteredGaussianPrior(features=False), canon)
    """

    def __init__(self, base: Prior, canonicalizer: Canonicalizer) -> None:
        self.base = base
        self.canonicalizer = canonicalizer
        self.centered = base.centered

    @property
    def channels(self) -> PriorChannels:
        return self.base.channels

    @property
    def noise_prior(self) -> Prior:
        """The base prior's noise: the aligned draw is a canonicalized copy of it."""
        return self.base.noise_prior

    def state_dict(self) -> dict[str, Tensor]:
        return self.base.state_dict()

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        self.base.load_state_dict(state)

    def sample(
        self, template: GeometricGraph, *, generator: torch.Generator | None = None
    ) -> GeometricGraph:
        z = self.base.sample(template, generator=generator)
        return self.canonicalizer.canonicalize(z).representative.zero_padding()

    def log_prob(self, x: GeometricGraph) -> PerGraph:
        return self.base.log_prob(x)

    def __repr__(self) -> str:
        return f"AlignedPrior({self.base!r}, {self.canonicalizer!r})"


class ProductPrior(Prior):
    """Independent positions and features: ``p(x) = p_pos(x.pos) · p_feat(x.node, x.edge)``.

    Positions come from ``position`` (a prior over positions only, e.g.
    ``CenteredGaussianPrior(features=False)`` or an :class:`AlignedPrior` around one), node and
    edge features from ``features`` (e.g. a :class:`~symgen.priors.CategoricalPrior`, whose
    positions are zero and unmodelled). ``log p = log p_pos + log p_feat``.

    Examples:
        >>> from symgen.priors import CategoricalPrior, CategoricalSpec, CenteredGaussianPrior
        >>> prior = ProductPrior(CenteredGaussianPrior(features=False),
        ...                      CategoricalPrior(CategoricalSpec((5, 3), 4), "masked"))
    """

    def __init__(self, position: Prior, features: Prior) -> None:
        if position.channels.node != "none" or position.channels.edge != "none":
            raise ValueError(
                "the position prior of a ProductPrior must not model features: use features=False"
            )
        self.position = position
        self.features = features
        self.centered = position.centered

    @property
    def channels(self) -> PriorChannels:
        f = self.features.channels
        return PriorChannels(pos=self.position.channels.pos, node=f.node, edge=f.edge)

    @property
    def noise_prior(self) -> Prior:
        position, features = self.position.noise_prior, self.features.noise_prior
        if position is self.position and features is self.features:
            return self
        return ProductPrior(position, features)

    def state_dict(self) -> dict[str, Tensor]:
        return {
            **{f"position.{k}": v for k, v in self.position.state_dict().items()},
            **{f"features.{k}": v for k, v in self.features.state_dict().items()},
        }

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        for prefix, prior in (("position.", self.position), ("features.", self.features)):
            prior.load_state_dict(
                {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            )
        unknown = [k for k in state if not k.startswith(("position.", "features."))]
        if unknown:
            raise ValueError(f"product prior state has unknown keys {unknown}")

    def sample(
        self, template: GeometricGraph, *, generator: torch.Generator | None = None
    ) -> GeometricGraph:
        p = self.position.sample(template, generator=generator)
        f = self.features.sample(template, generator=generator)
        return GeometricGraph.unchecked(pos=p.pos, node=f.node, mask=template.mask, edge=f.edge)

    def log_prob(self, x: GeometricGraph) -> PerGraph:
        return self.position.log_prob(x) + self.features.log_prob(x)

    def __repr__(self) -> str:
        return f"ProductPrior({self.position!r}, {self.features!r})"
