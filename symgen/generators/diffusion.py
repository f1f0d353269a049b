"""Variance-preserving diffusion with ε or x0 prediction, ancestral and DDIM samplers."""

from collections.abc import Mapping

import torch
from torch import Tensor
from tqdm.auto import tqdm

from symgen.generators.base import (
    LossOutput,
    Process,
    check_prediction,
    masked_edge_mse,
    masked_node_mse,
)
from symgen.generators.categorical import decode_categorical
from symgen.generators.schedules import CosineSchedule, NoiseSchedule
from symgen.network import GraphNetwork
from symgen.priors import AlignedPrior, CategoricalSpec, Prior, symmetrize_edges
from symgen.state import GeometricGraph

__all__ = ["VPDiffusion"]


def _combine(a: Tensor, x: GeometricGraph, b: Tensor, y: GeometricGraph) -> GeometricGraph:
    """``a x + b y`` channelwise, with per-graph scalars ``a`` and ``b``."""
    a3, b3 = a[:, None, None], b[:, None, None]
    edge = None
    if x.edge is not None and y.edge is not None:
        edge = a3[..., None] * x.edge + b3[..., None] * y.edge
    return GeometricGraph(
        pos=a3 * x.pos + b3 * y.pos, node=a3 * x.node + b3 * y.node, mask=x.mask, edge=edge
    )


