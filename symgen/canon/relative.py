"""Canonicalization relative to a fixed part: the fixed part's frame and order for the whole graph.

When some nodes of a graph are given (a scaffold to complete), the canonical frame and order of
the whole graph are unknown while the rest is generated. The fixed part's own canonical form is
known, so it serves as the frame of the whole graph:

1. the fixed nodes are moved to the front (:func:`fixed_first`);
2. the fixed part alone is canonicalized (:func:`canonicalize_fixed_part`): its element
   ``g_F`` maps the fixed part's canonical representative ``κ(F)`` onto ``F``;
3. ``g_F⁻¹`` is applied to the whole graph, so the fixed nodes come first in their canonical
   order and pose, and every other node is expressed in that frame;
4. the other nodes follow, sorted by their coordinates in that frame (lexicographically on
   the first, second, third axis), padding last.

Training data are mapped this way (:func:`canonicalize_relative`); a sampler generates the free
nodes next to ``κ(F)`` and maps the result back with ``g_F``, so the fixed nodes land exactly
where they were given and the distribution of completions moves with ``F``: completions of
``h · F`` are ``h ·`` completions of ``F`` for every group element ``h`` (exactly, for fixed
parts the canonicalizer does not flag).
"""

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from symgen.canon.base import Canonicalization, Canonicalizer
from symgen.groups import axis_angle_to_matrix, random_rotation
from symgen.masking import gather_edges, gather_nodes, prefix_mask
from symgen.shapes import NodeMask, PerGraphBool, PerGraphInt, Permutations
from symgen.state import GeometricGraph

__all__ = [
    "PointSymmetries",
    "RelativeCanonicalization",
    "canonicalize_fixed_part",
    "canonicalize_relative",
    "fixed_first",
    "point_symmetries",
    "reorder_nodes",
]


def reorder_nodes(x: GeometricGraph, perm: Permutations) -> GeometricGraph:
    """``x`` with node slot ``j`` taken from slot ``perm[:, j]`` (nodes, edges and mask alike).

    Unlike a group action this also moves the mask, so ``perm`` may move real nodes past
    padding.

    Examples:
        >>> x = GeometricGraph(torch.arange(6.).reshape(1, 2, 3), torch.zeros(1, 2, 1),
        ...                    torch.ones(1, 2, dtype=torch.bool))
        >>> reorder_nodes(x, torch.tensor([[1, 0]])).pos[0, :, 0].tolist()
        [3.0, 0.0]
    """
    edge = None if x.edge is None else gather_edges(perm, x.edge)
    return GeometricGraph.unchecked(
        gather_nodes(perm, x.pos), gather_nodes(perm, x.node), gather_nodes(perm, x.mask), edge
    )


def _stable_order(group: Tensor, keys: list[Tensor]) -> Permutations:
    """Slots sorted by ``group`` (ascending), then lexicographically by ``keys`` (stable)."""
    b, n = group.shape
    perm = torch.arange(n, device=group.device).expand(b, n).clone()
    for key in reversed(keys):
        perm = torch.gather(perm, 1, torch.argsort(torch.gather(key, 1, perm), dim=1, stable=True))
    return torch.gather(perm, 1, torch.argsort(torch.gather(group, 1, perm), dim=1, stable=True))


def fixed_first(x: GeometricGraph, fixed: NodeMask) -> tuple[GeometricGraph, PerGraphInt]:
    """``x`` with its fixed nodes moved to the front (in their input order), the other real
    nodes after them (in their input order) and padding last; returns the graph and the number
    of fixed nodes of each graph.

    Examples:
        >>> x = GeometricGraph(torch.arange(9.).reshape(1, 3, 3), torch.zeros(1, 3, 1),
        ...                    torch.ones(1, 3, dtype=torch.bool))
        >>> y, k = fixed_first(x, torch.tensor([[False, True, True]]))
        >>> y.pos[0, :, 0].tolist(), k.tolist()
        ([3.0, 6.0, 0.0], [2])
    """
    fixed = fixed & x.mask
    group = torch.where(fixed, 0, torch.where(x.mask, 1, 2))
    slots = torch.arange(x.max_nodes, device=x.device).expand_as(group)
    perm = _stable_order(group, [slots])
    return reorder_nodes(x, perm), fixed.sum(1)


def _restricted(x: GeometricGraph, k: PerGraphInt) -> GeometricGraph:
    """The sub-graph of the first ``k`` nodes of each graph, in the same node slots."""
    return GeometricGraph.unchecked(
        x.pos, x.node, prefix_mask(k, x.max_nodes), x.edge
    ).zero_padding()


