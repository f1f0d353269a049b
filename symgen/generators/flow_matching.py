"""Flow matching: the affine process on the straight path, velocity prediction by default."""

from collections.abc import Mapping

from symgen.generators.prediction import Parametrization
from symgen.generators.process import AffineProcess, CategoricalMode
from symgen.generators.schedules import LinearSchedule, PathSchedule, TokenSchedule
from symgen.priors import CategoricalSpec

__all__ = ["FlowMatching"]


class FlowMatching(AffineProcess):
    """Conditional flow matching on the straight path ``x_t = (1 - t) x0 + t x1``.

    Continuous channels (positions, continuous node columns, and all features when there is no
    categorical spec) regress the conditional velocity ``u = x1 - x0``
    (``prediction="velocity"``) or the clean data ``x1`` (``prediction="data"``, the sampler
    then uses ``v̂ = (x̂1 - x_t) / (1 - t)`` with ``1 - t >= time_eps``). Categorical channels
    (``spec`` given, ``categorical="discrete"``) follow discrete flow matching on the token
    mixture path of ``token_schedule`` (default ``κ(t) = t``; e.g.
    ``PowerTokenSchedule(0.5)`` decides atom types and bonds before the geometry). Training
    times are uniform on ``[0, 1]``; the default solver is Euler. Everything else, including
    self-conditioning, the few-step ``shortcut`` objective and the sampler, is described in
    :class:`~symgen.generators.process.AffineProcess`.

    Examples:
        >>> fm = FlowMatching(prediction="velocity")
        >>> fm.schedule, fm.prediction, fm.default_solver
        (LinearSchedule(), 'velocity', 'euler')
    """

    def __init__(
        self,
        *,
        prediction: Parametrization = "velocity",
        spec: CategoricalSpec | None = None,
        categorical: CategoricalMode = "discrete",
        token_schedule: TokenSchedule | None = None,
        weights: Mapping[str, float] | None = None,
        self_conditioning: bool = False,
        time_eps: float = 1e-3,
        schedule: PathSchedule | None = None,
        shortcut: float = 0.0,
        shortcut_levels: int = 7,
    ) -> None:
        super().__init__(
            LinearSchedule() if schedule is None else schedule,
            prediction=prediction,
            spec=spec,
            categorical=categorical,
            token_schedule=token_schedule,
            weights=weights,
            self_conditioning=self_conditioning,
            time_eps=time_eps,
            exclude_data_time=False,
            floor=time_eps,
            default_solver="euler",
            shortcut=shortcut,
            shortcut_levels=shortcut_levels,
        )
