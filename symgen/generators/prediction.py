"""A network output read on an affine path: clean data, noise and velocity from any one of them.

On the path ``x_t = α_t x1 + σ_t x0`` (see :mod:`symgen.generators.schedules`) the network
predicts one of

* ``"velocity"``: ``u = α'_t x1 + σ'_t x0`` (flow matching's target),
* ``"data"``: the clean sample ``x1``,
* ``"epsilon"``: the noise ``x0`` (diffusion's ε),

and the other two follow from ``x_t``:

* from data ``D``: ``N = (x_t - α D) / σ``, ``V = α' D + σ' N``;
* from noise ``N``: ``D = (x_t - σ N) / α``, ``V = α' D + σ' N``;
* from velocity ``V``: ``D = (σ' x_t - σ V) / (α σ' - σ α')``,
  ``N = (α V - α' x_t) / (α σ' - σ α')``.

Only continuous channels take part; categorical token channels (node blocks and edges under
discrete flow matching) are zero in the three views and kept as logits in :attr:`raw`.
"""

from functools import cached_property
from typing import Literal

import torch

from symgen.generators.schedules import PathSchedule
from symgen.masking import node_weights, symmetrize_edges
from symgen.shapes import PerGraph
from symgen.state import GeometricGraph

__all__ = ["Parametrization", "Prediction", "ChannelLayout", "regression_target"]

#: What the network predicts on the continuous channels.
Parametrization = Literal["velocity", "data", "epsilon"]


class ChannelLayout:
    """Which channels are continuous: node columns from ``token_columns`` on, and the edges
    unless ``token_edges``.

    Examples:
        >>> lay = ChannelLayout(token_columns=2, token_edges=True)
        >>> x = GeometricGraph(torch.zeros(1, 2, 3), torch.ones(1, 2, 3),
        ...                    torch.ones(1, 2, dtype=torch.bool), torch.ones(1, 2, 2, 1))
        >>> y = lay.continuous(x)
        >>> y.node[0, 0].tolist(), float(y.edge.abs().sum())
        ([0.0, 0.0, 1.0], 0.0)
    """

    def __init__(self, token_columns: int = 0, token_edges: bool = False) -> None:
        if token_columns < 0:
            raise ValueError(f"token_columns must be >= 0, got {token_columns}")
        self.token_columns = int(token_columns)
        self.token_edges = bool(token_edges)

    def continuous(self, g: GeometricGraph, *, symmetrize: bool = False) -> GeometricGraph:
        """``g`` with token channels zeroed (and continuous edges symmetrized if asked)."""
        node = g.node
        c = self.token_columns
        if c:
            node = torch.cat([torch.zeros_like(node[..., :c]), node[..., c:]], -1)
        edge = g.edge
        if edge is not None:
            if self.token_edges:
                edge = torch.zeros_like(edge)
            elif symmetrize:
                edge = symmetrize_edges(edge, g.mask)
        return GeometricGraph.unchecked(g.pos, node, g.mask, edge)


