"""The prior interface: noise shaped like a template batch, with a log-density and its channels."""

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from symgen.shapes import PerGraph
from symgen.state import GeometricGraph

__all__ = ["Prior", "PriorChannels", "Noise"]

#: What a prior draws on one channel: nothing (zeros), Gaussian noise, or categorical tokens
#: (one-hot or all-zero "masked" vectors).
Noise = Literal["none", "gaussian", "categorical"]


@dataclass(frozen=True)
class PriorChannels:
    """Which channels a prior draws, and from what.

    Attributes:
        pos: noise on positions.
        node: noise on node features (``"categorical"`` also allows continuous columns after
            the categorical blocks, drawn Gaussian).
        edge: noise on edge features.
    """

    pos: Noise
    node: Noise
    edge: Noise


class Prior(ABC):
    """A source distribution for generative processes on :class:`GeometricGraph` batches.

    ``sample(template)`` returns a batch with the template's shapes, dtype, device and mask,
    zero on padding (edges: zero on the diagonal and on pairs touching padding, symmetric).
    ``log_prob(x)`` is the per-graph log-density of the channels the prior models, in nats.

    Capabilities, asked for by processes and generators instead of checking classes:

    * :attr:`channels` — what the prior draws on positions, nodes and edges (a process checks
      it fits, e.g. discrete flow matching needs categorical node and edge tokens);
    * :attr:`centered` — sampled positions have zero centroid (translation-free priors); a
      generator with a centred prior keeps positions zero-CoM throughout;
    * :attr:`noise_prior` — the prior of the independent noise behind a draw (the prior itself,
      except for priors that transform their noise, such as an aligned prior); ancestral
      diffusion sampling draws its fresh noise from it;
    * :meth:`state_dict` / :meth:`load_state_dict` — fitted parameters (e.g. data marginals),
      saved with a generator so that a checkpoint restores them without the data.

    Examples:
        >>> from symgen.priors import CenteredGaussianPrior
        >>> t = GeometricGraph(torch.zeros(2, 4, 3), torch.zeros(2, 4, 1),
        ...                    torch.ones(2, 4, dtype=bool))
        >>> x = CenteredGaussianPrior().sample(t, generator=torch.Generator().manual_seed(0))
        >>> float(x.pos.sum(1).abs().max()) < 1e-5
        True
        >>> CenteredGaussianPrior(features=False).channels
        PriorChannels(pos='gaussian', node='none', edge='none')
    """

    centered: bool = False

    @property
    @abstractmethod
    def channels(self) -> PriorChannels:
        """What this prior draws on each channel."""

    @abstractmethod
    def sample(
        self, template: GeometricGraph, *, generator: torch.Generator | None = None
    ) -> GeometricGraph:
        """Noise shaped like ``template`` (same mask), zero on padding."""

    @abstractmethod
    def log_prob(self, x: GeometricGraph) -> PerGraph:
        """Per-graph log-density of ``x`` under the prior."""

    @property
    def noise_prior(self) -> "Prior":
        """The prior of the independent noise behind a draw (``self`` unless overridden)."""
        return self

    def state_dict(self) -> dict[str, Tensor]:
        """Fitted parameters as named tensors (none by default)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        """Restore :meth:`state_dict`; a prior without parameters accepts only an empty state."""
        if state:
            raise ValueError(f"{self!r} has no parameters, got state {sorted(state)}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
