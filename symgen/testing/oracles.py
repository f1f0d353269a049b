"""Exact networks for known data distributions, to test samplers without training anything."""

import torch
from torch import nn

from symgen.generators.base import Process
from symgen.shapes import PerGraph
from symgen.state import GeometricGraph

__all__ = ["GaussianOracle"]


class GaussianOracle(nn.Module):
    """The exact prediction of an affine process when every data coordinate is ``N(μ, s²)``.

    ``process`` needs the affine path's ``schedule`` and its ``prediction`` (as
    :class:`~symgen.generators.AffineProcess` has).

    With positions ``x1 ~ N(μ, s²)`` and prior ``x0 ~ N(0, 1)`` independent per coordinate, the
    path sample ``x_t = α x1 + σ x0`` is Gaussian and
    ``E[x1 | x_t] = μ + α s² (x_t - α μ) / (α² s² + σ²)``,
    ``E[x0 | x_t] = (x_t - α E[x1|x_t]) / σ``; the network of the process's parametrization
    returns the matching one (the velocity ``α' E[x1|x_t] + σ' E[x0|x_t]``). A sampler driven
    by it must reproduce ``N(μ, s²)`` up to its discretization error. Node and edge outputs are
    zero (use data without feature channels, a prior with ``features=False``).

    Examples:
        >>> from symgen.generators import FlowMatching
        >>> oracle = GaussianOracle(FlowMatching(prediction="data"), mean=1.0, std=0.5)
        >>> x = GeometricGraph(torch.zeros(1, 1, 3), torch.zeros(1, 1, 1),
        ...                    torch.ones(1, 1, dtype=torch.bool))
        >>> oracle(x, torch.tensor([1.0])).pos.tolist()  # at t = 1, x_t is the data itself
        [[[0.0, 0.0, 0.0]]]
    """

    def __init__(self, process: Process, mean: float, std: float) -> None:
        super().__init__()
        self.process = process
        self.mean = float(mean)
        self.std = float(std)

    def forward(self, x: GeometricGraph, t: PerGraph) -> GeometricGraph:
        sch = self.process.schedule  # type: ignore[attr-defined]
        t64 = t.to(torch.float64)
        a, s = sch.alpha(t64)[:, None, None], sch.sigma(t64)[:, None, None]
        xt = x.pos.to(torch.float64)
        mu, v = self.mean, self.std**2
        data = mu + a * v * (xt - a * mu) / (a**2 * v + s**2)
        noise = (xt - a * data) / s.clamp_min(1e-12)
        kind = self.process.prediction  # type: ignore[attr-defined]
        if kind == "data":
            out = data
        elif kind == "epsilon":
            out = noise
        else:
            da, ds = sch.d_alpha(t64)[:, None, None], sch.d_sigma(t64)[:, None, None]
            out = da * data + ds * noise
        m = x.mask[..., None].to(torch.float64)
        edge = None if x.edge is None else torch.zeros_like(x.edge)
        return GeometricGraph.unchecked(
            (out * m).to(x.dtype), torch.zeros_like(x.node), x.mask, edge
        )
