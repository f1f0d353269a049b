"""Generator and process interfaces, the loss record and the masked losses."""

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from symgen.conditioning import Context, FixedPart
from symgen.generators.sampling import FinalTokens, SamplerOptions, SolverName
from symgen.masking import masked_center, node_weights, pair_mask, per_graph_mean
from symgen.network import (
    GraphNetwork,
    context_width,
    supports_fixed_nodes,
    supports_self_conditioning,
    supports_step_size,
)
from symgen.precision import Precision, check_precision, network_autocast
from symgen.priors import Prior
from symgen.shapes import EdgeFeatures, NodeMask, PerGraph
from symgen.state import GeometricGraph, is_strict_validation

__all__ = [
    "LossOutput",
    "Process",
    "Generator",
    "NetworkAdapter",
    "masked_node_mse",
    "masked_edge_mse",
    "check_prediction",
]


@dataclass(frozen=True)
class LossOutput:
    """A training loss: the scalar to minimise and its per-channel terms (unweighted).

    Attributes:
        total: ``Σ_c weight_c · terms[c]``, a scalar tensor with gradients.
        terms: per-channel losses, e.g. ``{"pos": ..., "node": ..., "edge": ...}`` (scalars).
    """

    total: Tensor
    terms: dict[str, Tensor]

    def item(self) -> dict[str, float]:
        """Plain floats of ``total`` and every term, for logging."""
        return {
            "total": float(self.total.detach()),
            **{k: float(v.detach()) for k, v in self.terms.items()},
        }


def check_prediction(
    pred: GeometricGraph, x: GeometricGraph, node_width: int | None = None
) -> None:
    """Raise ``ValueError`` unless the network's output matches the input's layout.

    Shapes are always compared; the masks' values only under strict validation (comparing
    them costs a device synchronization on every network call).
    """
    if not isinstance(pred, GeometricGraph):
        raise ValueError(f"the network must return a GeometricGraph, got {type(pred).__name__}")
    if pred.pos.shape != x.pos.shape or pred.mask.shape != x.mask.shape:
        raise ValueError("the network's prediction must have the input's positions shape and mask")
    if is_strict_validation() and not torch.equal(pred.mask, x.mask):
        raise ValueError("the network's prediction must keep the input's mask")
    want = x.node.shape[-1] if node_width is None else node_width
    if pred.node.shape[-1] != want:
        raise ValueError(
            f"the network predicted {pred.node.shape[-1]} node columns, expected {want}"
        )
    if x.edge is not None and (pred.edge is None or pred.edge.shape != x.edge.shape):
        raise ValueError("the data has edges, so the network must predict edges of the same shape")


def masked_node_mse(
    a: Float[Tensor, "b n c"], b: Float[Tensor, "b n c"], mask: NodeMask
) -> Float[Tensor, ""]:
    """Mean squared error over real nodes and columns, averaged per graph then over graphs."""
    m = node_weights(mask, a.dtype).expand_as(a)
    return per_graph_mean(((a - b) ** 2) * m, m)


def masked_edge_mse(
    a: EdgeFeatures, b: EdgeFeatures, mask: NodeMask, pairs: Tensor | None = None
) -> Float[Tensor, ""]:
    """Mean squared error over ordered pairs of distinct real nodes (or over the ``(b, n, n)``
    boolean ``pairs`` when given), per graph then over graphs."""
    chosen = pair_mask(mask) if pairs is None else pairs
    m = chosen[..., None].to(a.dtype).expand_as(a)
    return per_graph_mean(((a - b) ** 2) * m, m)


