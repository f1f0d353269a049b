"""The prior interface: noise shaped like a template batch, with a log-density."""

from abc import ABC, abstractmethod

import torch

from symgen.shapes import NodeMask, PerGraph, Positions
from symgen.state import GeometricGraph

__all__ = ["Prior", "center_positions"]


def center_positions(pos: Positions, mask: NodeMask) -> Positions:
    """Subtract the masked centroid from the real nodes; padding becomes zero.

    ``pos'_i = (pos_i - (1/k) Σ_{j real} pos_j) · mask_i``.

    Examples:
        >>> p = torch.tensor([[[1., 0, 0], [3., 0, 0], [9., 9, 9]]])
        >>> center_positions(p, torch.tensor([[True, True, False]]))[0, :, 0].tolist()
        [-1.0, 1.0, 0.0]
    """
    m = mask[..., None].to(pos.dtype)
    k = m.sum(1, keepdim=True).clamp_min(1.0)
    centroid = (pos * m).sum(1, keepdim=True) / k
    return (pos - centroid) * m


class Prior(ABC):
    """A source distribution for generative processes on :class:`GeometricGraph` batches.

    ``sample(template)`` returns a batch with the template's shapes, dtype, device and mask,
    zero on padding (edges: zero on the diagonal and on pairs touching padding, symmetric).
    ``log_prob(x)`` is the per-graph log-density of the channels the prior models, in nats.

    Attributes:
        centered: whether sampled positions have zero centroid (translation-free priors); a
            generator with a centred prior keeps positions zero-CoM throughout.

    Examples:
        >>> from symgen.priors import CenteredGaussianPrior
        >>> t = GeometricGraph(torch.zeros(2, 4, 3), torch.zeros(2, 4, 1),
        ...                    torch.ones(2, 4, dtype=bool))
        >>> x = CenteredGaussianPrior().sample(t, generator=torch.Generator().manual_seed(0))
        >>> float(x.pos.sum(1).abs().max()) < 1e-5
        True
    """

    centered: bool = False

    @abstractmethod
    def sample(
        self, template: GeometricGraph, *, generator: torch.Generator | None = None
    ) -> GeometricGraph:
        """Noise shaped like ``template`` (same mask), zero on padding."""

    @abstractmethod
    def log_prob(self, x: GeometricGraph) -> PerGraph:
        """Per-graph log-density of ``x`` under the prior."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
