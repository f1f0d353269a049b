"""The protocol between generators and networks (the two sibling layers never import each other)."""

from typing import Protocol, runtime_checkable

from symgen.shapes import PerGraph
from symgen.state import GeometricGraph

__all__ = [
    "GraphNetwork",
    "context_width",
    "supports_fixed_nodes",
    "supports_self_conditioning",
    "supports_step_size",
]


@runtime_checkable
class GraphNetwork(Protocol):
    """A network mapping a noisy state and a time to a prediction in the same structure.

    ``net(x_t, t)`` takes a :class:`GeometricGraph` batch and per-graph times ``t`` in [0, 1] and
    returns a :class:`GeometricGraph` with the same mask whose ``pos`` is the positional
    prediction (velocity, clean positions or noise, as the generator asks), ``node`` the node
    prediction (logits or values over the node channels) and ``edge`` the edge prediction (or
    ``None`` if the data has no edges). Any ``torch.nn.Module`` with this call signature
    qualifies; for canonical-slice models, the slot index is the canonical rank of a node.

    Self-conditioning (optional): a network whose attribute ``self_conditioning`` is ``True``
    also accepts ``net(x_t, t, cond=x̂1)``, where ``x̂1`` is the process's previous estimate of
    the clean data (positions, and probabilities over the categorical channels) and
    ``cond=None`` means "no estimate yet". See :func:`supports_self_conditioning`.

    Step size (optional, for few-step objectives): a network whose attribute
    ``step_size_input`` is ``True`` also accepts ``net(x_t, t, d=d)`` with a per-graph step size
    ``d`` in [0, 1]; ``d = 0`` asks for the instantaneous velocity, ``d > 0`` for the average
    velocity over ``[t, t + d]`` (shortcut models). See :func:`supports_step_size`.

    Context (optional, for conditional generation): a network whose attribute ``context_dim``
    is a positive ``c`` also accepts ``net(x_t, t, context=ctx)`` with a
    :class:`~symgen.conditioning.Context` of ``c`` targets per graph; an all-masked context
    (or ``context=None``) asks for the unconditional prediction. See :func:`context_width`.

    Fixed nodes (optional, for substructure conditioning): a network whose attribute
    ``fixed_nodes_input`` is ``True`` also accepts ``net(x_t, t, fixed=mask)`` with a ``(b, n)``
    boolean mask of the nodes whose positions and features are given (clean at every ``t``).
    See :func:`supports_fixed_nodes`.
    """

    def __call__(self, x: GeometricGraph, t: PerGraph) -> GeometricGraph: ...


def supports_self_conditioning(net: object) -> bool:
    """Whether ``net`` accepts ``net(x_t, t, cond=...)`` (its ``self_conditioning`` is true).

    Examples:
        >>> supports_self_conditioning(object())
        False
    """
    return bool(getattr(net, "self_conditioning", False))


def supports_step_size(net: object) -> bool:
    """Whether ``net`` accepts ``net(x_t, t, d=...)`` (its ``step_size_input`` is true).

    Examples:
        >>> supports_step_size(object())
        False
    """
    return bool(getattr(net, "step_size_input", False))


def context_width(net: object) -> int:
    """How many context targets ``net`` accepts through ``net(x_t, t, context=...)`` (its
    ``context_dim``; 0: none).

    Examples:
        >>> context_width(object())
        0
    """
    return int(getattr(net, "context_dim", 0) or 0)


def supports_fixed_nodes(net: object) -> bool:
    """Whether ``net`` accepts ``net(x_t, t, fixed=mask)`` (its ``fixed_nodes_input`` is true).

    Examples:
        >>> supports_fixed_nodes(object())
        False
    """
    return bool(getattr(net, "fixed_nodes_input", False))
