"""The abstract group: batched elements acting on :class:`~symgen.state.GeometricGraph`."""

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Generic, TypeVar

import torch
from torch import Tensor

from symgen.state import GeometricGraph

__all__ = ["Group", "E"]

#: The element type of a group (one object holding a batch of elements).
E = TypeVar("E")


def _probe_graph() -> GeometricGraph:
    """A one-graph, one-node batch used to ask a group which tensors describe its elements."""
    return GeometricGraph.unchecked(
        torch.zeros(1, 1, 3), torch.zeros(1, 1, 1), torch.ones(1, 1, dtype=torch.bool)
    )


class Group(ABC, Generic[E]):
    """A group G acting on batches of geometric graphs, with elements of type ``E``.

    An *element* is one object holding a whole batch of group elements (one per graph), e.g. a
    tensor of ``b`` rotation matrices. Conventions, shared by every group in symgen:

    * ``compose(g, h)`` means "``h`` first, then ``g``":
      ``act(compose(g, h), x) == act(g, act(h, x))``;
    * ``act(identity(x), x) == x`` and ``act(inverse(g), act(g, x)) == x``;
    * padding slots of ``x`` are never moved or changed by ``act``.

    Subclasses implement every abstract method with the same signature. A new group is tested
    by subclassing :class:`symgen.testing.GroupContract`.

    Capabilities (code that needs one asks for it; nothing checks concrete group classes):

    * :attr:`permutes_nodes`: whether the group contains node permutations (a generator adds a
      uniformly random permutation to its samples when the group has none);
    * :meth:`act_on_vectors`: the action on vector-valued outputs such as velocities (rigid
      motions rotate them, translations leave them alone);
    * :meth:`element_to_tensors` / :meth:`element_from_tensors`: an element as named tensors
      with a leading batch axis (for caches and checkpoints). Components missing on the way
      back are the identity, so an element of a subgroup becomes an element of a larger group
      that shares its names (a rotation of ``SO3`` becomes a rigid motion of ``SE3``);
      :attr:`node_indexed` names the tensors whose second axis is the node axis.

    Examples:
        >>> from symgen.groups import SO3
        >>> mask = torch.ones(2, 4, dtype=bool)
        >>> x = GeometricGraph(torch.randn(2, 4, 3), torch.zeros(2, 4, 1), mask)
        >>> g = SO3().sample(x, generator=torch.Generator().manual_seed(0))
        >>> y = SO3().act(SO3().inverse(g), SO3().act(g, x))
        >>> torch.testing.assert_close(y.pos, x.pos)
    """

    #: Whether some elements permute the nodes (S_n, or a product with an S_n factor).
    permutes_nodes: bool = False
    #: Names of element tensors whose axis 1 indexes nodes (e.g. ``"perm"``).
    node_indexed: frozenset[str] = frozenset()

    @abstractmethod
    def identity(self, x: GeometricGraph) -> E:
        """The identity element for every graph of the batch ``x``."""

    @abstractmethod
    def sample(self, x: GeometricGraph, *, generator: torch.Generator | None = None) -> E:
        """Random elements, one per graph of ``x``, from the group's Haar probability measure.

        Groups without a Haar probability measure (translations) document what they sample.
        """

    @abstractmethod
    def compose(self, g: E, h: E) -> E:
        """The element "``h`` first, then ``g``"."""

    @abstractmethod
    def inverse(self, g: E) -> E:
        """The inverse element, ``compose(inverse(g), g) == identity``."""

    @abstractmethod
    def act(self, g: E, x: GeometricGraph) -> GeometricGraph:
        """Apply ``g[i]`` to graph ``i`` of ``x``; padding slots stay as they are."""

    @abstractmethod
    def allclose(self, g: E, h: E, *, atol: float = 1e-5) -> bool:
        """Whether two batched elements agree entrywise within ``atol``."""

    @abstractmethod
    def testing_elements(self, x: GeometricGraph) -> list[E]:
        """A deterministic list of non-trivial elements for the batch ``x``, for tests."""

    # ------------------------------------------------------------------ capabilities
    def act_on_vectors(self, g: E, x: GeometricGraph) -> GeometricGraph:
        """Apply ``g`` to vector-valued positions (velocities, scores, displacements).

        A vector transforms like a difference of two positions, so the translation part of an
        element does not act. The default is :meth:`act`, right for groups without
        translations; groups with translations override it.
        """
        return self.act(g, x)

    def element_to_tensors(self, g: E) -> dict[str, Tensor]:
        """The element as named tensors, each with a leading batch axis.

        The default handles elements that are dataclasses of tensors (field name -> tensor);
        override it for other element types.
        """
        if not dataclasses.is_dataclass(g):
            raise TypeError(
                f"{self!r}: elements of type {type(g).__name__} are not dataclasses of tensors; "
                "override element_to_tensors and element_from_tensors"
            )
        return {f.name: getattr(g, f.name) for f in dataclasses.fields(g)}

    def element_from_tensors(self, tensors: Mapping[str, Tensor], x: GeometricGraph) -> E:
        """The element described by ``tensors`` for the batch ``x``; missing parts are identity.

        Raises:
            ValueError: a name this group does not use.
        """
        identity = self.identity(x)
        unknown = sorted(set(tensors) - set(self.element_keys()))
        if unknown:
            raise ValueError(
                f"{self!r} has no element component(s) {unknown}; its components are "
                f"{list(self.element_keys())}"
            )
        return dataclasses.replace(identity, **dict(tensors))  # type: ignore[type-var]

    def element_keys(self) -> tuple[str, ...]:
        """Names of the tensors of :meth:`element_to_tensors`."""
        return tuple(self.element_to_tensors(self.identity(_probe_graph())))

    def embed(self, g: object, source: "Group", x: GeometricGraph) -> E:
        """An element ``g`` of the group ``source`` as an element of this (larger) group.

        ``element_from_tensors(source.element_to_tensors(g), x)``: the components ``source``
        names are kept, every other component of this group is the identity.

        Raises:
            ValueError: ``source`` has a component this group does not have.
        """
        return self.element_from_tensors(source.element_to_tensors(g), x)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
