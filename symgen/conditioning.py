"""Per-graph conditioning: target values with a mask of which are given, and their dropout.

A :class:`Context` travels next to the state (``generator.loss(batch, context=c)``,
``generator.sample(sizes, context=c, guidance=w)``, ``net(x, t, context=c)``), never inside
the node channels: it describes the whole graph, not its atoms, and it must not be moved by the
group that symmetrizes samples (a rotation or a permutation leaves a target polarizability
unchanged).

Classifier-free guidance (Ho & Salimans 2022) needs one network that is both conditional and
unconditional. Training drops the context at random (:func:`drop_context`: whole contexts with
probability ``p_graph``, single entries with ``p_entry``), and "unconditional" is simply the
all-masked context :meth:`Context.unconditional`. At sampling, the network's raw outputs are
mixed as ``out_u + w (out_c - out_u)`` (:func:`guide`): ``w = 0`` is the unconditional model,
``w = 1`` the conditional one, ``w > 1`` pushes further towards the condition.

A :class:`FixedPart` conditions on given nodes instead (scaffold completion, fragment growing):
a node mask and the values those nodes (and the edges among them) must keep. Processes clamp
the fixed entries on every path state and leave them out of the loss; generators place the
fixed part in a frame of its own (:mod:`symgen.canon.relative`).
"""

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from symgen.masking import pair_mask
from symgen.shapes import NodeMask
from symgen.state import GeometricGraph

__all__ = [
    "Context",
    "ContextError",
    "FixedPart",
    "FixedPartError",
    "RandomFixedNodes",
    "drop_context",
    "guide",
]


class ContextError(ValueError):
    """A context that does not fit the batch or the model (wrong width, batch size, values)."""


