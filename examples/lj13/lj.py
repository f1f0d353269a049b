"""Lennard-Jones clusters: energy, a vectorized Metropolis sampler, and evaluation metrics.

The LJ13 system of the equivariant-flow literature: 13 identical particles with the potential

    E(x) = Σ_{i<j} ε [ (r_m / r_ij)^12 - 2 (r_m / r_ij)^6 ] + (c / 2) Σ_i |x_i - x̄|²,

with ε = 1, r_m = 1 (the pair minimum sits at r = r_m with depth -ε), a harmonic confinement
c = 0.5 towards the centroid x̄ that keeps the cluster from evaporating, and temperature kT = 1.
The Boltzmann density p(x) ∝ exp(-E(x) / kT) is invariant under S_13 × SE(3).
"""

from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

__all__ = ["LJParams", "lj_energy", "metropolis_samples", "pair_distances", "wasserstein1"]


@dataclass(frozen=True)
class LJParams:
    """Parameters of the confined Lennard-Jones cluster (defaults: the LJ13 benchmark)."""

    num_particles: int = 13
    epsilon: float = 1.0
    r_min: float = 1.0
    confinement: float = 0.5
    temperature: float = 1.0


def lj_energy(pos: Float[Tensor, "b n 3"], params: LJParams = LJParams()) -> Float[Tensor, " b"]:
    """Energy E(x) of each configuration (see the module docstring for the formula)."""
    diff = pos[:, :, None, :] - pos[:, None, :, :]
    r2 = (diff**2).sum(-1)
    n = pos.shape[1]
    iu = torch.triu_indices(n, n, 1, device=pos.device)
    r2 = r2[:, iu[0], iu[1]].clamp_min(1e-6)
    inv6 = (params.r_min**2 / r2) ** 3
    pair = params.epsilon * (inv6**2 - 2 * inv6)
    centred = pos - pos.mean(1, keepdim=True)
    conf = 0.5 * params.confinement * (centred**2).sum((1, 2))
    return pair.sum(-1) + conf


def _pair_energy(r2: Tensor, params: LJParams) -> Tensor:
    """``ε [(r_m/r)^12 - 2 (r_m/r)^6]`` from squared distances (clamped away from 0)."""
    inv6 = (params.r_min**2 / r2.clamp_min(1e-6)) ** 3
    return params.epsilon * (inv6**2 - 2 * inv6)


def _confinement(pos: Tensor, params: LJParams) -> Tensor:
    centred = pos - pos.mean(1, keepdim=True)
    return 0.5 * params.confinement * (centred**2).sum((1, 2))


