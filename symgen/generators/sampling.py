"""Sampler settings and the ODE/SDE solvers of the continuous channels, chosen at sampling time.

A sampler run integrates from ``t = 0`` (prior) to ``t = 1`` (data) on a time grid. At each
step the process evaluates the network once at ``(x_t, t)`` (a
:class:`~symgen.generators.prediction.Prediction`); the solver moves the continuous channels
from ``t`` to ``s`` (possibly evaluating again), and the token sampler moves the categorical
channels (see :mod:`symgen.generators.process`). Every solver works on any affine path:

* ``"euler"``: ``x_s = x_t + h v̂(x_t, t)``, ``h = s - t``;
* ``"heun"``: ``x_s = x_t + h/2 (v̂(x_t, t) + v̂(x_t + h v̂, s))`` (an Euler step instead on a
  last step whose end the prediction cannot be converted at: a data prediction, or a noise
  prediction on a variance-preserving path, at t = 1);
* ``"midpoint"``: ``x_s = x_t + h v̂(x_t + h/2 v̂, t + h/2)``;
* ``"ddim"``: ``x_s = α_s x̂1 + σ_s x̂0`` (deterministic DDIM, η = 0; the first-order
  exponential integrator; on the straight path it equals Euler);
* ``"dpm2m"``: DPM-Solver++(2M) (Lu et al. 2022) in ``λ = log(α/σ)``:
  ``x_s = (σ_s/σ_t) x_t + (α_s - σ_s α_t/σ_t) D`` with ``D = (1 + 1/(2r)) x̂1_t - 1/(2r) x̂1_prev``,
  ``r = (λ_t - λ_prev)/(λ_s - λ_t)`` (``D = x̂1`` on the first and last steps);
* ``"ancestral"`` (DDPM posterior): ``x_s ~ N(μ, v)`` with ``α_{t|s} = α_t/α_s``,
  ``σ²_{t|s} = σ_t² - α²_{t|s} σ_s²``, ``μ = α_{t|s} σ_s²/σ_t² · x_t + α_s σ²_{t|s}/σ_t² · x̂1``,
  ``v = σ²_{t|s} σ_s²/σ_t²``; its fresh noise comes from the prior's
  :attr:`~symgen.priors.Prior.noise_prior`.
"""

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, get_args

import torch
from torch import Tensor

from symgen.generators.prediction import Prediction
from symgen.generators.schedules import PathSchedule
from symgen.state import GeometricGraph

__all__ = [
    "SolverName",
    "FinalTokens",
    "SamplerOptions",
    "StepContext",
    "Solver",
    "Euler",
    "Heun",
    "Midpoint",
    "DDIM",
    "DPMSolver2M",
    "Ancestral",
    "SOLVERS",
    "make_solver",
]

#: Names of the solvers of the continuous channels.
SolverName = Literal["euler", "heun", "midpoint", "ddim", "dpm2m", "ancestral"]
#: Read-out of categorical tokens at the last step: the most probable class or a draw.
FinalTokens = Literal["argmax", "sample"]


