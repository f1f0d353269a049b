"""Variance-preserving diffusion: the affine process on a VP schedule, ε prediction by default."""

from collections.abc import Mapping

from symgen.generators.prediction import Parametrization
from symgen.generators.process import AffineProcess, CategoricalMode
from symgen.generators.schedules import CosineSchedule, NoiseSchedule, TokenSchedule
from symgen.priors import CategoricalSpec

__all__ = ["VPDiffusion"]


class VPDiffusion(AffineProcess):
    """Variance-preserving Gaussian diffusion ``z_t = α_t x1 + σ_t ε`` (t = 0 noise, t = 1 data).

    ``ε`` is the prior sample (a centred Gaussian keeps positions zero-CoM). The network
    predicts ``ε`` (``prediction="epsilon"``, loss ``|ε̂ - ε|²``), the data
    (``prediction="data"``, loss ``|x̂ - x1|²``) or the velocity; the others follow from
    ``z = α x̂ + σ ε̂`` (:mod:`symgen.generators.prediction`). Categorical channels are by
    default diffused as continuous one-hot vectors (``categorical="continuous"``: use a prior
    with Gaussian features, e.g. ``CenteredGaussianPrior()``) and decoded by argmax at the end;
    ``categorical="discrete"`` puts them on a token mixture path instead. Training times are
    uniform on ``[0, 1 - time_eps)``. The default solver is DPM-Solver++(2M); ``"ddim"`` and
    ``"ancestral"`` are the classic samplers (:mod:`symgen.generators.sampling`).

    Examples:
        >>> d = VPDiffusion(prediction="epsilon")
        >>> d.schedule, d.prediction, d.categorical, d.default_solver
        (CosineSchedule(s=0.008), 'epsilon', 'continuous', 'dpm2m')
    """

    def __init__(
        self,
        schedule: NoiseSchedule | None = None,
        *,
        prediction: Parametrization = "epsilon",
        spec: CategoricalSpec | None = None,
        categorical: CategoricalMode = "continuous",
        token_schedule: TokenSchedule | None = None,
        weights: Mapping[str, float] | None = None,
        self_conditioning: bool = False,
        time_eps: float = 1e-3,
    ) -> None:
        super().__init__(
            CosineSchedule() if schedule is None else schedule,
            prediction=prediction,
            spec=spec,
            categorical=categorical,
            token_schedule=token_schedule,
            weights=weights,
            self_conditioning=self_conditioning,
            time_eps=time_eps,
            exclude_data_time=True,
            floor=1e-12,
            default_solver="dpm2m",
        )