def metropolis_samples(
    num_samples: int,
    params: LJParams = LJParams(),
    *,
    chains: int = 256,
    burn_in: int = 6000,
    thin: int = 10,
    step: float = 0.3,
    moves: str = "particle",
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> Float[Tensor, "s n 3"]:
    """Equilibrium samples of the cluster by random-walk Metropolis, many chains in parallel.

    One *round* updates every chain once. With ``moves="particle"`` (default) a round moves one
    uniformly chosen particle ``k`` of each chain by ``N(0, step² I)`` and accepts with
    probability ``min(1, exp(-ΔE / kT))``, where ``ΔE`` needs only the ``n - 1`` pairs of ``k``
    and the confinement term (random-scan Metropolis, O(n) per round); with ``moves="all"``
    every particle moves at once (O(n²) per round, needs a much smaller step). The step size
    adapts during burn-in towards an acceptance rate near 0.3 (``moves="all"``) or 0.4
    (``moves="particle"``) and is frozen afterwards, so the sampled chain is a proper Metropolis
    chain. Chains start from a jittered cubic lattice of spacing ``r_min``. Samples are centred
    (zero centroid), taken every ``thin`` rounds after ``burn_in`` rounds; consecutive samples
    of one chain are correlated, samples of different chains are independent.

    Args:
        num_samples: number of configurations returned (``ceil(num / chains)`` per chain).
        params: the cluster's parameters.
        chains: parallel chains.
        burn_in: rounds discarded before the first sample.
        thin: rounds between two samples of one chain.
        step: initial proposal standard deviation (adapted during burn-in).
        moves: ``"particle"`` or ``"all"`` (see above).
        generator: source of all randomness.
        progress: show a progress bar.

    Returns:
        ``(num_samples, n, 3)`` float64 positions with zero centroid.

    Example:
        >>> x = metropolis_samples(8, chains=8, burn_in=50, thin=2, progress=False,
        ...                        generator=torch.Generator().manual_seed(0))
        >>> tuple(x.shape)
        (8, 13, 3)
    """
    if moves not in ("particle", "all"):
        raise ValueError(f"unknown moves {moves!r}; choose 'particle' or 'all'")
    for name, value in (("num_samples", num_samples), ("chains", chains), ("thin", thin)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if burn_in < 0 or not step > 0:
        raise ValueError(f"need burn_in >= 0 and step > 0, got {burn_in}, {step}")
    n = params.num_particles
    beta = 1.0 / params.temperature
    target_rate = 0.4 if moves == "particle" else 0.3
    if moves == "all":
        step = min(step, 0.05)
    # start from a jittered cubic lattice with spacing r_min: no overlaps
    side = int(np.ceil(n ** (1 / 3)))
    grid = torch.stack(
        torch.meshgrid(*[torch.arange(side, dtype=torch.float64)] * 3, indexing="ij"), -1
    )
    base = grid.reshape(-1, 3)[:n] * params.r_min
    x = base[None].repeat(chains, 1, 1) + 0.05 * torch.randn(
        chains, n, 3, generator=generator, dtype=torch.float64
    )
    x = x - x.mean(1, keepdim=True)
    e = lj_energy(x, params)
    rows = torch.arange(chains)
    rounds = burn_in + thin * int(np.ceil(num_samples / chains))
    out: list[Tensor] = []
    accepted = torch.zeros((), dtype=torch.float64)
    for it in tqdm(range(rounds), desc="LJ MCMC", disable=not progress, mininterval=1.0):
        noise = torch.randn(chains, 3, generator=generator, dtype=torch.float64)
        if moves == "particle":
            k = torch.randint(n, (chains,), generator=generator)
            old_k = x[rows, k]
            new_k = old_k + step * noise
            others = x  # the pair k-k is excluded below
            r2_old = ((others - old_k[:, None]) ** 2).sum(-1)
            r2_new = ((others - new_k[:, None]) ** 2).sum(-1)
            self_pair = torch.nn.functional.one_hot(k, n).bool()
            d_pair = torch.where(
                self_pair, 0.0, _pair_energy(r2_new, params) - _pair_energy(r2_old, params)
            ).sum(-1)
            proposal = x.clone()
            proposal[rows, k] = new_k
            d_conf = _confinement(proposal, params) - _confinement(x, params)
            e_new = e + d_pair + d_conf
        else:
            proposal = x + step * torch.randn(x.shape, generator=generator, dtype=torch.float64)
            e_new = lj_energy(proposal, params)
        u = torch.rand(chains, generator=generator, dtype=torch.float64)
        accept = torch.log(u) < -beta * (e_new - e)
        x = torch.where(accept[:, None, None], proposal, x)
        e = torch.where(accept, e_new, e)
        accepted += accept.double().mean()
        if it < burn_in and (it + 1) % 100 == 0:
            rate = float(accepted) / 100
            step *= float(np.exp(rate - target_rate))
            accepted.zero_()
        if (it + 1) % 1000 == 0:
            # E is translation invariant: re-centre (no drift), refresh E (no round-off drift)
            x = x - x.mean(1, keepdim=True)
            e = lj_energy(x, params)
        if it >= burn_in and (it - burn_in) % thin == thin - 1:
            out.append(x - x.mean(1, keepdim=True))
    return torch.cat(out)[:num_samples]


def pair_distances(pos: Float[Tensor, "b n 3"]) -> Float[Tensor, " m"]:
    """All interparticle distances of all configurations, flattened."""
    n = pos.shape[1]
    iu = torch.triu_indices(n, n, 1, device=pos.device)
    d = torch.cdist(pos, pos)
    return d[:, iu[0], iu[1]].reshape(-1)


def wasserstein1(a: Float[Tensor, " p"], b: Float[Tensor, " q"]) -> float:
    """1-Wasserstein distance between two empirical 1D distributions (scipy)."""
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(a.detach().cpu().numpy(), b.detach().cpu().numpy()))