@dataclass(frozen=True)
class Context:
    """Per-graph target values and which of them are given.

    Attributes:
        values: ``(b, c)`` target values, normalized as the model was trained (entries whose
            mask is ``False`` are ignored and may hold anything finite).
        mask: ``(b, c)`` boolean, ``True`` where the target is given.

    Networks read :meth:`features`, ``[values · mask, mask]``, so a missing target and a
    target of value 0 differ.

    Examples:
        >>> c = Context.full(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        >>> c.width, c.batch_size
        (2, 2)
        >>> c.unconditional().features().tolist()
        [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
    """

    # plain tensors on purpose: ``__post_init__`` checks the shapes and names the problem
    values: Tensor
    mask: Tensor

    def __post_init__(self) -> None:
        v, m = self.values, self.mask
        if v.dim() != 2 or not v.is_floating_point():
            raise ContextError(
                f"context values must be a float (b, c) tensor, got {v.dtype} {tuple(v.shape)}"
            )
        if m.dtype != torch.bool or m.shape != v.shape:
            raise ContextError(
                f"context mask must be a bool tensor shaped like the values {tuple(v.shape)}, "
                f"got {m.dtype} {tuple(m.shape)}"
            )
        if m.device != v.device:
            raise ContextError("context values and mask must be on one device")

    @classmethod
    def full(cls, values: Float[Tensor, "b c"]) -> "Context":
        """Every target given."""
        return cls(values, torch.ones_like(values, dtype=torch.bool))

    @classmethod
    def empty(
        cls,
        batch_size: int,
        width: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> "Context":
        """No target given (the unconditional model)."""
        v = torch.zeros(batch_size, width, dtype=dtype, device=device)
        return cls(v, torch.zeros_like(v, dtype=torch.bool))

    @property
    def batch_size(self) -> int:
        return self.values.shape[0]

    @property
    def width(self) -> int:
        return self.values.shape[1]

    def features(self) -> Float[Tensor, "b c2"]:
        """What a network embeds: ``[values · mask, mask]``, shape ``(b, 2c)``."""
        m = self.mask.to(self.values.dtype)
        return torch.cat([torch.where(self.mask, self.values, 0.0), m], -1)

    def unconditional(self) -> "Context":
        """The same batch with every target masked out."""
        return Context(torch.zeros_like(self.values), torch.zeros_like(self.mask))

    def index(self, idx: Tensor) -> "Context":
        """The contexts of the graphs ``idx`` (an index or boolean tensor over the batch)."""
        return Context(self.values[idx], self.mask[idx])

    def to(
        self, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> "Context":
        """Values cast to ``dtype`` and both tensors moved to ``device``."""
        return Context(self.values.to(device=device, dtype=dtype), self.mask.to(device=device))

    def check(self, batch_size: int, width: int, *, values: bool = True) -> None:
        """Raise :class:`ContextError` unless this fits a batch of ``batch_size`` graphs and a
        model trained on ``width`` targets, and (``values=True``, where data enters: it costs
        a device synchronization) its given values are finite."""
        if self.width != width:
            raise ContextError(
                f"the context has {self.width} targets per graph but the model was built for "
                f"{width}"
            )
        if self.batch_size != batch_size:
            raise ContextError(
                f"the context has {self.batch_size} rows but the batch has {batch_size} graphs"
            )
        if not values:
            return
        given = self.values[self.mask]
        if not bool(torch.isfinite(given).all()):
            raise ContextError("given context values must be finite (mask out missing targets)")


def drop_context(
    context: Context,
    p_graph: float,
    p_entry: float = 0.0,
    *,
    generator: torch.Generator | None = None,
) -> Context:
    """Classifier-free-guidance dropout: mask whole contexts with probability ``p_graph`` and,
    independently, single entries with probability ``p_entry``.

    Examples:
        >>> c = Context.full(torch.ones(1000, 2))
        >>> kept = drop_context(c, 0.25, generator=torch.Generator().manual_seed(0)).mask
        >>> 0.7 < float(kept[:, 0].float().mean()) < 0.8, bool((kept[:, 0] == kept[:, 1]).all())
        (True, True)
    """
    for name, p in (("p_graph", p_graph), ("p_entry", p_entry)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {p}")
    b, c = context.values.shape
    dev = context.values.device
    keep = context.mask
    if p_graph > 0:
        u = torch.rand(b, generator=generator, device=dev, dtype=torch.float64)
        keep = keep & (u >= p_graph)[:, None]
    if p_entry > 0:
        u = torch.rand(b, c, generator=generator, device=dev, dtype=torch.float64)
        keep = keep & (u >= p_entry)
    return Context(context.values, keep)


def guide(conditional: Tensor, unconditional: Tensor, scale: float) -> Tensor:
    """Classifier-free guidance of one output: ``u + w (c - u)`` (``w = 1``: ``c``; ``0``: ``u``).

    Examples:
        >>> guide(torch.tensor([2.0]), torch.tensor([1.0]), 3.0).tolist()
        [4.0]
    """
    if scale == 1.0:
        return conditional
    if scale == 0.0:
        return unconditional
    return unconditional + scale * (conditional - unconditional)


class FixedPartError(ValueError):
    """A fixed part that does not fit the batch or the model (shape, size, widths, clashes)."""


@dataclass(frozen=True)
class FixedPart:
    """Nodes whose positions and features are given, and the edges among them, per graph.

    Attributes:
        mask: ``(b, n)`` boolean, ``True`` on the fixed nodes (real nodes of the batch).
        values: a batch shaped like the state whose fixed entries hold the given values
            (every other entry is ignored).

    The fixed entries of a state are the fixed nodes' positions and features and the edges
    whose two ends are both fixed; an edge between a fixed and a free node is generated.
    :meth:`clamp` writes the fixed entries into a state; :meth:`free_nodes` and
    :meth:`free_pairs` are the entries a loss is taken over.

    Examples:
        >>> values = GeometricGraph(torch.ones(1, 3, 3), torch.ones(1, 3, 1),
        ...                         torch.ones(1, 3, dtype=torch.bool))
        >>> part = FixedPart(torch.tensor([[True, False, False]]), values)
        >>> x = GeometricGraph(torch.zeros(1, 3, 3), torch.zeros(1, 3, 1),
        ...                    torch.ones(1, 3, dtype=torch.bool))
        >>> part.clamp(x).pos[0, :, 0].tolist()
        [1.0, 0.0, 0.0]
    """

    # a plain tensor on purpose: ``__post_init__`` checks it and names the problem
    mask: Tensor
    values: GeometricGraph

    def __post_init__(self) -> None:
        m, v = self.mask, self.values
        if m.dtype != torch.bool or m.dim() != 2:
            raise FixedPartError(
                f"the fixed-node mask must be a bool (b, n) tensor, got {m.dtype} {tuple(m.shape)}"
            )
        if tuple(m.shape) != tuple(v.mask.shape):
            raise FixedPartError(
                f"the fixed-node mask {tuple(m.shape)} does not match the values' batch "
                f"{tuple(v.mask.shape)}"
            )
        if m.device != v.device:
            raise FixedPartError("the fixed-node mask and values must be on one device")

    @property
    def counts(self) -> Tensor:
        """Number of fixed nodes per graph, ``(b,)``."""
        return self.mask.sum(1)

    def pairs(self) -> Tensor:
        """``(b, n, n)``: pairs of distinct nodes that are both fixed (their edges are given)."""
        both = self.mask[:, :, None] & self.mask[:, None, :]
        return both & pair_mask(self.mask)

    def free_nodes(self, real: NodeMask) -> NodeMask:
        """Real nodes that are not fixed: the nodes a loss is taken over."""
        return real & ~self.mask

    def free_pairs(self, real: NodeMask) -> Tensor:
        """``(b, n, n)``: pairs of distinct real nodes with at least one free end."""
        return pair_mask(real) & ~self.pairs()

    def clamp(self, x: GeometricGraph) -> GeometricGraph:
        """``x`` with the fixed nodes' positions and features, and the edges among fixed
        nodes, replaced by the given values."""
        v = self.values
        m = self.mask[..., None]
        pos = torch.where(m, v.pos.to(x.pos.dtype), x.pos)
        node = torch.where(m, v.node.to(x.node.dtype), x.node)
        edge = x.edge
        if edge is not None and v.edge is not None:
            edge = torch.where(self.pairs()[..., None], v.edge.to(edge.dtype), edge)
        return GeometricGraph.unchecked(pos, node, x.mask, edge)

    def index(self, idx: Tensor) -> "FixedPart":
        """The fixed parts of the graphs ``idx`` (an index or boolean tensor over the batch)."""
        return FixedPart(self.mask[idx], self.values.index(idx))

    def to(
        self, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> "FixedPart":
        """Values cast to ``dtype`` and everything moved to ``device``."""
        return FixedPart(self.mask.to(device=device), self.values.to(device=device, dtype=dtype))

    def check(self, x: GeometricGraph) -> None:
        """Raise :class:`FixedPartError` unless this fits the batch ``x``: the same node slots
        and feature widths, fixed nodes among the real ones, and at least one free node in
        every graph."""
        v = self.values
        if tuple(self.mask.shape) != tuple(x.mask.shape):
            raise FixedPartError(
                f"the fixed part covers {tuple(self.mask.shape)} node slots but the batch has "
                f"{tuple(x.mask.shape)}"
            )
        if v.node.shape[-1] != x.node.shape[-1]:
            raise FixedPartError(
                f"the fixed nodes have {v.node.shape[-1]} feature columns but the model "
                f"generates {x.node.shape[-1]}"
            )
        if (v.edge is None) != (x.edge is None) or (
            v.edge is not None and x.edge is not None and v.edge.shape[-1] != x.edge.shape[-1]
        ):
            raise FixedPartError("the fixed part's edge features do not match the model's")
        if bool((self.mask & ~x.mask).any()):
            raise FixedPartError("fixed nodes must be real nodes of the batch (not padding)")
        if bool(((x.mask & ~self.mask).sum(1) == 0).any()):
            raise FixedPartError(
                "every graph needs at least one node to generate: a fixed part as large as "
                "the graph leaves nothing to sample"
            )


class RandomFixedNodes:
    """A fixed-part sampler for any domain: a uniformly random subset of each graph's real
    nodes, of a size drawn uniformly from ``[min_fixed, min(max_fixed, k - 1)]`` (``k`` real
    nodes; ``max_fixed=None``: ``k - 1``).

    Examples:
        >>> x = GeometricGraph(torch.zeros(2, 5, 3), torch.zeros(2, 5, 1),
        ...                    torch.ones(2, 5, dtype=torch.bool))
        >>> fixed = RandomFixedNodes(2, 3)(x, torch.Generator().manual_seed(0))
        >>> all(2 <= k <= 3 for k in fixed.sum(1).tolist())
        True
    """

    def __init__(self, min_fixed: int = 1, max_fixed: int | None = None) -> None:
        if min_fixed < 1 or (max_fixed is not None and max_fixed < min_fixed):
            raise ValueError(
                f"need 1 <= min_fixed <= max_fixed, got min_fixed={min_fixed}, "
                f"max_fixed={max_fixed}"
            )
        self.min_fixed, self.max_fixed = int(min_fixed), max_fixed

    def __call__(self, batch: GeometricGraph, generator: torch.Generator | None = None) -> Tensor:
        k = batch.num_nodes
        hi = k - 1 if self.max_fixed is None else torch.clamp(k - 1, max=self.max_fixed)
        if bool((hi < self.min_fixed).any()):
            raise FixedPartError(
                f"a graph of {int(k.min())} nodes cannot keep {self.min_fixed} fixed nodes and "
                "one free node"
            )
        u = torch.rand(k.shape, generator=generator, dtype=torch.float64, device=k.device)
        size = self.min_fixed + torch.floor(u * (hi - self.min_fixed + 1)).long()
        keys = torch.rand(
            batch.mask.shape, generator=generator, dtype=torch.float64, device=k.device
        )
        keys = torch.where(batch.mask, keys, 2.0)
        rank = torch.argsort(torch.argsort(keys, dim=1), dim=1)
        return rank < size[:, None]
