"""Prior (source) distributions for generative processes on geometric graphs.

* :class:`GaussianPrior`, :class:`CenteredGaussianPrior` — continuous noise (positions, and
  features for the continuous one-hot relaxation);
* :class:`CategoricalPrior` — uniform, masked (absorbing) or data-marginal tokens for the
  categorical channels described by a :class:`CategoricalSpec`;
* :class:`AlignedPrior` — noise canonicalized onto the data's canonical slice;
* :class:`ProductPrior` — positions from one prior, features from another.
"""

from symgen.priors.base import Noise, Prior, PriorChannels
from symgen.priors.categorical import CategoricalPrior, Source
from symgen.priors.composite import AlignedPrior, ProductPrior
from symgen.priors.gaussian import CenteredGaussianPrior, GaussianPrior
from symgen.priors.spec import CategoricalSpec

__all__ = [
    "Prior",
    "PriorChannels",
    "Noise",
    "CategoricalSpec",
    "GaussianPrior",
    "CenteredGaussianPrior",
    "CategoricalPrior",
    "Source",
    "AlignedPrior",
    "ProductPrior",
]
