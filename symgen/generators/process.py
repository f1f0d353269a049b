"""The affine process: a path schedule ⊥ a token schedule ⊥ a parametrization ⊥ a solver.

One implementation serves flow matching and diffusion: both move continuous channels along
``x_t = α_t x1 + σ_t x0`` and differ only in the schedule (straight or variance preserving),
in what the network predicts (velocity, clean data or noise) and in default settings
(:class:`~symgen.generators.FlowMatching`, :class:`~symgen.generators.VPDiffusion`).
Categorical channels either follow a token mixture path with their own schedule (discrete
flow matching, ``categorical="discrete"``) or are treated as continuous one-hot vectors
(``categorical="continuous"``, decoded by argmax at the end). The solver, number of steps,
time grid and token sampler settings are chosen when sampling
(:class:`~symgen.generators.SamplerOptions`).
"""

import math
from collections.abc import Mapping
from typing import Literal

import torch
from torch import Tensor
from tqdm.auto import tqdm

from symgen.conditioning import Context, FixedPart, guide
from symgen.generators.base import (
    LossOutput,
    Process,
    check_prediction,
    masked_edge_mse,
    masked_node_mse,
)
from symgen.generators.categorical import (
    argmax_tokens,
    decode_categorical,
    jump_tokens,
    mix_tokens,
    token_cross_entropy,
)
from symgen.generators.prediction import (
    ChannelLayout,
    Parametrization,
    Prediction,
    regression_target,
)
from symgen.generators.sampling import SamplerOptions, SolverName, StepContext, make_solver
from symgen.generators.schedules import PathSchedule, PowerTokenSchedule, TokenSchedule
from symgen.masking import node_weights, pair_mask, symmetrize_edges
from symgen.network import (
    GraphNetwork,
    supports_fixed_nodes,
    supports_self_conditioning,
    supports_step_size,
)
from symgen.priors import CategoricalSpec, Prior
from symgen.shapes import PerGraph
from symgen.state import GeometricGraph

__all__ = ["AffineProcess", "CategoricalMode"]

#: How categorical channels are generated: tokens on a mixture path, or continuous one-hot.
CategoricalMode = Literal["discrete", "continuous"]