class NetworkAdapter(torch.nn.Module):
    """The network as a generator calls it: its output conventions and its precision.

    * ``center=True`` (used whenever the prior is centred): the positional output gets zero
      centroid over real nodes, ``pos_out ← pos_out - mean_real(pos_out)``, so velocities,
      clean-position and noise predictions stay in the zero-CoM subspace where both ends of the
      path live (the equivariant baseline needs this; for canonical models it is harmless);
    * ``precision="bfloat16"``: the network runs under bfloat16 autocast (its weights stay
      float32) and its outputs are cast back to the input's dtype, so that everything after
      the network (losses, conversions, solver states) stays in full precision
      (:mod:`symgen.precision`). ``"float32"`` calls the network as it is;
    * :meth:`use_compile`: calls go through ``torch.compile(model, dynamic=True)`` (the module,
      its parameters and state dict are unchanged; graph sizes and batch sizes vary freely).

    Examples:
        >>> from symgen.models import build_network
        >>> net = NetworkAdapter(build_network("egnn", node_in=1, node_out=1, width=8, depth=1),
        ...                      center=True, precision="bfloat16")
        >>> x = GeometricGraph(torch.randn(2, 4, 3), torch.zeros(2, 4, 1),
        ...                    torch.ones(2, 4, dtype=torch.bool))
        >>> out = net(x, torch.rand(2))
        >>> out.dtype, bool(out.pos.sum(1).abs().max() < 1e-4)
        (torch.float32, True)
    """

    def __init__(
        self, model: GraphNetwork, *, center: bool = False, precision: Precision = "float32"
    ) -> None:
        super().__init__()
        self.model = model
        self.center = bool(center)
        self.precision = precision
        self.self_conditioning = supports_self_conditioning(model)
        self.step_size_input = supports_step_size(model)
        self.context_dim = context_width(model)
        self.fixed_nodes_input = supports_fixed_nodes(model)
        self._compiled: Any = None

    @property
    def precision(self) -> Precision:
        """``"float32"`` or ``"bfloat16"`` (autocast, float32 weights); checked when set."""
        return self._precision

    @precision.setter
    def precision(self, value: Precision) -> None:
        check_precision(value)
        self._precision = value

    @property
    def compiled(self) -> bool:
        """Whether calls go through ``torch.compile``."""
        return self._compiled is not None

    def use_compile(self, enabled: bool = True) -> None:
        """Route calls through ``torch.compile(model, dynamic=True)`` (or back, with ``False``).

        The first calls compile (minutes on a CPU; later runs reuse inductor's on-disk cache);
        gradient and no-gradient calls, and each precision, compile once each.
        """
        # kept outside the module tree: the compiled wrapper adds no parameters or state keys
        object.__setattr__(
            self, "_compiled", torch.compile(self.model, dynamic=True) if enabled else None
        )

    def forward(
        self,
        x: GeometricGraph,
        t: PerGraph,
        cond: GeometricGraph | None = None,
        *,
        d: PerGraph | None = None,
        context: Context | None = None,
        fixed: NodeMask | None = None,
    ) -> GeometricGraph:
        model = self.model if self._compiled is None else self._compiled
        kwargs: dict[str, Any] = {} if cond is None else {"cond": cond}
        if fixed is not None:
            if not self.fixed_nodes_input:
                raise ValueError(
                    f"{type(self.model).__name__} takes no fixed-node mask (its "
                    "fixed_nodes_input is not true): substructure conditioning needs one, e.g. "
                    "CanonTransformer(fixed_nodes=True)"
                )
            kwargs["fixed"] = fixed
        if context is not None:
            if self.context_dim == 0:
                raise ValueError(
                    f"{type(self.model).__name__} takes no context (its context_dim is 0): "
                    "conditional generation needs one, e.g. CanonTransformer(context_dim=c)"
                )
            context.check(x.batch_size, self.context_dim, values=False)
            kwargs["context"] = context.to(dtype=x.dtype)
        if d is not None:
            if not self.step_size_input:
                raise ValueError(
                    f"{type(self.model).__name__} takes no step size (its step_size_input is "
                    "not true): a few-step objective needs one, e.g. "
                    "CanonTransformer(step_size=True)"
                )
            kwargs["d"] = d
        with network_autocast(self.precision, x.device.type):
            out = model(x, t, **kwargs)
        check_prediction(out, x, node_width=out.node.shape[-1])
        if self.precision != "float32":
            out = out.map(lambda v: v.to(x.dtype))
        if self.center:
            out = out.replace(pos=masked_center(out.pos, out.mask))
        return out


