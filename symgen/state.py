"""The one batched data type of symgen: a padded batch of geometric graphs, with its arithmetic.

Validation policy. Building a :class:`GeometricGraph` with its constructor checks everything:
structure (shapes, dtypes, devices) and values (finite numbers, a prefix mask with a real node
in every graph), so user data and loaders fail early with an error naming the problem. The
states a library computes from valid states (``replace``, arithmetic, ``map``, ``index``,
:meth:`GeometricGraph.unchecked`) check structure only: value checks cost a pass over every
tensor and a device synchronization, once per solver step and network call. Under
:func:`strict_validation` (switched on for symgen's whole test suite, or by setting the
environment variable ``SYMGEN_STRICT_VALIDATION=1``) every state is checked in full.
"""

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor

from symgen.masking import prefix_mask
from symgen.shapes import PerGraphInt

__all__ = [
    "GeometricGraph",
    "StateError",
    "prefix_mask",
    "strict_validation",
    "set_strict_validation",
    "is_strict_validation",
]


class StateError(ValueError):
    """Raised when a :class:`GeometricGraph` is built from inconsistent or invalid tensors."""


_STRICT = os.environ.get("SYMGEN_STRICT_VALIDATION", "") not in ("", "0")


def is_strict_validation() -> bool:
    """Whether every state (computed ones included) is value-checked; see the module docstring."""
    return _STRICT


def set_strict_validation(enabled: bool) -> bool:
    """Switch strict validation on or off; returns the previous setting."""
    global _STRICT
    previous, _STRICT = _STRICT, bool(enabled)
    return previous


@contextmanager
def strict_validation(enabled: bool = True) -> Iterator[None]:
    """Context manager: value-check every state built inside it (or none, with ``False``).

    Examples:
        >>> with strict_validation():
        ...     is_strict_validation()
        True
    """
    previous = set_strict_validation(enabled)
    try:
        yield
    finally:
        set_strict_validation(previous)


Scalar = float | int | Tensor


def _per_graph(a: Scalar, ndim: int) -> Scalar:
    """A scalar as is; a ``(b,)`` tensor reshaped to broadcast over a field with ``ndim`` axes."""
    if isinstance(a, Tensor) and a.ndim == 1:
        return a.reshape((-1,) + (1,) * (ndim - 1))
    return a


