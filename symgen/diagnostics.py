"""Diagnostics: the conditional flow-matching variance V(t), and a toy symmetric domain.

For the linear path ``x_t = (1 - t) x0 + t x1`` with conditional velocity ``u = x1 - x0`` the
flow-matching loss of any network ``v`` decomposes as
``E|v(x_t, t) - u|² = E|v(x_t, t) - E[u | x_t]|² + V(t)``, with the conditional variance

``V(t) = E |u - E[u | x_t]|²``.

``V(t)`` is what no network can remove: ``∫_0^1 V(t) dt`` is the floor of the training loss.
Canonicalization removes the group mixture from the data distribution (every orbit is one
point instead of a rotated and relabelled cloud), and minibatch OT or alignment couplings
straighten the pairs; both lower ``V``. :func:`conditional_variance` measures it.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from symgen.couplings import Coupling, IndependentCoupling
from symgen.groups import permutation_rigid_group
from symgen.priors import Prior
from symgen.state import GeometricGraph

__all__ = ["ConditionalVariance", "conditional_variance", "TOY_SHAPES", "toy_shapes"]

#: Two fixed 6-point shapes with distinct pairwise distances (minimum gap 0.04) and well
#: separated principal moments: the toy symmetric domain of the tests and benchmarks.
TOY_SHAPES: tuple[tuple[tuple[float, float, float], ...], ...] = (
    (
        (-2.6, 0.0, 0.0),
        (-1.5, 0.5, 0.1),
        (-0.4, -0.3, 0.35),
        (0.7, 0.4, -0.2),
        (1.9, -0.6, 0.0),
        (3.0, 0.2, 0.6),
    ),
    (
        (-2.2, 0.3, 0.0),
        (-1.0, -0.7, 0.2),
        (0.0, 0.9, -0.3),
        (1.1, -0.2, 0.4),
        (2.3, 0.6, 0.8),
        (0.4, 0.0, -1.2),
    ),
)


def toy_shapes(
    num_samples: int,
    *,
    noise: float = 0.03,
    weights: Sequence[float] = (0.5, 0.5),
    symmetrize: bool = True,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> GeometricGraph:
    """Noisy, randomly rotated and relabelled copies of the :data:`TOY_SHAPES`.

    Sample ``i``: a shape ``c ~ Categorical(weights)``,
    ``y = shape_c - centroid + noise · N(0, I)``,
    then (with ``symmetrize``) a uniform permutation of the 6 points and a Haar rotation, and
    the result centred. The distribution is exactly invariant under S_6 × SE(3) (up to
    centring), and its invariants (e.g. sorted pairwise distances) are known from the shapes.
    Node features are one constant column.

    Examples:
        >>> x = toy_shapes(4, generator=torch.Generator().manual_seed(0))
        >>> tuple(x.pos.shape)
        (4, 6, 3)
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    shapes = torch.tensor(TOY_SHAPES, dtype=torch.float64)
    shapes = shapes - shapes.mean(1, keepdim=True)
    w = torch.as_tensor(weights, dtype=torch.float64)
    if w.shape != (len(TOY_SHAPES),) or bool((w < 0).any()) or not float(w.sum()) > 0:
        raise ValueError(
            f"weights must be {len(TOY_SHAPES)} non-negative numbers with positive sum"
        )
    which = torch.multinomial(w / w.sum(), num_samples, replacement=True, generator=generator)
    pos = shapes[which] + noise * torch.randn(
        num_samples, 6, 3, generator=generator, dtype=torch.float64
    )
    pos = pos - pos.mean(1, keepdim=True)
    x = GeometricGraph(
        pos=pos,
        node=torch.ones(num_samples, 6, 1, dtype=torch.float64),
        mask=torch.ones(num_samples, 6, dtype=torch.bool),
    )
    if symmetrize:
        G = permutation_rigid_group()
        x = G.act(G.sample(x, generator=generator), x)
    return x.to(dtype=dtype)


@dataclass(frozen=True)
class ConditionalVariance:
    """``V(t)`` on a time grid, per real coordinate (the normalization of the FM loss).

    Attributes:
        times: the times ``t`` (in ``[0, 1)``).
        variance: ``V(t) / (3k)``: conditional variance per coordinate.
        velocity_second_moment: ``E|u|² / (3k)`` (what ``V`` would be with no information).
        loss_floor: ``∫ V(t) dt`` per coordinate by the midpoint rule on the grid (exact grid
            when ``times`` are the cell midpoints ``(i + 0.5) / m``, as by default).
        estimator: ``"gaussian"`` or ``"knn"``.
    """

    times: Float[Tensor, " m"]
    variance: Float[Tensor, " m"]
    velocity_second_moment: Float[Tensor, " m"]
    loss_floor: float
    estimator: str


def _coupled_pairs(
    data: GeometricGraph,
    prior: Prior,
    coupling: Coupling,
    batch_size: int,
    generator: torch.Generator | None,
) -> tuple[Tensor, Tensor]:
    x0s, x1s = [], []
    for start in range(0, data.batch_size, batch_size):
        x1 = data.index(slice(start, start + batch_size))
        x0 = prior.sample(x1, generator=generator)
        c = coupling.couple(x0, x1, generator=generator)
        x0s.append(c.x0.pos)
        x1s.append(c.x1.pos)
    return torch.cat(x0s).flatten(1).to(torch.float64), torch.cat(x1s).flatten(1).to(torch.float64)