@dataclass(frozen=True)
class SamplerOptions:
    """Everything that sets how a trained model is sampled (none of it is trained).

    Attributes:
        steps: number of solver steps (network evaluations per step depend on the solver).
        solver: the solver of the continuous channels (see the module docstring).
        time_grid: the step times: a number ``p`` gives ``t_k = (k / steps)^p`` (``p = 1``
            uniform; ``p < 1`` denser near the data at ``t = 1``, ``p > 1`` denser near
            ``t = 0``); a sequence gives the times themselves (increasing from 0 to 1; it then
            sets the number of steps).
        temperature: divides the logits of the token draws (``< 1`` sharpens).
        stochasticity: rate ``η`` of the detailed-balance re-noising of tokens (0: none).
        final_tokens: read-out of tokens at the last step, ``"argmax"`` or ``"sample"``.
        shortcut: with a process trained with a few-step objective, Euler steps of size ``h``
            ask the network for the average velocity over the step (``d = h``); ``False``
            asks for the instantaneous velocity (``d = 0``: the ordinary many-step path of the
            same network). Other solvers always use ``d = 0``.

    Examples:
        >>> opts = SamplerOptions(steps=4, time_grid=0.5)
        >>> [round(t, 3) for t in opts.times()]
        [0.0, 0.5, 0.707, 0.866, 1.0]
        >>> opts.replace(solver="heun", steps=None).solver
        'heun'
    """

    steps: int = 50
    solver: SolverName = "euler"
    time_grid: float | tuple[float, ...] = 1.0
    temperature: float = 1.0
    stochasticity: float = 0.0
    final_tokens: FinalTokens = "argmax"
    shortcut: bool = True

    def __post_init__(self) -> None:
        if self.solver not in get_args(SolverName):
            raise ValueError(
                f"unknown solver {self.solver!r}; choose one of {list(get_args(SolverName))}"
            )
        if self.final_tokens not in get_args(FinalTokens):
            raise ValueError(f"unknown final_tokens {self.final_tokens!r}; choose argmax or sample")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if not self.stochasticity >= 0:
            raise ValueError(f"stochasticity must be >= 0, got {self.stochasticity}")
        grid = self.time_grid
        if isinstance(grid, (list, tuple)):
            times = tuple(float(t) for t in grid)
            if len(times) < 2 or times[0] != 0.0 or times[-1] != 1.0:
                raise ValueError("an explicit time grid must start at 0 and end at 1")
            if any(b <= a for a, b in zip(times[:-1], times[1:])):
                raise ValueError("an explicit time grid must be strictly increasing")
            object.__setattr__(self, "time_grid", times)
            object.__setattr__(self, "steps", len(times) - 1)
        elif not float(grid) > 0:
            raise ValueError(f"time_grid must be positive, got {grid}")
        if int(self.steps) < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")

    def times(self) -> list[float]:
        """The step times ``t_0 = 0 < t_1 < ... < t_steps = 1``."""
        if isinstance(self.time_grid, tuple):
            return list(self.time_grid)
        p = float(self.time_grid)
        return [(k / self.steps) ** p for k in range(self.steps + 1)]

    def replace(self, **changes: Any) -> "SamplerOptions":
        """A copy with the given settings changed; ``None`` values leave a setting as it is."""
        given = {k: v for k, v in changes.items() if v is not None}
        unknown = sorted(set(given) - set(self.__dataclass_fields__))
        if unknown:
            raise TypeError(f"unknown sampler option(s) {unknown}")
        if "time_grid" in given and not isinstance(given["time_grid"], (int, float)):
            given["time_grid"] = tuple(given["time_grid"])
        if isinstance(given.get("time_grid"), (int, float)) and isinstance(self.time_grid, tuple):
            given.setdefault("steps", self.steps)
        return replace(self, **given)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (lists for an explicit grid), for checkpoints and JSON records."""
        out = asdict(self)
        if isinstance(self.time_grid, tuple):
            out["time_grid"] = list(self.time_grid)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "SamplerOptions":
        """Inverse of :meth:`to_dict` (unknown keys are an error)."""
        return cls().replace(**dict(values))


Field = Callable[[GeometricGraph, float], Prediction]


@dataclass
class StepContext:
    """What a solver step may need besides the current state and prediction.

    Attributes:
        schedule: the path schedule (``α``, ``σ`` and their derivatives).
        last: this is the last step (it ends at ``t = 1``).
        singular_at_data: the prediction cannot be turned into a velocity at ``t = 1``
            (data prediction; noise prediction on a variance-preserving path), so a solver
            must not evaluate there.
        fresh_noise: draws new independent prior noise shaped like the batch (ancestral).
    """

    schedule: PathSchedule
    last: bool
    singular_at_data: bool
    fresh_noise: Callable[[], GeometricGraph] = field(repr=False)


def _per_graph(x: GeometricGraph, value: float) -> Tensor:
    return torch.full((x.batch_size,), value, dtype=x.dtype, device=x.device)


class Solver(ABC):
    """One step of the continuous channels from ``t`` to ``s``; may keep memory across steps.

    ``step(field, x, pred, t, s, ctx)``: ``pred`` is the prediction at ``(x, t)`` (already
    computed by the process); ``field(y, τ)`` evaluates the network again where a multi-stage
    solver needs it. A new solver object is made for every sampling run.
    """

    #: Network evaluations per step.
    evaluations: int = 1

    @abstractmethod
    def step(
        self,
        field: Field,
        x: GeometricGraph,
        pred: Prediction,
        t: float,
        s: float,
        ctx: StepContext,
    ) -> GeometricGraph:
        """The state at ``s`` (its token channels are overwritten by the token sampler)."""


class Euler(Solver):
    """``x_s = x_t + h v̂(x_t, t)``."""

    def step(self, field, x, pred, t, s, ctx):  # noqa: ANN001, ANN201
        return x + (s - t) * pred.velocity


class Heun(Solver):
    """``x_s = x_t + h/2 (v̂(x_t, t) + v̂(x_t + h v̂, s))``."""

    evaluations = 2

    def step(self, field, x, pred, t, s, ctx):  # noqa: ANN001, ANN201
        h = s - t
        v1 = pred.velocity
        if ctx.last and ctx.singular_at_data:
            return x + h * v1
        v2 = field(x + h * v1, s).velocity
        return x + h * (0.5 * (v1 + v2))


class Midpoint(Solver):
    """``x_s = x_t + h v̂(x_t + h/2 v̂, t + h/2)``."""

    evaluations = 2

    def step(self, field, x, pred, t, s, ctx):  # noqa: ANN001, ANN201
        h = s - t
        v2 = field(x + (0.5 * h) * pred.velocity, t + 0.5 * h).velocity
        return x + h * v2


class DDIM(Solver):
    """``x_s = α_s x̂1 + σ_s x̂0`` (deterministic, η = 0)."""

    def step(self, field, x, pred, t, s, ctx):  # noqa: ANN001, ANN201
        ss = _per_graph(x, s)
        return ctx.schedule.alpha(ss) * pred.data + ctx.schedule.sigma(ss) * pred.noise


class DPMSolver2M(Solver):
    """DPM-Solver++(2M): second order from the previous step's clean-data estimate."""

    def __init__(self) -> None:
        self._previous: tuple[GeometricGraph, Tensor] | None = None

    def step(self, field, x, pred, t, s, ctx):  # noqa: ANN001, ANN201
        sch = ctx.schedule
        tt, ss = _per_graph(x, t), _per_graph(x, s)
        a_t, a_s, sg_t, sg_s = sch.alpha(tt), sch.alpha(ss), sch.sigma(tt), sch.sigma(ss)
        lam_t = torch.log(a_t / sg_t)
        d = pred.data
        if self._previous is not None and not ctx.last:
            r = (lam_t - self._previous[1]) / (torch.log(a_s / sg_s) - lam_t)
            c = 1 / (2 * r)
            d = (1 + c) * pred.data - c * self._previous[0]
        self._previous = (pred.data, lam_t)
        if ctx.last:
            return d
        return (sg_s / sg_t) * x + (a_s - sg_s * a_t / sg_t) * d


