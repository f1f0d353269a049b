"""The abstract group: batched elements acting on :class:`~symgen.state.GeometricGraph`."""

from abc import ABC, abstractmethod
from typing import Any

import torch

from symgen.state import GeometricGraph

__all__ = ["Group"]


class Group(ABC):
    """A group G acting on batches of geometric graphs.

    An *element* is one object holding a whole batch of group elements (one per graph), e.g. a
    tensor of ``b`` rotation matrices. Conventions, shared by every group in symgen:

    * ``compose(g, h)`` means "``h`` first, then ``g``":
      ``act(compose(g, h), x) == act(g, act(h, x))``;
    * ``act(identity(x), x) == x`` and ``act(inverse(g), act(g, x)) == x``;
    * padding slots of ``x`` are never moved or changed by ``act``.

    Subclasses implement every abstract method with the same signature. A new group is tested
    by subclassing :class:`symgen.testing.GroupContract`.

    Examples:
        >>> from symgen.groups import SO3
        >>> mask = torch.ones(2, 4, dtype=bool)
        >>> x = GeometricGraph(torch.randn(2, 4, 3), torch.zeros(2, 4, 1), mask)
        >>> g = SO3().sample(x, generator=torch.Generator().manual_seed(0))
        >>> y = SO3().act(SO3().inverse(g), SO3().act(g, x))
        >>> torch.testing.assert_close(y.pos, x.pos)
    """

    @abstractmethod
    def identity(self, x: GeometricGraph) -> Any:
        """The identity element for every graph of the batch ``x``."""

    @abstractmethod
    def sample(self, x: GeometricGraph, *, generator: torch.Generator | None = None) -> Any:
        """Random elements, one per graph of ``x``, from the group's Haar probability measure.

        Groups without a Haar probability measure (translations) document what they sample.
        """

    @abstractmethod
    def compose(self, g: Any, h: Any) -> Any:
        """The element "``h`` first, then ``g``"."""

    @abstractmethod
    def inverse(self, g: Any) -> Any:
        """The inverse element, ``compose(inverse(g), g) == identity``."""

    @abstractmethod
    def act(self, g: Any, x: GeometricGraph) -> GeometricGraph:
        """Apply ``g[i]`` to graph ``i`` of ``x``; padding slots stay as they are."""

    @abstractmethod
    def allclose(self, g: Any, h: Any, *, atol: float = 1e-5) -> bool:
        """Whether two batched elements agree entrywise within ``atol``."""

    @abstractmethod
    def testing_elements(self, x: GeometricGraph) -> list[Any]:
        """A deterministic list of non-trivial elements for the batch ``x``, for tests."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
