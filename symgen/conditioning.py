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
"""

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

__all__ = ["Context", "ContextError", "drop_context", "guide"]


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