class Ancestral(Solver):
    """A draw from the DDPM posterior ``q(x_s | x_t, x̂1)``."""

    def step(self, field, x, pred, t, s, ctx):  # noqa: ANN001, ANN201
        sch = ctx.schedule
        tt, ss = _per_graph(x, t), _per_graph(x, s)
        a_t, a_s, sg_t, sg_s = sch.alpha(tt), sch.alpha(ss), sch.sigma(tt), sch.sigma(ss)
        a_ts = a_t / a_s
        var_ts = (sg_t**2 - a_ts**2 * sg_s**2).clamp_min(0.0)
        mean = (a_ts * sg_s**2 / sg_t**2) * x + (a_s * var_ts / sg_t**2) * pred.data
        std = (var_ts * sg_s**2 / sg_t**2).clamp_min(0.0).sqrt()
        return mean + std * ctx.fresh_noise()


#: Solver classes by name.
SOLVERS: dict[str, type[Solver]] = {
    "euler": Euler,
    "heun": Heun,
    "midpoint": Midpoint,
    "ddim": DDIM,
    "dpm2m": DPMSolver2M,
    "ancestral": Ancestral,
}


def make_solver(name: SolverName | str) -> Solver:
    """A fresh solver by name (see :data:`SOLVERS`).

    Examples:
        >>> type(make_solver("heun")).__name__
        'Heun'
    """
    if name not in SOLVERS:
        raise ValueError(f"unknown solver {name!r}; choose one of {sorted(SOLVERS)}")
    return SOLVERS[name]()