def _gaussian_posterior_mean(
    xt: Tensor, ref: Tensor, t: float, std: float, chunk: int = 1024
) -> Tensor:
    """``E[u | x_t]`` under the empirical data ``ref`` and an independent N(0, std²) prior."""
    out = []
    for s in range(0, xt.shape[0], chunk):
        q = xt[s : s + chunk]
        d2 = torch.cdist(q, t * ref) ** 2
        w = torch.softmax(-d2 / (2 * (1 - t) ** 2 * std**2), dim=1)
        m1 = w @ ref
        out.append((m1 - q) / (1 - t))
    return torch.cat(out)


def _knn_residual_variance(xt: Tensor, u: Tensor, k: int, chunk: int = 1024) -> Tensor:
    """Per-sample ``k/(k+1) |u_i - mean_{j ∈ kNN(i)} u_j|²`` (leave-one-out neighbours in x_t)."""
    out = []
    for s in range(0, xt.shape[0], chunk):
        q = xt[s : s + chunk]
        d = torch.cdist(q, xt)
        idx = torch.arange(s, s + q.shape[0])
        d[torch.arange(q.shape[0]), idx] = math.inf
        nn = d.topk(k, dim=1, largest=False).indices
        mean = u[nn].mean(1)
        out.append(k / (k + 1) * ((u[s : s + chunk] - mean) ** 2).sum(-1))
    return torch.cat(out)


def conditional_variance(
    data: GeometricGraph,
    prior: Prior,
    coupling: Coupling | None = None,
    *,
    times: Sequence[float] | None = None,
    estimator: Literal["gaussian", "knn"] = "knn",
    neighbours: int = 8,
    batch_size: int = 256,
    prior_std: float = 1.0,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> ConditionalVariance:
    """Estimate the conditional flow-matching variance ``V(t) = E|u - E[u | x_t]|²`` of positions.

    The data (graphs of one size ``k``; positions only) are paired with prior samples by
    ``coupling`` in minibatches of ``batch_size`` (as in training), giving pairs
    ``(x0_i, x1_i)``, ``x_t = (1 - t) x0 + t x1`` and ``u = x1 - x0``. Two estimators of
    ``E[u | x_t]``:

    * ``"gaussian"`` (independent coupling, Gaussian prior ``N(0, prior_std² I)`` or its
      centred version): the exact posterior over the data set given ``x_t``, by
      self-normalized weights ``w_j ∝ exp(-|x_t - t x1_j|² / (2 (1 - t)² prior_std²))`` and
      ``E[u | x_t] = Σ_j w_j (x1_j - x_t) / (1 - t)``. It treats the data set as the data
      distribution (exact for the empirical distribution; memorizes at t → 1).
    * ``"knn"`` (any coupling): the nearest-neighbour residual-variance estimator
      ``V ≈ E[k/(k+1) |u_i - mean_{j ∈ kNN(x_t^i)} u_j|²]`` over the other pairs (leave one out;
      unbiased when ``E[u | x_t]`` is locally constant, biased upwards by its variation).

    Compare conditions with the same estimator, data size and ``neighbours``.

    Examples:
        >>> from symgen.priors import CenteredGaussianPrior
        >>> x = toy_shapes(256, generator=torch.Generator().manual_seed(0))
        >>> cv = conditional_variance(x, CenteredGaussianPrior(features=False), times=[0.5],
        ...                           generator=torch.Generator().manual_seed(1))
        >>> cv.variance.shape
        torch.Size([1])
    """
    if estimator not in ("gaussian", "knn"):
        raise ValueError(f"unknown estimator {estimator!r}; choose 'gaussian' or 'knn'")
    sizes = data.num_nodes
    if not bool((sizes == sizes[0]).all()):
        raise ValueError(
            "conditional_variance needs graphs of one size (select a size class first)"
        )
    coupling = coupling if coupling is not None else IndependentCoupling()
    if estimator == "gaussian" and not coupling.independent:
        raise ValueError(
            "the 'gaussian' posterior is exact only for the independent coupling; use 'knn'"
        )
    if times is None:
        m = 10
        times = [(i + 0.5) / m for i in range(m)]
    ts = [float(t) for t in times]
    if any(not 0 <= t < 1 for t in ts):
        raise ValueError(f"times must lie in [0, 1), got {ts}")
    k = int(sizes[0])
    data = data.trim().zero_padding()
    x0, x1 = _coupled_pairs(data, prior, coupling, batch_size, generator)
    dof = 3 * k
    var, second = [], []
    for t in tqdm(ts, disable=not progress, desc="V(t)", leave=False):
        xt = (1 - t) * x0 + t * x1
        u = x1 - x0
        if estimator == "gaussian":
            res = ((u - _gaussian_posterior_mean(xt, x1, t, prior_std)) ** 2).sum(-1)
        else:
            res = _knn_residual_variance(xt, u, neighbours)
        var.append(float(res.mean()) / dof)
        second.append(float((u**2).sum(-1).mean()) / dof)
    v = torch.tensor(var, dtype=torch.float64)
    grid = torch.tensor(ts, dtype=torch.float64)
    return ConditionalVariance(
        times=grid,
        variance=v,
        velocity_second_moment=torch.tensor(second, dtype=torch.float64),
        loss_floor=float(v.mean()),
        estimator=estimator,
    )
