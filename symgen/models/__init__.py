"""Networks mapping a noisy :class:`~symgen.state.GeometricGraph` and a time to a prediction.

* :class:`CanonTransformer` — non-equivariant transformer for the canonical slice (CanonFlow);
* :class:`EGNN` — E(n)-equivariant GNN (Satorras et al., 2021; EDM baseline);
* :class:`E3NNNetwork` — SE(3)-equivariant tensor-product network (needs the ``e3nn`` extra;
  imported lazily so that ``import symgen.models`` does not import e3nn).

All implement :class:`symgen.network.GraphNetwork`; :func:`build_network` picks one by name.
"""

from typing import Any

from symgen.models.common import (
    GaussianBasis,
    TimeEmbedding,
    sinusoidal_embedding,
)
from symgen.models.egnn import EGNN, EGNNConfig
from symgen.models.registry import NETWORK_NAMES, build_network
from symgen.models.transformer import CanonTransformer, CanonTransformerConfig

__all__ = [
    "CanonTransformer",
    "CanonTransformerConfig",
    "EGNN",
    "EGNNConfig",
    "E3NNNetwork",
    "E3NNConfig",
    "NETWORK_NAMES",
    "build_network",
    "GaussianBasis",
    "TimeEmbedding",
    "sinusoidal_embedding",
]

_LAZY = {"E3NNNetwork", "E3NNConfig"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from symgen.models import e3nn_net

        return getattr(e3nn_net, name)
    raise AttributeError(f"module 'symgen.models' has no attribute {name!r}")
