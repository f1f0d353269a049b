"""Direct products of groups whose actions commute, e.g. S_n × SE(3)."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any

import torch
from torch import Tensor

from symgen.groups.base import Group
from symgen.groups.euclidean import SE3
from symgen.groups.symmetric import SymmetricGroup
from symgen.state import GeometricGraph

__all__ = ["ProductElement", "DirectProduct", "permutation_rigid_group"]


@dataclass(frozen=True)
class ProductElement:
    """One batched element of each factor, in the order of :attr:`DirectProduct.factors`."""

    parts: tuple[Any, ...]


class DirectProduct(Group[ProductElement]):
    """The direct product G_1 × ... × G_k of groups whose actions on graphs commute.

    ``act((g_1, ..., g_k), x) = act_1(g_1, act_2(g_2, ... act_k(g_k, x)))``; since the actions
    commute the order of application does not matter. Commuting is required, not checked here:
    S_n commutes with SE(3), but SO(3) and T(3) do not (SE(3) is a semidirect product), and
    ``symgen.testing.assert_action_homomorphism`` fails for such a "product". Composition,
    inverse and sampling are componentwise (the Haar measure of a product is the product of
    the Haar measures). Capabilities combine the factors': the product permutes nodes when a
    factor does, acts on vectors factor by factor, and names its element components by the
    factors' names (which must then be distinct).

    Examples:
        >>> G = permutation_rigid_group()        # S_n × SE(3)
        >>> mask = torch.ones(1, 4, dtype=bool)
        >>> x = GeometricGraph(torch.randn(1, 4, 3), torch.zeros(1, 4, 2), mask)
        >>> g = G.sample(x, generator=torch.Generator().manual_seed(1))
        >>> torch.testing.assert_close(G.act(G.inverse(g), G.act(g, x)).pos, x.pos)
    """

    def __init__(self, *factors: Group) -> None:
        if not factors:
            raise ValueError("DirectProduct needs at least one factor group")
        self.factors: tuple[Group, ...] = tuple(factors)
        self.permutes_nodes = any(G.permutes_nodes for G in self.factors)
        self.node_indexed = frozenset().union(*(G.node_indexed for G in self.factors))

    def _check(self, g: ProductElement) -> None:
        if not isinstance(g, ProductElement) or len(g.parts) != len(self.factors):
            raise ValueError(
                f"expected a ProductElement with {len(self.factors)} parts, got {g!r:.80}"
            )

    def identity(self, x: GeometricGraph) -> ProductElement:
        return ProductElement(tuple(G.identity(x) for G in self.factors))

    def sample(
        self, x: GeometricGraph, *, generator: torch.Generator | None = None
    ) -> ProductElement:
        return ProductElement(tuple(G.sample(x, generator=generator) for G in self.factors))

    def compose(self, g: ProductElement, h: ProductElement) -> ProductElement:
        self._check(g)
        self._check(h)
        return ProductElement(
            tuple(G.compose(a, b) for G, a, b in zip(self.factors, g.parts, h.parts))
        )

    def inverse(self, g: ProductElement) -> ProductElement:
        self._check(g)
        return ProductElement(tuple(G.inverse(a) for G, a in zip(self.factors, g.parts)))

    def act(self, g: ProductElement, x: GeometricGraph) -> GeometricGraph:
        self._check(g)
        for G, a in zip(reversed(self.factors), reversed(g.parts)):
            x = G.act(a, x)
        return x

    def allclose(self, g: ProductElement, h: ProductElement, *, atol: float = 1e-5) -> bool:
        self._check(g)
        self._check(h)
        return all(G.allclose(a, b, atol=atol) for G, a, b in zip(self.factors, g.parts, h.parts))

    def act_on_vectors(self, g: ProductElement, x: GeometricGraph) -> GeometricGraph:
        self._check(g)
        for G, a in zip(reversed(self.factors), reversed(g.parts)):
            x = G.act_on_vectors(a, x)
        return x

    def element_to_tensors(self, g: ProductElement) -> dict[str, Tensor]:
        self._check(g)
        out: dict[str, Tensor] = {}
        for G, part in zip(self.factors, g.parts):
            tensors = G.element_to_tensors(part)
            clash = sorted(set(out) & set(tensors))
            if clash:
                raise ValueError(f"{self!r}: factors share element component names {clash}")
            out.update(tensors)
        return out

    def element_from_tensors(
        self, tensors: Mapping[str, Tensor], x: GeometricGraph
    ) -> ProductElement:
        keys = [set(G.element_keys()) for G in self.factors]
        unknown = sorted(set(tensors) - set().union(*keys))
        if unknown:
            raise ValueError(f"{self!r} has no element component(s) {unknown}")
        return ProductElement(
            tuple(
                G.element_from_tensors({k: v for k, v in tensors.items() if k in names}, x)
                for G, names in zip(self.factors, keys)
            )
        )

    def testing_elements(self, x: GeometricGraph) -> list[ProductElement]:
        per_factor: Sequence[list[Any]] = [
            [G.identity(x)] + G.testing_elements(x)[:2] for G in self.factors
        ]
        combos = list(product(*per_factor))[1:]  # drop the all-identity combination
        # keep the elements that move one factor at a time, plus the all-non-trivial ones
        picked = [
            c
            for c in combos
            if sum(a is not e for a, e in zip(c, combos[0])) <= 1
            or all(a is not per[0] for a, per in zip(c, per_factor))
        ]
        return [ProductElement(tuple(c)) for c in picked[:6]]

    def __repr__(self) -> str:
        return " × ".join(repr(G) for G in self.factors)


def permutation_rigid_group(translation_scale: float = 0.0) -> DirectProduct:
    """The standard molecular symmetry group S_n × SE(3) (factors in that order)."""
    return DirectProduct(SymmetricGroup(), SE3(translation_scale=translation_scale))
