"""Generator and process interfaces, the loss record and shared masked-loss helpers."""

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from symgen.network import GraphNetwork, supports_self_conditioning
from symgen.priors import Prior, center_positions
from symgen.shapes import EdgeFeatures, NodeMask, PerGraph
from symgen.state import GeometricGraph

__all__ = [
    "LossOutput",
    "Process",
    "Generator",
    "ZeroCoMNetwork",
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
    """Raise ``ValueError`` unless the network's output matches the input's layout."""
    if not isinstance(pred, GeometricGraph):
        raise ValueError(f"the network must return a GeometricGraph, got {type(pred).__name__}")
    if pred.pos.shape != x.pos.shape or not torch.equal(pred.mask, x.mask):
        raise ValueError("the network's prediction must have the input's positions shape and mask")
    want = x.node.shape[-1] if node_width is None else node_width
    if pred.node.shape[-1] != want:
        raise ValueError(
            f"the network predicted {pred.node.shape[-1]} node columns, expected {want}"
        )
    if x.edge is not None and (pred.edge is None or pred.edge.shape != x.edge.shape):
        raise ValueError("the data has edges, so the network must predict edges of the same shape")


def _per_graph_mean(sq: Tensor, weight: Tensor) -> Tensor:
    """``Σ sq / Σ weight`` per graph, averaged over graphs with positive weight (0 if none)."""
    dims = tuple(range(1, sq.ndim))
    num = sq.sum(dims)
    den = weight.sum(dims)
    ok = den > 0
    if not bool(ok.any()):
        return sq.sum() * 0.0
    return (num[ok] / den[ok]).mean()


def masked_node_mse(
    a: Float[Tensor, "b n c"], b: Float[Tensor, "b n c"], mask: NodeMask
) -> Float[Tensor, ""]:
    """Mean squared error over real nodes and columns, averaged per graph then over graphs."""
    m = mask[..., None].to(a.dtype).expand_as(a)
    return _per_graph_mean(((a - b) ** 2) * m, m)


def masked_edge_mse(a: EdgeFeatures, b: EdgeFeatures, mask: NodeMask) -> Float[Tensor, ""]:
    """Mean squared error over ordered pairs of distinct real nodes, per graph then over graphs."""
    from symgen.priors import symmetric_pair_mask

    m = symmetric_pair_mask(mask)[..., None].to(a.dtype).expand_as(a)
    return _per_graph_mean(((a - b) ** 2) * m, m)


class ZeroCoMNetwork(torch.nn.Module):
    """Wraps a network so that its positional output has zero centroid over real nodes.

    ``pos_out ← pos_out - mean_real(pos_out)``. Used whenever the prior is centred: velocities,
    clean-position and noise predictions then stay in the zero-CoM subspace where both ends of
    the path live (the equivariant baseline needs this; for canonical models it is harmless).
    """

    def __init__(self, model: GraphNetwork) -> None:
        super().__init__()
        self.model = model
        self.self_conditioning = supports_self_conditioning(model)

    def forward(
        self, x: GeometricGraph, t: PerGraph, cond: GeometricGraph | None = None
    ) -> GeometricGraph:
        out = self.model(x, t) if cond is None else self.model(x, t, cond=cond)
        check_prediction(out, x, node_width=out.node.shape[-1])
        return out.replace(pos=center_positions(out.pos, out.mask))


class Process(ABC):
    """A generative process between a prior (t = 0) and the data (t = 1).

    Time runs from noise at ``t = 0`` to data at ``t = 1`` for every process in symgen
    (flow matching and diffusion alike); the network receives this ``t``.

    * ``loss(model, x0, x1)``: ``x0`` prior samples coupled to data ``x1`` (same layout);
      draws ``t`` and the path sample, returns a :class:`LossOutput`.
    * ``sample(model, prior, template, num_steps=...)``: integrates from a prior draw shaped
      like ``template`` to data in ``num_steps`` solver steps (the only discretisation knob).
    """

    @abstractmethod
    def loss(
        self,
        model: GraphNetwork,
        x0: GeometricGraph,
        x1: GeometricGraph,
        *,
        generator: torch.Generator | None = None,
    ) -> LossOutput:
        """Training loss for coupled prior/data batches."""

    @abstractmethod
    def sample(
        self,
        model: GraphNetwork,
        prior: Prior,
        template: GeometricGraph,
        *,
        num_steps: int,
        generator: torch.Generator | None = None,
    ) -> GeometricGraph:
        """Integrate from a prior sample shaped like ``template`` to a data sample."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Generator(ABC):
    """A trainable generative model of :class:`GeometricGraph` batches.

    * ``loss(batch)`` returns the training :class:`LossOutput` for a data batch;
    * ``sample(template_or_sizes, num_steps=...)`` draws new graphs: the template's mask (and
      feature widths) or a list of sizes fixes the number of nodes of each sample; the number
      of solver steps is set here and only here.
    """

    @abstractmethod
    def loss(
        self, batch: GeometricGraph, *, generator: torch.Generator | None = None
    ) -> LossOutput:
        """Training loss on a data batch."""

    @abstractmethod
    def sample(
        self,
        template_or_sizes: GeometricGraph | Sequence[int] | Tensor | int,
        *,
        num_steps: int,
        generator: torch.Generator | None = None,
    ) -> GeometricGraph:
        """Draw samples shaped like the template (or with the given sizes, or this many)."""