def canonicalize_fixed_part(
    canonicalizer: Canonicalizer, x: GeometricGraph, k: PerGraphInt
) -> Canonicalization:
    """Canonicalize the sub-graph of the first ``k_i`` nodes of each graph of ``x``.

    The result lives in ``x``'s node slots with mask ``prefix_mask(k)``; its element ``g_F``
    (``act(g_F, κ(F)) == F``) leaves the slots from ``k_i`` on in place, so it also acts on
    whole graphs whose first ``k_i`` nodes are the fixed part: the permutation moves only the
    fixed nodes, the rigid motion moves every real node.
    """
    return canonicalizer.canonicalize(_restricted(x, k))


@dataclass(frozen=True)
class RelativeCanonicalization:
    """The result of :func:`canonicalize_relative`.

    Attributes:
        representative: the graph in the fixed part's canonical frame: its fixed nodes first
            in their canonical order, the other real nodes sorted by their coordinates in that
            frame, padding last.
        fixed: ``(b, n)`` prefix mask of the fixed nodes of ``representative``.
        flagged: the canonicalizer flagged the fixed part (its frame or order is near a tie).
    """

    representative: GeometricGraph
    fixed: NodeMask
    flagged: PerGraphBool


def canonicalize_relative(
    canonicalizer: Canonicalizer, x: GeometricGraph, fixed: NodeMask
) -> RelativeCanonicalization:
    """Express each graph of ``x`` in the canonical frame and order of its fixed nodes.

    See the module docstring. ``canonicalizer.group`` must act on whole graphs through the
    element of the fixed part (true for :func:`~symgen.canon.geometric_spectral_canonicalizer`
    and any canonicalizer whose elements are permutations and rigid motions).

    Examples:
        >>> from symgen.canon import geometric_spectral_canonicalizer
        >>> g = torch.Generator().manual_seed(0)
        >>> x = GeometricGraph(torch.randn(2, 6, 3, generator=g), torch.eye(3)[[0, 1, 2, 0, 1, 2]]
        ...                    .expand(2, 6, 3), torch.ones(2, 6, dtype=torch.bool))
        >>> out = canonicalize_relative(geometric_spectral_canonicalizer(), x,
        ...                             torch.tensor([[True, True, True, True, False, False]] * 2))
        >>> out.fixed.sum(1).tolist()
        [4, 4]
    """
    if fixed.shape != x.mask.shape or fixed.dtype != torch.bool:
        raise ValueError(
            f"fixed must be a bool mask shaped like the batch {tuple(x.mask.shape)}, got "
            f"{fixed.dtype} {tuple(fixed.shape)}"
        )
    front, k = fixed_first(x, fixed)
    canon = canonicalize_fixed_part(canonicalizer, front, k)
    group = canonicalizer.group
    framed = group.act(group.inverse(canon.element), front)
    mask_f = prefix_mask(k, x.max_nodes)
    kind = torch.where(mask_f, 0, torch.where(framed.mask, 1, 2))
    slots = torch.arange(x.max_nodes, device=x.device, dtype=framed.dtype).expand_as(kind)
    free = kind == 1
    keys = [torch.where(free, framed.pos[..., a], slots) for a in range(3)]
    rep = reorder_nodes(framed, _stable_order(kind, keys))
    return RelativeCanonicalization(rep.zero_padding(), mask_f, canon.flagged)


@dataclass(frozen=True)
class PointSymmetries:
    """The proper rotations about the origin that map a set of points with features (and the
    edges among them) onto itself: the rotational stabilizer of a centred fixed part.

    Attributes:
        rotations: ``(m, 3, 3)`` the finite part, identity first.
        axis: ``(3,)`` unit vector when the points lie on one line through the origin: every
            rotation about it is a symmetry as well (composed with ``rotations``).
        every_rotation: a single point at the origin: every rotation is a symmetry.
    """

    rotations: Tensor
    axis: Tensor | None = None
    every_rotation: bool = False

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """One symmetry drawn uniformly (Haar measure of the stabilizer), ``(3, 3)``."""
        dtype = self.rotations.dtype
        dev = None if generator is None else generator.device
        if self.every_rotation:
            return random_rotation(1, generator=generator, dtype=dtype, device=dev)[0].cpu()
        pick = int(torch.randint(len(self.rotations), (), generator=generator, device=dev))
        R = self.rotations[pick]
        if self.axis is not None:
            u = torch.rand((), generator=generator, dtype=torch.float64, device=dev).cpu()
            R = axis_angle_to_matrix(self.axis.double(), 2 * math.pi * u).to(dtype) @ R
        return R


