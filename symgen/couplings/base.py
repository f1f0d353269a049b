"""The coupling interface: how prior samples are paired with data samples."""

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from symgen.shapes import PerGraph, PerGraphInt
from symgen.state import GeometricGraph

__all__ = [
    "Coupled",
    "Coupling",
    "IndependentCoupling",
    "pairwise_cost",
    "pair_cost",
    "check_same_layout",
]


@dataclass(frozen=True)
class Coupled:
    """A coupled batch: ``x0[i]`` (noise) is paired with ``x1[i]`` (data).

    Attributes:
        x0: the prior samples, reordered (and possibly transformed by a group element) so that
            row ``i`` is the partner of ``x1[i]``.
        x1: the data, ``data.index(target_index)``.
        source_index: row of the original prior batch that became ``x0[i]``.
        target_index: row of the original data batch that became ``x1[i]`` (the couplings in
            symgen keep the data order, so this is ``arange(b)``; conditions indexed like the
            data batch follow it).
    """

    x0: GeometricGraph
    x1: GeometricGraph
    source_index: PerGraphInt
    target_index: PerGraphInt


def check_same_layout(x0: GeometricGraph, x1: GeometricGraph) -> None:
    """Raise ``ValueError`` unless the two batches have the same shapes and masks."""
    if x0.pos.shape != x1.pos.shape or x0.node.shape != x1.node.shape:
        raise ValueError(
            "prior and data batches differ in shape: "
            f"{tuple(x0.node.shape)} vs {tuple(x1.node.shape)}"
        )
    if not torch.equal(x0.mask, x1.mask):
        raise ValueError(
            "prior and data batches must have the same mask (sample the prior from the data)"
        )
    if (x0.edge is None) != (x1.edge is None):
        raise ValueError("prior and data batches must both have edges or both not")


def pair_cost(x0: GeometricGraph, x1: GeometricGraph, *, feature_weight: float = 0.0) -> PerGraph:
    """Per-pair transport cost ``c_i = Σ_real |pos0 - pos1|² + w Σ_real |node0 - node1|²``.

    Examples:
        >>> a = GeometricGraph(torch.zeros(1, 2, 3), torch.zeros(1, 2, 1),
        ...                    torch.ones(1, 2, dtype=bool))
        >>> pair_cost(a, a.replace(pos=torch.ones(1, 2, 3))).tolist()
        [6.0]
    """
    m = x0.mask[..., None].to(x0.dtype)
    c = (((x0.pos - x1.pos) * m) ** 2).sum((1, 2))
    if feature_weight:
        c = c + feature_weight * (((x0.node - x1.node) * m) ** 2).sum((1, 2))
    return c


def pairwise_cost(
    x0: GeometricGraph, x1: GeometricGraph, *, feature_weight: float = 0.0
) -> Float[Tensor, "b b"]:
    """Cost matrix ``C[i, j]`` between prior sample ``i`` and data sample ``j``.

    ``C[i, j] = Σ_real (|pos0_i[s] - pos1_j[s]|² + w |node0_i[s] - node1_j[s]|²)`` for graphs with
    the same number of real nodes (prefix masks, so their real slots coincide), and
    ``C[i, j] = +inf`` otherwise: symgen only pairs graphs of equal size.
    """
    m0 = x0.mask[..., None].to(x0.dtype)
    m1 = x1.mask[..., None].to(x1.dtype)
    a = (
        torch.cat([x0.pos * m0, feature_weight**0.5 * x0.node * m0], -1)
        .flatten(1)
        .to(torch.float64)
    )
    b = (
        torch.cat([x1.pos * m1, feature_weight**0.5 * x1.node * m1], -1)
        .flatten(1)
        .to(torch.float64)
    )
    # |a - b|² = |a|² + |b|² - 2 a·b, exact for equal-size pairs (their masks agree).
    c = (
        ((a**2).sum(-1)[:, None] + (b**2).sum(-1)[None, :] - 2 * a @ b.T)
        .clamp_min(0.0)
        .to(x0.dtype)
    )
    same = x0.num_nodes[:, None] == x1.num_nodes[None, :]
    return torch.where(same, c, torch.full_like(c, float("inf")))


class Coupling(ABC):
    """Pairs a batch of prior samples ``x0`` with a batch of data ``x1`` of the same layout.

    ``couple(x0, x1)`` returns a :class:`Coupled` whose ``x0[i]`` is the partner of ``x1[i]``.
    Every coupling keeps each marginal: ``x0`` rows are a re-indexing (and, for aligned
    couplings, a group transformation) of the prior batch, ``x1`` is the data batch.
    :attr:`independent` says whether the pairs are independent draws (the product coupling),
    which estimators that assume it (e.g. Gaussian posteriors) ask for.

    Examples:
        >>> x = GeometricGraph(torch.randn(4, 3, 3), torch.zeros(4, 3, 1),
        ...                    torch.ones(4, 3, dtype=bool))
        >>> IndependentCoupling().couple(x, x).source_index.tolist()
        [0, 1, 2, 3]
    """

    #: Whether ``x0[i]`` is independent of ``x1[i]`` (the product coupling ``p0 ⊗ p1``).
    independent: bool = False

    @abstractmethod
    def couple(
        self, x0: GeometricGraph, x1: GeometricGraph, *, generator: torch.Generator | None = None
    ) -> Coupled:
        """Pair ``x0`` (prior) with ``x1`` (data); both have the same shapes and mask."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class IndependentCoupling(Coupling):
    """The product coupling ``π = p0 ⊗ p1``: the i-th prior sample goes with the i-th datum.

    Prior samples are drawn independently of the data, so keeping the order is independent.
    """

    independent = True

    def couple(
        self, x0: GeometricGraph, x1: GeometricGraph, *, generator: torch.Generator | None = None
    ) -> Coupled:
        check_same_layout(x0, x1)
        idx = torch.arange(x1.batch_size, device=x1.device)
        return Coupled(x0=x0, x1=x1, source_index=idx, target_index=idx)