class AffineProcess(Process):
    """Generation along the affine path ``x_t = α_t x1 + σ_t x0`` of a :class:`PathSchedule`.

    **Training** (:meth:`loss`): ``t ~ U[0, t_max)``; the path sample ``x_t`` (continuous
    channels on the path, tokens on the mixture path ``κ(t)`` of the token schedule); the
    network's prediction regresses the target of its parametrization (velocity
    ``α' x1 + σ' x0``, data ``x1`` or noise ``x0``) with a masked mean squared error, and the
    token logits the data tokens with a cross-entropy. Terms ``pos``, ``node``, ``edge`` are
    weighted by ``weights``.

    **Sampling** (:meth:`sample`): from ``prior.sample(template)`` over the times of the
    sampler options; each step evaluates the network once, moves the continuous channels with
    the chosen solver and the tokens with the jump sampler: a noisy token is revealed with
    probability ``(κ(s) - κ(t)) / (1 - κ(t))`` to a draw from ``softmax(logits / T)``. With
    re-noising ``η > 0`` the detailed-balance rate ``η p_t(y | x1)`` of the mixture path is
    added (Campbell et al. 2024): every marginal is unchanged but decided tokens may be
    re-noised and re-decided; in expectation over ``x1`` a token jumps with rate
    ``(κ'/(1-κ) + η κ) p(x1 = y | x_t) + η (1-κ) p_0(y)``, the last part drawn from the prior.
    On the last step every token is decided, by argmax or a draw (``final_tokens``).

    **Self-conditioning** (Chen et al. 2023, ``self_conditioning=True``): the network also
    receives its previous clean-data estimate (positions and continuous channels from the
    data view of the prediction, probabilities on token channels): in training, half of the
    batches first run the network without gradient to get it (the others get none); in
    sampling, each step passes the estimate of the step before. "No estimate" is an all-zero
    estimate, so every parameter is used in every step (as DistributedDataParallel requires).

    **Few-step training without a teacher** (shortcut models, Frans et al. 2024; ``shortcut``
    = the share ``f`` of each batch): the network also takes a step size ``d`` (see
    :func:`~symgen.network.supports_step_size`) and learns the average velocity over
    ``[t, t + d]``. A share ``1 - f`` of the graphs regresses the ordinary velocity target with
    ``d = 0``; the others (a random subset) draw ``d = 2^-k`` (``k`` uniform in
    ``0 .. shortcut_levels - 1``) and ``t`` uniform on the grid of multiples of ``d`` below 1,
    and regress the self-consistency target ``(v̂(x_t, t, d/2) + v̂(x', t + d/2, d/2)) / 2`` with
    ``x' = x_t + d/2 v̂(x_t, t, d/2)`` (no gradient; the finest half-step ``2^-shortcut_levels``
    is evaluated at ``d = 0``). The tokens of ``x'`` continue the mixture path from ``x_t`` to
    ``t + d/2`` (:meth:`shortcut_target`). Categorical channels
    keep their cross-entropy against the data on every graph: the posterior ``p(x1 | x_t)``
    they predict does not depend on the step size, and the jump sampler reveals each token
    with the exact probability of the step (:meth:`sample`); what a large step loses on tokens
    is their independence within the step, which the shortcut target does not address
    (docs/concepts/generators.md). Sampling with Euler steps of size ``h`` passes the nearest
    trained step size (:meth:`step_size_input`); other solvers pass ``d = 0``.

    **Fixed parts** (substructure conditioning, a :class:`~symgen.conditioning.FixedPart`):
    the fixed nodes' positions and features and the edges among fixed nodes hold their given
    values on every path state (training) and solver state (sampling), the network is told
    which nodes are fixed (``fixed=``, see :func:`~symgen.network.supports_fixed_nodes`), and
    the loss is taken over the other nodes and over pairs with at least one free end. This is
    inpainting with a network trained for it: the fixed entries are exact at every ``t``.
    Shortcut training does not support fixed parts.

    Edges are symmetric with a zero diagonal throughout: continuous edge predictions are
    symmetrized, token edges use one draw per unordered pair.

    Args:
        schedule: the path schedule of the continuous channels.
        prediction: what the network predicts on continuous channels (``"velocity"`` needs
            ``α σ' - σ α' ≠ 0`` on ``[0, 1)``, which a clamped VP schedule does not have).
        spec: layout of the categorical channels (``None``: everything continuous).
        categorical: ``"discrete"`` tokens or ``"continuous"`` one-hot relaxation.
        token_schedule: ``κ(t)`` of the token mixture path (default ``κ(t) = t``).
        weights: loss weights of the ``pos``, ``node`` and ``edge`` terms (default 1).
        self_conditioning: feed the network its previous estimate.
        time_eps: training times are drawn from ``[0, 1 - time_eps)`` when
            ``exclude_data_time``; conversions divide by at least ``floor``.
        exclude_data_time: see ``time_eps``.
        floor: smallest divisor in conversions between predictions.
        default_solver: the solver a generator samples with unless told otherwise.
        shortcut: share of each batch trained with the shortcut self-consistency target
            (0: off; needs ``prediction="velocity"`` and a network with a step-size input).
        shortcut_levels: number of step sizes ``2^-k``, ``k < shortcut_levels``, trained.
    """

    def __init__(
        self,
        schedule: PathSchedule,
        *,
        prediction: Parametrization,
        spec: CategoricalSpec | None = None,
        categorical: CategoricalMode = "discrete",
        token_schedule: TokenSchedule | None = None,
        weights: Mapping[str, float] | None = None,
        self_conditioning: bool = False,
        time_eps: float = 1e-3,
        exclude_data_time: bool = False,
        floor: float = 1e-12,
        default_solver: SolverName = "euler",
        shortcut: float = 0.0,
        shortcut_levels: int = 7,
    ) -> None:
        if not 0.0 <= shortcut < 1.0:
            raise ValueError(f"shortcut is a share of the batch in [0, 1), got {shortcut}")
        if shortcut > 0 and prediction != "velocity":
            raise ValueError("shortcut targets are average velocities: use prediction='velocity'")
        if shortcut_levels < 1:
            raise ValueError(f"shortcut_levels must be >= 1, got {shortcut_levels}")
        if prediction not in ("velocity", "data", "epsilon"):
            raise ValueError(
                f"unknown prediction {prediction!r}; choose 'velocity', 'data' or 'epsilon'"
            )
        if categorical not in ("discrete", "continuous"):
            raise ValueError(
                f"unknown categorical mode {categorical!r}; choose 'discrete' or 'continuous'"
            )
        unknown = sorted(set(weights or {}) - {"pos", "node", "edge"})
        if unknown:
            raise ValueError(f"unknown loss weight(s) {unknown}; the terms are pos, node, edge")
        if not 0 <= time_eps < 1:
            raise ValueError(f"time_eps must lie in [0, 1), got {time_eps}")
        if prediction == "velocity":
            grid = torch.linspace(0.0, 1.0 - time_eps, 101, dtype=torch.float64)
            if bool((schedule.determinant(grid).abs() < 1e-9).any()):
                raise ValueError(
                    f"velocity prediction is ill-posed on {schedule!r}: α σ' - σ α' vanishes "
                    "somewhere on [0, 1) (e.g. where a VP schedule clamps ᾱ), so the clean "
                    "data cannot be recovered from a velocity; predict 'epsilon' or 'data'"
                )
        self.schedule = schedule
        self.prediction: Parametrization = prediction
        self.spec = spec
        self.categorical: CategoricalMode = categorical
        self.token_schedule = token_schedule if token_schedule is not None else PowerTokenSchedule()
        self.weights = {"pos": 1.0, "node": 1.0, "edge": 1.0, **(weights or {})}
        self.self_conditioning = bool(self_conditioning)
        self.time_eps = float(time_eps)
        self.exclude_data_time = bool(exclude_data_time)
        self.floor = float(floor)
        self.default_solver = default_solver
        self.shortcut = float(shortcut)
        self.shortcut_levels = int(shortcut_levels)
        discrete = spec is not None and categorical == "discrete"
        self.layout = ChannelLayout(
            token_columns=spec.num_categorical_node_columns if discrete and spec else 0,
            token_edges=bool(discrete and spec is not None and spec.edge_classes is not None),
        )

    # ------------------------------------------------------------------ channels
    @property
    def discrete(self) -> bool:
        """Whether categorical channels are tokens on a mixture path."""
        return self.spec is not None and self.categorical == "discrete"

    def check_prior(self, prior: Prior) -> None:
        channels = prior.channels
        if channels.pos == "none":
            raise ValueError(
                f"{type(self).__name__} moves positions from noise: the prior must draw "
                "positions (e.g. CenteredGaussianPrior)"
            )
        if self.spec is None:
            return
        if self.discrete:
            wants_edges = self.spec.edge_classes is not None
            if channels.node != "categorical" or (wants_edges and channels.edge != "categorical"):
                raise ValueError(
                    "discrete tokens need categorical prior noise on the node and edge "
                    "channels, e.g. ProductPrior(CenteredGaussianPrior(features=False), "
                    "CategoricalPrior(spec, 'masked'))"
                )
        elif channels.node != "gaussian" or channels.edge not in ("gaussian", "none"):
            raise ValueError(
                f"{type(self).__name__} with categorical='continuous' treats categorical "
                "channels as continuous one-hot vectors (relaxation): use a Gaussian prior on "
                "features, e.g. CenteredGaussianPrior()"
            )

    # ------------------------------------------------------------------ path
    def interpolate(
        self,
        x0: GeometricGraph,
        x1: GeometricGraph,
        t: PerGraph,
        *,
        generator: torch.Generator | None = None,
    ) -> GeometricGraph:
        """A path sample at time ``t``: affine on continuous channels, mixture on tokens."""
        xt = self.schedule.alpha(t) * x1 + self.schedule.sigma(t) * x0
        node, edge = xt.node, xt.edge
        if self.discrete and self.spec is not None:
            kt = self.token_schedule.kappa(t)
            parts = [
                mix_tokens(x0.node[..., sl], x1.node[..., sl], kt, edges=False, generator=generator)
                for sl in self.spec.block_slices()
            ]
            node = torch.cat(parts + [node[..., self.layout.token_columns :]], -1)
            if self.layout.token_edges and x0.edge is not None and x1.edge is not None:
                edge = mix_tokens(x0.edge, x1.edge, kt, edges=True, generator=generator)
        m = node_weights(x1.mask, x1.dtype)
        return GeometricGraph.unchecked(xt.pos * m, node * m, x1.mask, edge)

    # ------------------------------------------------------------------ network
    def predict(
        self,
        model: GraphNetwork,
        x: GeometricGraph,
        t: PerGraph,
        cond: GeometricGraph | None = None,
        d: PerGraph | None = None,
        context: Context | None = None,
        guidance: float = 1.0,
        fixed: FixedPart | None = None,
    ) -> Prediction:
        """Evaluate the network at ``(x, t)`` (with the self-conditioning estimate ``cond``,
        for few-step objectives the step size ``d``, the per-graph ``context`` and the
        fixed-node mask of ``fixed``).

        With a context and ``guidance != 1`` the network runs twice, with the context and with
        it masked out, and the raw outputs (velocities or other regression outputs, logits) are
        mixed as ``u + w (c - u)`` (classifier-free guidance).
        """
        step: dict[str, object] = {}
        if d is not None:
            if not supports_step_size(model):
                raise ValueError(
                    "a step size needs a network that accepts d= (its attribute "
                    "step_size_input is true), e.g. CanonTransformer(step_size=True)"
                )
            step["d"] = d
        if self.self_conditioning:
            if not supports_self_conditioning(model):
                raise ValueError(
                    "self_conditioning=True needs a network that accepts cond= (its attribute "
                    "self_conditioning is true), e.g. CanonTransformer(self_condition=True)"
                )
            if cond is None:  # "no estimate yet" is an all-zero estimate (Chen et al. 2023)
                cond = x.map(torch.zeros_like)
            step["cond"] = cond
        if fixed is not None:
            if not supports_fixed_nodes(model):
                raise ValueError(
                    "a fixed part needs a network that accepts fixed= (its attribute "
                    "fixed_nodes_input is true), e.g. CanonTransformer(fixed_nodes=True)"
                )
            step["fixed"] = fixed.mask
        if context is None:
            raw = model(x, t, **step)  # type: ignore[call-arg]
        else:
            raw = model(x, t, context=context, **step)  # type: ignore[call-arg]
            if guidance != 1.0:
                uncond = model(x, t, context=context.unconditional(), **step)  # type: ignore[call-arg]
                check_prediction(uncond, x)
                raw = GeometricGraph.unchecked(
                    guide(raw.pos, uncond.pos, guidance),
                    guide(raw.node, uncond.node, guidance),
                    raw.mask,
                    None
                    if raw.edge is None or uncond.edge is None
                    else guide(raw.edge, uncond.edge, guidance),
                )
        check_prediction(raw, x)
        return Prediction(raw, x, t, self.schedule, self.prediction, self.layout, floor=self.floor)

    def estimate(self, pred: Prediction) -> GeometricGraph:
        """The clean-data estimate ``x̂1`` behind a prediction (the self-conditioning input).

        Continuous channels from the data view; categorical blocks and token edges as softmax
        probabilities; detached.
        """
        data = pred.data
        node, edge = data.node, data.edge
        if self.discrete and self.spec is not None:
            parts = [torch.softmax(pred.raw.node[..., sl], -1) for sl in self.spec.block_slices()]
            node = torch.cat(parts + [node[..., self.layout.token_columns :]], -1)
            if self.layout.token_edges and pred.raw.edge is not None:
                logits = symmetrize_edges(pred.raw.edge, pred.x.mask)
                edge = torch.softmax(logits, -1) * pair_mask(pred.x.mask)[..., None].to(
                    logits.dtype
                )
        m = node_weights(pred.x.mask, pred.x.dtype)
        return GeometricGraph.unchecked(
            (data.pos * m).detach(),
            (node * m).detach(),
            pred.x.mask,
            None if edge is None else edge.detach(),
        )

    # ------------------------------------------------------------------ loss
    def loss(
        self,
        model: GraphNetwork,
        x0: GeometricGraph,
        x1: GeometricGraph,
        *,
        generator: torch.Generator | None = None,
        context: Context | None = None,
        fixed: FixedPart | None = None,
    ) -> LossOutput:
        if self.spec is not None:
            self.spec.check(x1)
        if fixed is not None and self.shortcut > 0:
            raise ValueError("shortcut training does not support fixed parts (use shortcut=0)")
        b = x1.batch_size
        t = torch.rand(b, generator=generator, dtype=torch.float64, device=x1.device).to(x1.dtype)
        if self.exclude_data_time:
            t = t * (1 - self.time_eps)
        d, chosen = None, None
        if self.shortcut > 0:
            t, d, chosen = self._shortcut_times(t, generator)
        xt = self.interpolate(x0, x1, t, generator=generator)
        if fixed is not None:
            xt = fixed.clamp(xt)
        cond = None
        if self.self_conditioning:
            coin = torch.rand((), generator=generator, dtype=torch.float64, device=x1.device)
            if float(coin) < 0.5:
                with torch.no_grad():
                    cond = self.estimate(self.predict(model, xt, t, None, d, context, fixed=fixed))
        raw = self.predict(model, xt, t, cond, d, context, fixed=fixed).raw
        target = regression_target(self.prediction, self.schedule, x0, x1, t)
        if chosen is not None and len(chosen):
            assert d is not None
            target = self._with_shortcut_targets(
                model, target, x0, x1, xt, t, d, chosen, generator, context
            )
        mask, c = x1.mask, self.layout.token_columns
        pairs = None
        if fixed is not None:  # the loss is over free nodes and pairs with a free end
            pairs = fixed.free_pairs(mask)
            mask = fixed.free_nodes(mask)
        terms: dict[str, Tensor] = {"pos": masked_node_mse(raw.pos, target.pos, mask)}
        node_terms = []
        if self.discrete and self.spec is not None:
            for sl in self.spec.block_slices():
                node_terms.append(
                    token_cross_entropy(raw.node[..., sl], x1.node[..., sl], mask, edges=False)
                )
        if x1.node.shape[-1] > c:
            node_terms.append(masked_node_mse(raw.node[..., c:], target.node[..., c:], mask))
        if node_terms:
            terms["node"] = torch.stack(node_terms).sum()
        if x1.edge is not None and x0.edge is not None:
            assert raw.edge is not None and target.edge is not None
            if self.layout.token_edges:
                terms["edge"] = token_cross_entropy(
                    raw.edge, x1.edge, x1.mask, edges=True, pairs=pairs
                )
            else:
                sym = symmetrize_edges(raw.edge, x1.mask)
                terms["edge"] = masked_edge_mse(sym, target.edge, x1.mask, pairs)
        total = sum(self.weights[k] * v for k, v in terms.items())
        assert isinstance(total, Tensor)
        return LossOutput(total=total, terms=terms)

    # ------------------------------------------------------------------ few-step training
    def _shortcut_times(
        self, t: PerGraph, generator: torch.Generator | None
    ) -> tuple[PerGraph, PerGraph, Tensor]:
        """Times and step sizes: ``d = 2^-k`` with ``t`` on the grid of multiples of ``d`` for
        ``m`` randomly chosen graphs (``m = shortcut · b`` rounded, at least 1 and at most
        ``b - 1``), ``d = 0`` for the others; returns ``(t, d, indices of the chosen graphs)``.

        Batches may be sorted by size, so the chosen graphs are a random subset, not the first.
        """
        b, dev = t.shape[0], t.device
        m = min(b - 1, max(1, int(self.shortcut * b + 0.5))) if b > 1 else 0
        k = torch.randint(0, self.shortcut_levels, (b,), generator=generator, device=dev)
        step = torch.pow(2.0, -k.to(torch.float64))
        u = torch.rand(b, generator=generator, dtype=torch.float64, device=dev)
        on_grid = torch.floor(u / step) * step  # uniform over the multiples of d below 1
        order = torch.randperm(b, generator=generator, device=dev)
        chosen = torch.zeros(b, dtype=torch.bool, device=dev)
        chosen[order[:m]] = True
        t = torch.where(chosen, on_grid.to(t.dtype), t)
        d = torch.where(chosen, step, torch.zeros_like(step)).to(t.dtype)
        return t, d, chosen.nonzero().flatten()

    def step_size_input(self, h: float) -> float:
        """The step size a shortcut-trained network is asked for on an Euler step of size
        ``h``: the trained level ``2^-k`` nearest to ``h`` in log scale (exact on uniform grids
        of 1, 2, 4, ... steps), and 0 at or below the finest level ``2^-shortcut_levels``,
        which training represents by the instantaneous velocity.

        Examples:
            >>> fm = AffineProcess.__new__(AffineProcess); fm.shortcut_levels = 3
            >>> [fm.step_size_input(h) for h in (1.0, 0.5, 0.3, 0.1, 0.125, 0.01)]
            [1.0, 0.5, 0.25, 0.0, 0.0, 0.0]
        """
        if h <= 2.0**-self.shortcut_levels * (1 + 1e-6):
            return 0.0
        k = min(self.shortcut_levels - 1, max(0, round(-math.log2(h))))
        return 2.0**-k

    def shortcut_target(
        self,
        model: GraphNetwork,
        x0: GeometricGraph,
        x1: GeometricGraph,
        xt: GeometricGraph,
        t: PerGraph,
        d: PerGraph,
        *,
        generator: torch.Generator | None = None,
        context: Context | None = None,
    ) -> GeometricGraph:
        """The self-consistency target: the mean velocity of two half steps (no gradient).

        ``v1 = v̂(x_t, t, d/2)``, ``x' = x_t + d/2 v1`` (tokens: the mixture path continued from
        ``x_t`` to ``t + d/2``, each noisy token revealed with probability
        ``(κ(t + d/2) - κ(t)) / (1 - κ(t))``), ``v2 = v̂(x', t + d/2, d/2)``, target
        ``(v1 + v2) / 2`` on the continuous channels; half steps at or below
        ``2^-shortcut_levels`` are evaluated at ``d = 0``. The network gets no self-conditioning
        estimate in these evaluations.
        """
        half = 0.5 * d
        finest = 2.0**-self.shortcut_levels
        d_half = torch.where(half <= finest * (1 + 1e-6), torch.zeros_like(half), half)
        with torch.no_grad():
            v1 = self.predict(model, xt, t, None, d_half, context).velocity
            moved = xt + half * v1
            if self.discrete and self.spec is not None:
                k0, k1 = self.token_schedule.kappa(t), self.token_schedule.kappa(t + half)
                reveal = ((k1 - k0) / (1 - k0).clamp_min(1e-12)).clamp(0.0, 1.0)
                parts = [
                    mix_tokens(
                        xt.node[..., sl], x1.node[..., sl], reveal, edges=False, generator=generator
                    )  # fmt: skip
                    for sl in self.spec.block_slices()
                ]
                node = torch.cat(parts + [moved.node[..., self.layout.token_columns :]], -1)
                edge = moved.edge
                if self.layout.token_edges and xt.edge is not None and x1.edge is not None:
                    edge = mix_tokens(xt.edge, x1.edge, reveal, edges=True, generator=generator)
                m = node_weights(xt.mask, xt.dtype)
                moved = GeometricGraph.unchecked(moved.pos, node * m, moved.mask, edge)
            v2 = self.predict(model, moved, t + half, None, d_half, context).velocity
        return 0.5 * (v1 + v2)

    def _with_shortcut_targets(
        self,
        model: GraphNetwork,
        target: GeometricGraph,
        x0: GeometricGraph,
        x1: GeometricGraph,
        xt: GeometricGraph,
        t: PerGraph,
        d: PerGraph,
        chosen: Tensor,
        generator: torch.Generator | None,
        context: Context | None = None,
    ) -> GeometricGraph:
        """``target`` with the continuous channels of the ``chosen`` graphs replaced by their
        self-consistency targets."""
        sub = self.shortcut_target(
            model,
            x0.index(chosen),
            x1.index(chosen),
            xt.index(chosen),
            t[chosen],
            d[chosen],
            generator=generator,
            context=None if context is None else context.index(chosen),
        )
        c = self.layout.token_columns
        pos, node = target.pos.clone(), target.node.clone()
        pos[chosen] = sub.pos
        node[chosen, :, c:] = sub.node[..., c:]
        edge = target.edge
        if edge is not None and not self.layout.token_edges and sub.edge is not None:
            edge = edge.clone()
            edge[chosen] = sub.edge
        return GeometricGraph.unchecked(pos, node, target.mask, edge)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(
        self,
        model: GraphNetwork,
        prior: Prior,
        template: GeometricGraph,
        options: SamplerOptions,
        *,
        generator: torch.Generator | None = None,
        progress: bool = False,
        context: Context | None = None,
        guidance: float = 1.0,
        fixed: FixedPart | None = None,
    ) -> GeometricGraph:
        """Integrate from ``prior.sample(template)`` at t = 0 to data at t = 1 (conditioned on
        ``context`` with guidance scale ``guidance``, see :meth:`predict`; the entries of
        ``fixed`` held at their values on every state the network sees)."""
        times = options.times()
        x = prior.sample(template, generator=generator)
        if fixed is not None:
            fixed.check(x)
            x = fixed.clamp(x)
        b = x.batch_size
        solver = make_solver(options.solver)
        cond: GeometricGraph | None = None
        # a few-step-trained network: Euler steps ask for the average velocity over the step
        use_d = self.shortcut > 0 and options.shortcut and options.solver == "euler"
        trained_d = self.shortcut > 0  # such a network gets d = 0 from other solvers
        step_size = 0.0

        def field(y: GeometricGraph, tau: float) -> Prediction:
            tv = torch.full((b,), tau, dtype=y.dtype, device=y.device)
            dv = torch.full((b,), step_size, dtype=y.dtype, device=y.device) if trained_d else None
            if fixed is not None:  # intermediate solver states too
                y = fixed.clamp(y)
            return self.predict(model, y, tv, cond, dv, context, guidance, fixed)

        def fresh_noise() -> GeometricGraph:
            return prior.noise_prior.sample(template, generator=generator)

        steps = len(times) - 1
        # converting a data (or, on a VP path, a noise) prediction into a velocity divides by
        # zero (or multiplies by an infinite slope) at t = 1: solvers must not evaluate there
        singular = self.prediction == "data" or (
            self.prediction == "epsilon" and not self.schedule.smooth_at_data
        )
        for k in tqdm(range(steps), disable=not progress, desc="sampling", leave=False):
            t, s = times[k], times[k + 1]
            step_size = self.step_size_input(s - t) if use_d else 0.0
            pred = field(x, t)
            if self.self_conditioning:
                cond = self.estimate(pred)
            ctx = StepContext(
                schedule=self.schedule,
                last=k == steps - 1,
                singular_at_data=singular,
                fresh_noise=fresh_noise,
            )
            moved = solver.step(field, x, pred, t, s, ctx)
            x = self._jump(x, moved, pred, t, s, options, prior, generator)
            if fixed is not None:
                x = fixed.clamp(x)
        x = x.zero_padding()
        if self.spec is not None and not self.discrete:
            x = decode_categorical(x, self.spec)
        return x

    def _jump(
        self,
        x: GeometricGraph,
        moved: GeometricGraph,
        pred: Prediction,
        t: float,
        s: float,
        options: SamplerOptions,
        prior: Prior,
        generator: torch.Generator | None,
    ) -> GeometricGraph:
        """Tokens of ``x`` stepped from ``t`` to ``s``, written into the moved state."""
        if not self.discrete or self.spec is None:
            return moved
        logits = pred.raw
        token_edges = self.layout.token_edges and x.edge is not None and logits.edge is not None
        p = self.token_schedule.jump_probability(t, s)
        node = moved.node.clone()
        if p >= 1.0 and options.final_tokens == "argmax":
            for sl in self.spec.block_slices():
                node[..., sl] = argmax_tokens(logits.node[..., sl], x.mask, edges=False)
            edge = moved.edge
            if token_edges:
                edge = argmax_tokens(logits.edge, x.mask, edges=True)  # type: ignore[arg-type]
            return moved.replace(node=node, edge=edge)
        source, source_p = None, None
        eta = options.stochasticity
        if eta > 0 and p < 1.0:
            # jump masses of the step: towards the posterior, and the re-noising part
            k0, h = self.token_schedule.kappa_at(t), s - t
            w1, w0 = p + h * eta * k0, h * eta * (1.0 - k0)
            p = min(1.0, w1 + w0)
            source = prior.sample(moved, generator=generator)
            source_p = torch.full((x.batch_size,), w0 / (w1 + w0), dtype=x.dtype, device=x.device)
        jp = torch.full((x.batch_size,), p, dtype=x.dtype, device=x.device)
        temp = options.temperature
        for sl in self.spec.block_slices():
            node[..., sl] = jump_tokens(
                x.node[..., sl],
                logits.node[..., sl] / temp,
                jp,
                x.mask,
                edges=False,
                generator=generator,
                source=None if source is None else source.node[..., sl],
                source_prob=source_p,
            )
        edge = moved.edge
        if token_edges:
            edge = jump_tokens(
                x.edge,  # type: ignore[arg-type]
                logits.edge / temp,  # type: ignore[operator]
                jp,
                x.mask,
                edges=True,
                generator=generator,
                source=None if source is None else source.edge,
                source_prob=source_p,
            )
        return moved.replace(node=node, edge=edge)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(schedule={self.schedule!r}, prediction={self.prediction!r}, "
            f"spec={self.spec}, categorical={self.categorical!r})"
        )