class Prediction:
    """The network's output at ``(x_t, t)`` with its data, noise and velocity views.

    Args:
        raw: the network output (token channels: logits).
        x: the state ``x_t`` it was made at.
        t: per-graph times.
        schedule: the path schedule.
        parametrization: what ``raw`` predicts on the continuous channels.
        layout: which channels are continuous.
        floor: lower bound on the divisor (``σ`` or ``α``) of a conversion, so that a
            conversion at ``t = 1`` (``σ = 0``) or ``t = 0`` (``α = 0``) stays finite.

    The views are computed on first use and cached.

    Examples:
        >>> from symgen.generators.schedules import LinearSchedule
        >>> x = GeometricGraph(torch.ones(1, 2, 3), torch.zeros(1, 2, 1),
        ...                    torch.ones(1, 2, dtype=torch.bool))
        >>> v = x.replace(pos=torch.full((1, 2, 3), 2.0))
        >>> p = Prediction(v, x, torch.tensor([0.5]), LinearSchedule(), "velocity")
        >>> p.data.pos[0, 0].tolist()  # x + (1 - t) v
        [2.0, 2.0, 2.0]
    """

    def __init__(
        self,
        raw: GeometricGraph,
        x: GeometricGraph,
        t: PerGraph,
        schedule: PathSchedule,
        parametrization: Parametrization,
        layout: ChannelLayout | None = None,
        *,
        floor: float = 1e-12,
    ) -> None:
        if parametrization not in ("velocity", "data", "epsilon"):
            raise ValueError(
                f"unknown prediction {parametrization!r}; choose velocity, data or epsilon"
            )
        self.raw = raw
        self.x = x
        self.t = t
        self.schedule = schedule
        self.parametrization = parametrization
        self.layout = layout if layout is not None else ChannelLayout()
        self.floor = float(floor)

    def _masked(self, g: GeometricGraph) -> GeometricGraph:
        m = node_weights(g.mask, g.dtype)
        return g.replace(pos=g.pos * m, node=g.node * m)

    @cached_property
    def _out(self) -> GeometricGraph:
        return self.layout.continuous(self.raw, symmetrize=True)

    @cached_property
    def _x(self) -> GeometricGraph:
        return self.layout.continuous(self.x)

    @cached_property
    def data(self) -> GeometricGraph:
        """The clean-data estimate ``x̂1`` on the continuous channels."""
        if self.parametrization == "data":
            return self._out
        a, s = self.schedule.alpha(self.t), self.schedule.sigma(self.t)
        if self.parametrization == "epsilon":
            return self._masked((self._x - s * self._out) / a.clamp_min(self.floor))
        ds, det = self.schedule.d_sigma(self.t), self.schedule.determinant(self.t)
        return self._masked((ds * self._x - s * self._out) / det)

    @cached_property
    def noise(self) -> GeometricGraph:
        """The noise estimate ``x̂0`` (diffusion's ε̂) on the continuous channels."""
        if self.parametrization == "epsilon":
            return self._out
        a, s = self.schedule.alpha(self.t), self.schedule.sigma(self.t)
        if self.parametrization == "data":
            return self._masked((self._x - a * self._out) / s.clamp_min(self.floor))
        da, det = self.schedule.d_alpha(self.t), self.schedule.determinant(self.t)
        return self._masked((a * self._out - da * self._x) / det)

    @cached_property
    def velocity(self) -> GeometricGraph:
        """The velocity ``û = α' x̂1 + σ' x̂0`` on the continuous channels (zero on tokens)."""
        if self.parametrization == "velocity":
            return self._masked(self._out)
        da, ds = self.schedule.d_alpha(self.t), self.schedule.d_sigma(self.t)
        return self._masked(da * self.data + ds * self.noise)


def regression_target(
    parametrization: Parametrization,
    schedule: PathSchedule,
    x0: GeometricGraph,
    x1: GeometricGraph,
    t: PerGraph,
) -> GeometricGraph:
    """``x1`` (data), ``x0`` (epsilon) or ``α'_t x1 + σ'_t x0`` (velocity), channelwise.

    Examples:
        >>> from symgen.generators.schedules import LinearSchedule
        >>> x0 = GeometricGraph(torch.zeros(1, 1, 3), torch.zeros(1, 1, 1),
        ...                     torch.ones(1, 1, dtype=torch.bool))
        >>> x1 = x0.replace(pos=torch.ones(1, 1, 3))
        >>> regression_target("velocity", LinearSchedule(), x0, x1, torch.tensor([0.3])).pos
        tensor([[[1., 1., 1.]]])
    """
    if parametrization == "data":
        return x1
    if parametrization == "epsilon":
        return x0
    return schedule.d_alpha(t) * x1 + schedule.d_sigma(t) * x0
