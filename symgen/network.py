"""The protocol between generators and networks (the two sibling layers never import each other)."""

from typing import Protocol, runtime_checkable

from jaxtyping import Float
from torch import Tensor

from symgen.state import GeometricGraph

__all__ = ["GraphNetwork"]


@runtime_checkable
class GraphNetwork(Protocol):
    """A network mapping a noisy state and a time to a prediction in the same structure.

    ``net(x_t, t)`` takes a :class:`GeometricGraph` batch and per-graph times ``t`` in [0, 1] and
    returns a :class:`GeometricGraph` with the same mask whose ``pos`` is the positional
    prediction (velocity, clean positions or noise, as the generator asks), ``node`` the node
    prediction (logits or values over the node channels) and ``edge`` the edge prediction (or
    ``None`` if the data has no edges). Any ``torch.nn.Module`` with this call signature
    qualifies; for canonical-slice models, the slot index is the canonical rank of a node.
    """

    def __call__(self, x: GeometricGraph, t: Float[Tensor, " b"]) -> GeometricGraph: ...