class Process(ABC):
    """A generative process between a prior (t = 0) and the data (t = 1).

    Time runs from noise at ``t = 0`` to data at ``t = 1`` for every process in symgen
    (flow matching and diffusion alike); the network receives this ``t``.

    * ``loss(model, x0, x1)``: ``x0`` prior samples coupled to data ``x1`` (same layout);
      draws ``t`` and the path sample, returns a :class:`LossOutput`;
    * ``sample(model, prior, template, options)``: integrates from a prior draw shaped like
      ``template`` to data with the sampler settings ``options`` (solver, steps, time grid,
      token temperature and re-noising), chosen at sampling time;
    * both take an optional per-graph :class:`~symgen.conditioning.Context`, passed to the
      network as ``context=``; ``sample`` mixes conditional and unconditional outputs with the
      classifier-free ``guidance`` scale (:func:`~symgen.conditioning.guide`);
    * both take an optional :class:`~symgen.conditioning.FixedPart`: its entries are held at
      their given values on every state and left out of the loss (substructure conditioning);
    * ``check_prior(prior)``: raises ``ValueError`` when the prior's channels
      (:attr:`~symgen.priors.Prior.channels`) do not fit the process.

    A new process is tested by subclassing :class:`symgen.testing.ProcessContract`.

    Attributes:
        self_conditioning: whether the network is fed its previous clean-data estimate
            (then the network must support it, see :mod:`symgen.network`).
        default_solver: the solver a generator samples with unless told otherwise.
    """

    self_conditioning: bool = False
    default_solver: SolverName = "euler"

    @abstractmethod
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
        """Training loss for coupled prior/data batches (conditioned on ``context``, with the
        entries of ``fixed`` held at their values and left out of the loss)."""

    @abstractmethod
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
        """Integrate from a prior sample shaped like ``template`` to a data sample
        (conditioned on ``context``, with classifier-free guidance scale ``guidance``, and
        the entries of ``fixed`` held at their values)."""

    @abstractmethod
    def check_prior(self, prior: Prior) -> None:
        """Raise ``ValueError`` (naming the fix) if ``prior`` cannot feed this process."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Generator(ABC):
    """A trainable generative model of :class:`GeometricGraph` batches.

    * ``loss(batch)`` returns the training :class:`LossOutput` for a data batch;
    * ``sample(template_or_sizes, steps=..., solver=..., ...)`` draws new graphs: the
      template's mask (and feature widths), a list of sizes, or a number of graphs fixes the
      number of nodes of each sample; the sampler settings not given take the generator's
      defaults (:class:`~symgen.generators.SamplerOptions`);
    * conditional generators take a per-graph :class:`~symgen.conditioning.Context` in both.
    """

    @abstractmethod
    def loss(
        self,
        batch: GeometricGraph,
        *,
        generator: torch.Generator | None = None,
        context: Context | None = None,
    ) -> LossOutput:
        """Training loss on a data batch (with its per-graph targets, for conditional models)."""

    @abstractmethod
    def sample(
        self,
        template_or_sizes: GeometricGraph | Sequence[int] | Tensor | int,
        *,
        steps: int | None = None,
        solver: SolverName | None = None,
        time_grid: float | Sequence[float] | None = None,
        temperature: float | None = None,
        stochasticity: float | None = None,
        final_tokens: FinalTokens | None = None,
        generator: torch.Generator | None = None,
        progress: bool = False,
        precision: Precision | None = None,
        context: Context | None = None,
        guidance: float = 1.0,
    ) -> GeometricGraph:
        """Draw samples shaped like the template (or with the given sizes, or this many),
        conditioned on ``context`` with classifier-free guidance scale ``guidance``."""