class VPDiffusion(Process):
    """Variance-preserving Gaussian diffusion ``z_t = α_t x1 + σ_t ε`` (t = 0 noise, t = 1 data).

    ``ε`` is the prior sample (a centred Gaussian keeps positions zero-CoM; features are
    diffused too, as a continuous one-hot relaxation, so use a prior with ``features=True``).
    The network predicts ``ε`` (``prediction="epsilon"``, loss ``|ε̂ - ε|²``) or the data
    (``prediction="data"``, loss ``|x̂ - x1|²``); the other follows from
    ``z = α x̂ + σ ε̂``. Edge predictions are symmetrized. Training times are uniform on
    ``[0, 1 - time_eps]``.

    Samplers over the uniform grid ``t_k = k / N``, from step ``t`` to ``s > t``:

    * ``"ddim"`` (deterministic, η = 0): ``z_s = α_s x̂ + σ_s ε̂``, the first-order exponential
      integrator of the probability-flow ODE in ``λ = log(α/σ)``;
    * ``"dpm2m"`` (deterministic, second order; best with few steps): DPM-Solver++(2M) (Lu et
      al. 2022), ``z_s = (σ_s/σ_t) z_t + (α_s - σ_s α_t/σ_t) D`` with
      ``D = (1 + 1/(2r)) x̂_t - 1/(2r) x̂_prev``, ``r = (λ_t - λ_prev)/(λ_s - λ_t)`` (``D = x̂`` on the
      first and last steps);
    * ``"ancestral"`` (DDPM posterior): ``z_s ~ N(μ, v)`` with ``α_{t|s} = α_t / α_s``,
      ``σ²_{t|s} = σ_t² - α²_{t|s} σ_s²``,
      ``μ = α_{t|s} σ_s² / σ_t² · z_t + α_s σ²_{t|s} / σ_t² · x̂``,
      ``v = σ²_{t|s} σ_s² / σ_t²``; fresh noise comes from the prior (its base, for an aligned
      prior, since the forward process is Gaussian).

    With ``spec`` the categorical channels are decoded to one-hot by argmax at the end.

    Examples:
        >>> VPDiffusion(prediction="epsilon")
        VPDiffusion(schedule=CosineSchedule(s=0.008), prediction='epsilon', sampler='dpm2m')
    """

    def __init__(
        self,
        schedule: NoiseSchedule | None = None,
        *,
        prediction: str = "epsilon",
        sampler: str = "dpm2m",
        spec: CategoricalSpec | None = None,
        weights: Mapping[str, float] | None = None,
        time_eps: float = 1e-3,
        progress: bool = False,
    ) -> None:
        if prediction not in ("epsilon", "data"):
            raise ValueError(f"unknown prediction {prediction!r}; choose 'epsilon' or 'data'")
        if sampler not in ("ddim", "dpm2m", "ancestral"):
            raise ValueError(f"unknown sampler {sampler!r}; choose 'ddim', 'dpm2m' or 'ancestral'")
        self.schedule = schedule if schedule is not None else CosineSchedule()
        self.prediction = prediction
        self.sampler = sampler
        self.spec = spec
        self.weights = {"pos": 1.0, "node": 1.0, "edge": 1.0, **(weights or {})}
        self.time_eps = float(time_eps)
        self.progress = progress

    def loss(
        self,
        model: GraphNetwork,
        x0: GeometricGraph,
        x1: GeometricGraph,
        *,
        generator: torch.Generator | None = None,
    ) -> LossOutput:
        b = x1.batch_size
        t = torch.rand(b, generator=generator, dtype=torch.float64, device=x1.device).to(x1.dtype)
        t = t * (1 - self.time_eps)
        z = _combine(self.schedule.alpha(t), x1, self.schedule.sigma(t), x0)
        pred = model(z, t)
        check_prediction(pred, z)
        target = x0 if self.prediction == "epsilon" else x1
        terms: dict[str, Tensor] = {
            "pos": masked_node_mse(pred.pos, target.pos, x1.mask),
            "node": masked_node_mse(pred.node, target.node, x1.mask),
        }
        if x1.edge is not None and target.edge is not None:
            assert pred.edge is not None
            terms["edge"] = masked_edge_mse(
                symmetrize_edges(pred.edge, x1.mask), target.edge, x1.mask
            )
        total = sum(self.weights[k] * v for k, v in terms.items())
        assert isinstance(total, Tensor)
        return LossOutput(total=total, terms=terms)

    def _predict(
        self, model: GraphNetwork, z: GeometricGraph, t: Tensor
    ) -> tuple[GeometricGraph, GeometricGraph]:
        """``(x̂, ε̂)`` at ``(z, t)``."""
        pred = model(z, t)
        check_prediction(pred, z)
        if pred.edge is not None:
            pred = pred.replace(edge=symmetrize_edges(pred.edge, z.mask))
        a, s = self.schedule.alpha(t), self.schedule.sigma(t)
        if self.prediction == "epsilon":
            eps = pred
            x_hat = _combine(1 / a, z, -s / a, eps)
        else:
            x_hat = pred
            eps = _combine(1 / s.clamp_min(1e-12), z, -a / s.clamp_min(1e-12), x_hat)
        m = z.mask[..., None].to(z.dtype)
        x_hat = x_hat.replace(pos=x_hat.pos * m, node=x_hat.node * m)
        eps = eps.replace(pos=eps.pos * m, node=eps.node * m)
        return x_hat, eps

    @torch.no_grad()
    def sample(
        self,
        model: GraphNetwork,
        prior: Prior,
        template: GeometricGraph,
        *,
        num_steps: int,
        generator: torch.Generator | None = None,
    ) -> GeometricGraph:
        """Denoise from ``prior.sample(template)`` (t = 0) to data (t = 1) in ``num_steps``."""
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        noise_prior = prior.base if isinstance(prior, AlignedPrior) else prior
        z = prior.sample(template, generator=generator)
        b = z.batch_size
        prev: tuple[GeometricGraph, Tensor] | None = None
        for k in tqdm(range(num_steps), disable=not self.progress, desc="diffusion", leave=False):
            t = torch.full((b,), k / num_steps, dtype=z.dtype, device=z.device)
            s = torch.full((b,), (k + 1) / num_steps, dtype=z.dtype, device=z.device)
            x_hat, eps = self._predict(model, z, t)
            a_t, a_s = self.schedule.alpha(t), self.schedule.alpha(s)
            sg_t, sg_s = self.schedule.sigma(t), self.schedule.sigma(s)
            if self.sampler == "ddim":
                z = _combine(a_s, x_hat, sg_s, eps)
            elif self.sampler == "dpm2m":
                lam_t = torch.log(a_t / sg_t)
                last = k == num_steps - 1
                d = x_hat
                if prev is not None and not last:
                    r = (lam_t - prev[1]) / (torch.log(a_s / sg_s) - lam_t)
                    c = 1 / (2 * r)
                    d = _combine(1 + c, x_hat, -c, prev[0])
                if last:
                    z = d
                else:
                    z = _combine(sg_s / sg_t, z, a_s - sg_s * a_t / sg_t, d)
                prev = (x_hat, lam_t)
            else:
                a_ts = a_t / a_s
                var_ts = (sg_t**2 - a_ts**2 * sg_s**2).clamp_min(0.0)
                mean = _combine(a_ts * sg_s**2 / sg_t**2, z, a_s * var_ts / sg_t**2, x_hat)
                std = (var_ts * sg_s**2 / sg_t**2).clamp_min(0.0).sqrt()
                fresh = noise_prior.sample(template, generator=generator)
                z = _combine(torch.ones_like(std), mean, std, fresh)
        z = z.zero_padding()
        return decode_categorical(z, self.spec) if self.spec is not None else z

    def __repr__(self) -> str:
        return (
            f"VPDiffusion(schedule={self.schedule!r}, prediction={self.prediction!r}, "
            f"sampler={self.sampler!r})"
        )