def _frame(u: Tensor, v: Tensor) -> Tensor:
    """Right-handed orthonormal frame (columns) from two independent vectors."""
    e1 = u / u.norm()
    w = v - (v @ e1) * e1
    e2 = w / w.norm()
    return torch.stack([e1, e2, torch.linalg.cross(e1, e2)], 1)


def _maps_onto_itself(
    R: Tensor, pos: Tensor, kind: Tensor, edge: Tensor | None, tol: float
) -> bool:
    """Whether ``R`` maps every point onto a distinct point of the same kind (within ``tol``)
    and the induced permutation keeps the edges."""
    moved = pos @ R.T
    d = torch.cdist(moved, pos)
    d = torch.where(kind[:, None] == kind[None, :], d, torch.full_like(d, math.inf))
    dist, target = d.min(1)
    if bool((dist > tol).any()) or len(set(target.tolist())) != len(target):
        return False
    if edge is None:
        return True
    return bool(torch.equal(edge[target][:, target], edge))


def point_symmetries(
    pos: Tensor, node: Tensor, edge: Tensor | None = None, *, tol: float = 5e-3
) -> PointSymmetries:
    """The rotational stabilizer of ``k`` centred points with features ``node`` and edges.

    A rotation about the origin is determined by the images of two points ``a, b`` whose
    position vectors are independent; every candidate pair ``(a', b')`` of the same kinds,
    norms and angle gives one rotation, kept if it maps the whole set onto itself (within
    ``tol`` times the largest norm, features equal, edges kept). Points on one line through
    the origin have a continuous stabilizer (:attr:`PointSymmetries.axis`), plus a half-turn
    about a perpendicular axis when that maps the set onto itself.

    Examples:
        >>> c, s = math.cos(2 * math.pi / 3), math.sin(2 * math.pi / 3)
        >>> tri = torch.tensor([[1.0, 0, 0], [c, s, 0], [c, -s, 0]], dtype=torch.float64)
        >>> len(point_symmetries(tri, torch.ones(3, 1)).rotations)   # D3: 3 turns, 3 flips
        6
        >>> len(point_symmetries(tri * torch.tensor([1.0, 1.2, 1]), torch.ones(3, 1)).rotations)
        2
    """
    p = pos.double()
    _, kind = torch.unique(node, dim=0, return_inverse=True)
    norms = p.norm(dim=1)
    scale = float(norms.max()) if len(norms) else 0.0
    eye = torch.eye(3, dtype=torch.float64)[None]
    if scale < 1e-9:
        return PointSymmetries(eye, every_rotation=True)
    tol = tol * scale
    a = int(norms.argmax())
    cross = torch.linalg.cross(p[a].expand_as(p), p, dim=-1).norm(dim=1) / (norms + 1e-12)
    b = int(cross.argmax())
    if float(cross[b]) <= tol:  # collinear: rotations about the line, and maybe a half-turn
        axis = p[a] / norms[a]
        helper = torch.eye(3, dtype=torch.float64)[int(axis.abs().argmin())]
        perp = torch.linalg.cross(axis, helper)
        perp = perp / perp.norm()
        half = 2 * torch.outer(perp, perp) - torch.eye(3, dtype=torch.float64)
        found = [eye[0]] + ([half] if _maps_onto_itself(half, p, kind, edge, tol) else [])
        return PointSymmetries(torch.stack(found), axis=axis)
    base = _frame(p[a], p[b])
    dot = float(p[a] @ p[b])
    found = [eye[0]]
    for a2 in torch.nonzero((kind == kind[a]) & ((norms - norms[a]).abs() <= tol)).flatten():
        for b2 in torch.nonzero((kind == kind[b]) & ((norms - norms[b]).abs() <= tol)).flatten():
            if a2 == b2 or abs(float(p[a2] @ p[b2]) - dot) > tol * scale:
                continue
            R = _frame(p[a2], p[b2]) @ base.T
            if _maps_onto_itself(R, p, kind, edge, tol) and not any(
                torch.allclose(R, Q, atol=1e-6) for Q in found
            ):
                found.append(R)
    return PointSymmetries(torch.stack(found))