@dataclass(frozen=True)
class GeometricGraph:
    """A padded batch of ``b`` geometric graphs with at most ``n`` nodes each.

    Graph ``i`` has ``k_i = mask[i].sum()`` real nodes, stored in the first ``k_i`` slots
    (the mask is a *prefix* mask: ``mask[i, j] = j < k_i``, with ``k_i >= 1``). Padding slots
    may hold any finite values; every operation in symgen ignores them, and operations that
    create new values (noise, group actions) leave padding unchanged or zero.

    Attributes:
        pos: node positions, row vectors in Cartesian coordinates, shape ``(b, n, 3)``.
        node: node features (e.g. one-hot atom types and charges), shape ``(b, n, f)``.
        mask: ``True`` on real nodes, shape ``(b, n)``.
        edge: optional edge features (e.g. one-hot bond orders), shape ``(b, n, n, e)``;
            ``edge[i, j, k]`` describes the pair (j, k).

    All floating tensors share one dtype and all tensors one device. The constructor validates
    shapes, dtypes, devices, finiteness (padding included, so that ``0 * value`` stays 0 in
    masked sums) and the mask, and raises :class:`StateError` naming the problem; computed
    states check structure only (see the module docstring).

    Arithmetic acts on the float channels (``pos``, ``node`` and ``edge``) together and keeps
    the mask: ``x + y``, ``x - y``, ``-x``, ``a * x`` and ``x / a`` with ``a`` a number or a
    per-graph ``(b,)`` tensor, and :meth:`map` for any other channelwise function.

    Examples:
        >>> g = GeometricGraph(pos=torch.zeros(2, 3, 3), node=torch.ones(2, 3, 1),
        ...                    mask=torch.tensor([[True, True, False], [True, True, True]]))
        >>> g.num_nodes.tolist()
        [2, 3]
        >>> (g + 0.5 * g).node[0, 0].tolist()
        [1.5]
        >>> (torch.tensor([1.0, 2.0]) * g).node[:, 0, 0].tolist()
        [1.0, 2.0]
    """

    # Fields are annotated as plain tensors on purpose: ``_check_structure`` checks the shapes
    # itself and names the problem, which a generic type-check failure would not.
    pos: Tensor
    node: Tensor
    mask: Tensor
    edge: Tensor | None = None

    def __post_init__(self) -> None:
        self._check_structure()
        self._check_values()

    @classmethod
    def unchecked(
        cls, pos: Tensor, node: Tensor, mask: Tensor, edge: Tensor | None = None
    ) -> "GeometricGraph":
        """A state computed from valid ones: structure checked, values only when strict.

        For library internals and hot loops (solver steps, network outputs); user data goes
        through the constructor, which checks values too.
        """
        out = object.__new__(cls)
        object.__setattr__(out, "pos", pos)
        object.__setattr__(out, "node", node)
        object.__setattr__(out, "mask", mask)
        object.__setattr__(out, "edge", edge)
        out._check_structure()
        if _STRICT:
            out._check_values()
        return out

    def validate(self) -> "GeometricGraph":
        """Check structure and values now (whatever the policy); return ``self``."""
        self._check_structure()
        self._check_values()
        return self

    # ------------------------------------------------------------------ validation
    def _check_structure(self) -> None:
        """Shapes, dtypes and devices: metadata only, no kernel and no synchronization."""
        pos, node, mask, edge = self.pos, self.node, self.mask, self.edge
        for name, value in (("pos", pos), ("node", node), ("mask", mask)):
            if not isinstance(value, Tensor):
                raise StateError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
        if edge is not None and not isinstance(edge, Tensor):
            raise StateError(f"edge must be a torch.Tensor or None, got {type(edge).__name__}")
        if pos.ndim != 3 or pos.shape[-1] != 3:
            raise StateError(f"pos must have shape (b, n, 3), got {tuple(pos.shape)}")
        b, n = pos.shape[0], pos.shape[1]
        if b == 0:
            raise StateError("empty batch: pos has batch size 0")
        if n == 0:
            raise StateError("graphs with zero node slots: pos has shape (b, 0, 3)")
        if node.ndim != 3 or node.shape[:2] != (b, n):
            raise StateError(
                f"node must have shape ({b}, {n}, f) to match pos, got {tuple(node.shape)}"
            )
        if mask.shape != (b, n):
            raise StateError(
                f"mask must have shape ({b}, {n}) to match pos, got {tuple(mask.shape)}"
            )
        if mask.dtype != torch.bool:
            raise StateError(f"mask must be a bool tensor, got dtype {mask.dtype}")
        if not pos.is_floating_point():
            raise StateError(f"pos must be floating point, got dtype {pos.dtype}")
        if node.dtype != pos.dtype:
            raise StateError(f"node dtype {node.dtype} differs from pos dtype {pos.dtype}")
        devices = {pos.device, node.device, mask.device}
        if edge is not None:
            if edge.ndim != 4 or edge.shape[:3] != (b, n, n):
                raise StateError(
                    f"edge must have shape ({b}, {n}, {n}, e) to match pos, got {tuple(edge.shape)}"
                )
            if edge.dtype != pos.dtype:
                raise StateError(f"edge dtype {edge.dtype} differs from pos dtype {pos.dtype}")
            devices.add(edge.device)
        if len(devices) > 1:
            raise StateError(f"tensors live on different devices: {sorted(map(str, devices))}")

    def _check_values(self) -> None:
        """Finite values everywhere and a prefix mask with a real node in every graph."""
        b, n = self.pos.shape[:2]
        for name, value in (("pos", self.pos), ("node", self.node), ("edge", self.edge)):
            if value is not None and not bool(torch.isfinite(value).all()):
                bad = (~torch.isfinite(value)).reshape(b, -1).any(-1).nonzero().flatten().tolist()
                raise StateError(f"{name} contains NaN or inf (graphs {bad[:10]})")
        counts = self.mask.sum(-1)
        if bool((counts == 0).any()):
            empty = (counts == 0).nonzero().flatten().tolist()
            raise StateError(f"empty graph(s) with no real node: batch index {empty[:10]}")
        expected = prefix_mask(counts, n)
        if not bool((expected == self.mask).all()):
            bad = (expected != self.mask).any(-1).nonzero().flatten().tolist()
            raise StateError(
                f"mask is not a prefix mask (real nodes must come first) in graphs {bad[:10]}"
            )

    # ------------------------------------------------------------------ properties
    @property
    def batch_size(self) -> int:
        """Number of graphs ``b``."""
        return self.pos.shape[0]

    @property
    def max_nodes(self) -> int:
        """Padded number of node slots ``n``."""
        return self.pos.shape[1]

    @property
    def num_nodes(self) -> PerGraphInt:
        """Number of real nodes of each graph, ``mask.sum(-1)``."""
        return self.mask.sum(-1)

    @property
    def edge_mask(self) -> Tensor:
        """``True`` on pairs (j, k) of real nodes with j != k, shape ``(b, n, n)``."""
        from symgen.masking import pair_mask

        return pair_mask(self.mask)

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype shared by ``pos``, ``node`` and ``edge``."""
        return self.pos.dtype

    @property
    def device(self) -> torch.device:
        """Device of all tensors."""
        return self.pos.device

    # ------------------------------------------------------------------ arithmetic
    def map(self, fn: Callable[[Tensor], Tensor]) -> "GeometricGraph":
        """Apply ``fn`` to each float channel (``pos``, ``node``, ``edge``); same mask.

        Examples:
            >>> g = GeometricGraph(torch.ones(1, 2, 3), torch.ones(1, 2, 1),
            ...                    torch.ones(1, 2, dtype=torch.bool))
            >>> g.map(torch.neg).pos.sum().item()
            -6.0
        """
        edge = None if self.edge is None else fn(self.edge)
        return GeometricGraph.unchecked(fn(self.pos), fn(self.node), self.mask, edge)

    def _zip(
        self, other: "GeometricGraph", fn: Callable[[Tensor, Tensor], Tensor]
    ) -> "GeometricGraph":
        if not isinstance(other, GeometricGraph):
            return NotImplemented
        if (self.edge is None) != (other.edge is None):
            raise StateError("cannot combine a graph with edges and a graph without edges")
        edge = None if self.edge is None else fn(self.edge, other.edge)  # type: ignore[arg-type]
        return GeometricGraph.unchecked(
            fn(self.pos, other.pos), fn(self.node, other.node), self.mask, edge
        )

    def _scale(self, a: Scalar, fn: Callable[[Tensor, Scalar], Tensor]) -> "GeometricGraph":
        if isinstance(a, Tensor) and a.ndim == 1 and a.shape[0] != self.batch_size:
            raise StateError(
                f"a per-graph factor needs shape ({self.batch_size},), got {tuple(a.shape)}"
            )
        if isinstance(a, Tensor) and a.ndim > 1:
            raise StateError(f"factors are numbers or (b,) tensors, got shape {tuple(a.shape)}")
        a3 = _per_graph(a, 3)
        edge = None if self.edge is None else fn(self.edge, _per_graph(a, 4))
        return GeometricGraph.unchecked(fn(self.pos, a3), fn(self.node, a3), self.mask, edge)

    def __add__(self, other: "GeometricGraph") -> "GeometricGraph":
        return self._zip(other, torch.add)

    def __sub__(self, other: "GeometricGraph") -> "GeometricGraph":
        return self._zip(other, torch.sub)

    def __neg__(self) -> "GeometricGraph":
        return self.map(torch.neg)

    def __mul__(self, a: Scalar) -> "GeometricGraph":
        if isinstance(a, GeometricGraph):
            return NotImplemented
        return self._scale(a, lambda v, s: s * v)

    __rmul__ = __mul__

    def __truediv__(self, a: Scalar) -> "GeometricGraph":
        return self._scale(a, lambda v, s: v / s)

    # ------------------------------------------------------------------ transforms
    def replace(self, **changes: Tensor | None) -> "GeometricGraph":
        """Copy with some fields replaced (structure checked; values when strict)."""
        fields = {"pos": self.pos, "node": self.node, "mask": self.mask, "edge": self.edge}
        unknown = sorted(set(changes) - set(fields))
        if unknown:
            raise TypeError(f"GeometricGraph has no field(s) {unknown}")
        fields.update(changes)
        return GeometricGraph.unchecked(**fields)  # type: ignore[arg-type]

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> "GeometricGraph":
        """Move to ``device`` and/or cast floating fields to ``dtype``."""
        edge = None if self.edge is None else self.edge.to(device=device, dtype=dtype)
        return GeometricGraph.unchecked(
            pos=self.pos.to(device=device, dtype=dtype),
            node=self.node.to(device=device, dtype=dtype),
            mask=self.mask.to(device=device),
            edge=edge,
        )

    def zero_padding(self) -> "GeometricGraph":
        """Copy with every padding slot (nodes and edges touching padding) set to zero."""
        from symgen.masking import node_weights, pair_mask

        m = node_weights(self.mask, self.dtype)
        edge = None
        if self.edge is not None:
            pair = pair_mask(self.mask, self_loops=True)[..., None].to(self.dtype)
            edge = self.edge * pair
        return GeometricGraph.unchecked(self.pos * m, self.node * m, self.mask, edge)

    def index(self, idx: Tensor | slice | Sequence[int]) -> "GeometricGraph":
        """Select a sub-batch of graphs (``idx`` indexes the batch axis)."""
        if not isinstance(idx, (Tensor, slice)):
            idx = torch.as_tensor(list(idx), dtype=torch.long, device=self.device)
        edge = None if self.edge is None else self.edge[idx]
        return GeometricGraph.unchecked(self.pos[idx], self.node[idx], self.mask[idx], edge)

    def trim(self) -> "GeometricGraph":
        """Drop trailing node slots that are padding in every graph."""
        k = int(self.num_nodes.max())
        edge = None if self.edge is None else self.edge[:, :k, :k]
        return GeometricGraph.unchecked(self.pos[:, :k], self.node[:, :k], self.mask[:, :k], edge)

    def unbatch(self) -> list[tuple[Tensor, Tensor, Tensor | None]]:
        """Split into per-graph ``(pos, node, edge)`` tuples without padding."""
        out = []
        for i, k in enumerate(self.num_nodes.tolist()):
            edge = None if self.edge is None else self.edge[i, :k, :k]
            out.append((self.pos[i, :k], self.node[i, :k], edge))
        return out

    @staticmethod
    def from_graphs(
        pos: Sequence[Tensor],
        node: Sequence[Tensor],
        edge: Sequence[Tensor] | None = None,
        max_nodes: int | None = None,
    ) -> "GeometricGraph":
        """Pad a list of graphs into one batch (validated in full).

        Args:
            pos: per-graph positions, each ``(k_i, 3)``.
            node: per-graph node features, each ``(k_i, f)``.
            edge: optional per-graph edge features, each ``(k_i, k_i, e)``.
            max_nodes: padded size ``n`` (default: the largest ``k_i``).

        Examples:
            >>> g = GeometricGraph.from_graphs([torch.zeros(2, 3), torch.ones(1, 3)],
            ...                                [torch.ones(2, 1), torch.ones(1, 1)])
            >>> g.mask.tolist()
            [[True, True], [True, False]]
        """
        if len(pos) == 0:
            raise StateError("empty batch: from_graphs got no graphs")
        if len(node) != len(pos) or (edge is not None and len(edge) != len(pos)):
            raise StateError("pos, node and edge lists must have the same length")
        sizes = [int(p.shape[0]) for p in pos]
        for i, (p, x) in enumerate(zip(pos, node)):
            if p.ndim != 2 or p.shape[1] != 3:
                raise StateError(f"graph {i}: pos must have shape (k, 3), got {tuple(p.shape)}")
            if x.ndim != 2 or x.shape[0] != p.shape[0]:
                raise StateError(
                    f"graph {i}: node must have shape ({p.shape[0]}, f), got {tuple(x.shape)}"
                )
        n = max(sizes) if max_nodes is None else max_nodes
        if n < max(sizes):
            raise StateError(
                f"max_nodes={n} is smaller than the largest graph ({max(sizes)} nodes)"
            )
        b, f = len(pos), node[0].shape[1]
        dtype, device = pos[0].dtype, pos[0].device
        P = torch.zeros(b, n, 3, dtype=dtype, device=device)
        X = torch.zeros(b, n, f, dtype=dtype, device=device)
        E = None
        if edge is not None:
            E = torch.zeros(b, n, n, edge[0].shape[-1], dtype=dtype, device=device)
        for i, k in enumerate(sizes):
            P[i, :k] = pos[i]
            X[i, :k] = node[i]
            if E is not None:
                E[i, :k, :k] = edge[i]
        counts = torch.tensor(sizes, device=device)
        return GeometricGraph(pos=P, node=X, mask=prefix_mask(counts, n), edge=E)
