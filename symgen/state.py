"""The one batched data type of symgen: a padded batch of geometric graphs."""

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Bool
from torch import Tensor

from symgen.shapes import PerGraphInt

__all__ = ["GeometricGraph", "StateError", "prefix_mask"]


class StateError(ValueError):
    """Raised when a :class:`GeometricGraph` is built from inconsistent or invalid tensors."""


def prefix_mask(num_nodes: PerGraphInt, max_nodes: int) -> Bool[Tensor, "b {max_nodes}"]:
    """Node mask with the first ``num_nodes[i]`` slots of row ``i`` set.

    ``mask[i, j] = j < num_nodes[i]``.

    Examples:
        >>> prefix_mask(torch.tensor([1, 3]), 3)
        tensor([[ True, False, False],
                [ True,  True,  True]])
    """
    return torch.arange(max_nodes, device=num_nodes.device)[None, :] < num_nodes[:, None]


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

    All floating tensors share one dtype and all tensors one device. Construction validates
    shapes, dtypes, devices, finiteness (padding included, so that ``0 * value`` stays 0 in
    masked sums) and the mask, and raises :class:`StateError` naming the problem.

    Examples:
        >>> g = GeometricGraph(pos=torch.zeros(2, 3, 3), node=torch.ones(2, 3, 1),
        ...                    mask=torch.tensor([[True, True, False], [True, True, True]]))
        >>> g.num_nodes.tolist()
        [2, 3]
    """

    # Fields are annotated as plain tensors on purpose: ``_validate`` checks the shapes itself and
    # names the problem, which a generic type-check failure would not.
    pos: Tensor
    node: Tensor
    mask: Tensor
    edge: Tensor | None = None

    def __post_init__(self) -> None:
        self._validate()

    # ------------------------------------------------------------------ validation
    def _validate(self) -> None:
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
        for name, value in (("pos", pos), ("node", node), ("edge", edge)):
            if value is not None and not bool(torch.isfinite(value).all()):
                bad = (~torch.isfinite(value)).reshape(b, -1).any(-1).nonzero().flatten().tolist()
                raise StateError(f"{name} contains NaN or inf (graphs {bad[:10]})")
        counts = mask.sum(-1)
        if bool((counts == 0).any()):
            empty = (counts == 0).nonzero().flatten().tolist()
            raise StateError(f"empty graph(s) with no real node: batch index {empty[:10]}")
        if not bool((prefix_mask(counts, n) == mask).all()):
            bad = (prefix_mask(counts, n) != mask).any(-1).nonzero().flatten().tolist()
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
    def edge_mask(self) -> Bool[Tensor, "b n n"]:
        """``True`` on pairs (j, k) of real nodes with j != k."""
        pair = self.mask[:, :, None] & self.mask[:, None, :]
        eye = torch.eye(self.max_nodes, dtype=torch.bool, device=self.mask.device)
        return pair & ~eye

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype shared by ``pos``, ``node`` and ``edge``."""
        return self.pos.dtype

    @property
    def device(self) -> torch.device:
        """Device of all tensors."""
        return self.pos.device

    # ------------------------------------------------------------------ transforms
    def replace(self, **changes: Tensor | None) -> "GeometricGraph":
        """Copy with some fields replaced (validated again)."""
        return dataclasses.replace(self, **changes)

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> "GeometricGraph":
        """Move to ``device`` and/or cast floating fields to ``dtype``."""
        edge = None if self.edge is None else self.edge.to(device=device, dtype=dtype)
        return GeometricGraph(
            pos=self.pos.to(device=device, dtype=dtype),
            node=self.node.to(device=device, dtype=dtype),
            mask=self.mask.to(device=device),
            edge=edge,
        )

    def zero_padding(self) -> "GeometricGraph":
        """Copy with every padding slot (nodes and edges touching padding) set to zero."""
        m = self.mask[..., None].to(self.dtype)
        edge = None
        if self.edge is not None:
            pair = (self.mask[:, :, None] & self.mask[:, None, :])[..., None].to(self.dtype)
            edge = self.edge * pair
        return GeometricGraph(pos=self.pos * m, node=self.node * m, mask=self.mask, edge=edge)

    def index(self, idx: Tensor | slice | Sequence[int]) -> "GeometricGraph":
        """Select a sub-batch of graphs (``idx`` indexes the batch axis)."""
        if not isinstance(idx, (Tensor, slice)):
            idx = torch.as_tensor(list(idx), dtype=torch.long, device=self.device)
        edge = None if self.edge is None else self.edge[idx]
        return GeometricGraph(
            pos=self.pos[idx], node=self.node[idx], mask=self.mask[idx], edge=edge
        )

    def trim(self) -> "GeometricGraph":
        """Drop trailing node slots that are padding in every graph."""
        k = int(self.num_nodes.max())
        edge = None if self.edge is None else self.edge[:, :k, :k]
        return GeometricGraph(
            pos=self.pos[:, :k], node=self.node[:, :k], mask=self.mask[:, :k], edge=edge
        )

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
        """Pad a list of graphs into one batch.

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
