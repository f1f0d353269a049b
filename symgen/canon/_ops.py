"""Batched building blocks shared by the canonicalizers (private; all math in float64).

Everything here works on padded batches with a *prefix* node mask and never loops over graphs
in Python (only over the distinct graph sizes, at most ``n`` iterations, for the eigensolver).
"""

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch
from torch import Tensor

from symgen.masking import gather_edges, gather_nodes, masked_center, masked_mean  # noqa: F401

_T = TypeVar("_T")

WORK_DTYPE = torch.float64

#: A fixed generic direction for coordinate tie-breaks: no symmetric molecule keeps it fixed.
GENERIC_DIRECTION = (0.5257311121191336, 0.6180339887498949, 0.5849625007211562)
#: Scale below which a length counts as zero, relative to the RMS radius of the graph.
TINY = 1e-9


#: Smallest number of graphs worth a thread of their own.
MIN_CHUNK = 512


def chunk_slices(batch: int, device: torch.device, workers: int | None) -> list[slice]:
    """Split ``range(batch)`` into at most ``workers`` contiguous chunks of >= :data:`MIN_CHUNK`.

    ``workers=None`` means ``torch.get_num_threads()`` on the CPU and 1 elsewhere (a GPU runs
    the whole batch at once).
    """
    if workers is None:
        workers = torch.get_num_threads() if device.type == "cpu" else 1
    count = max(1, min(workers, batch // MIN_CHUNK))
    bounds = [round(i * batch / count) for i in range(count + 1)]
    return [slice(bounds[i], bounds[i + 1]) for i in range(count)]


def parallel_map(fn: Callable[[slice], _T], chunks: Sequence[slice]) -> list[_T]:
    """``[fn(c) for c in chunks]``, concurrently in worker threads when there are several.

    Torch releases the GIL inside its kernels, so chunks of batched tensor work (notably the
    per-matrix LAPACK eigensolver) run on separate cores. The threads live only for this call:
    a pool kept alive keeps its threads' OpenMP teams too, which slowed every later torch
    operation of the process by ~30 % (measured: float32 training right after canonicalizing
    QM9 ran at 337 instead of 487 molecules/s; ``benchmarks/training_throughput.py
    --cold-data``).
    """
    if len(chunks) <= 1:
        return [fn(c) for c in chunks]
    with ThreadPoolExecutor(max_workers=len(chunks), thread_name_prefix="symgen-canon") as pool:
        return list(pool.map(fn, chunks))


def centered(pos: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Positions minus their masked centroid, zero on padding; also returns the centroid."""
    mu = masked_mean(pos, mask)
    return masked_center(pos, mask), mu


def rms_radius(p: Tensor, mask: Tensor) -> Tensor:
    """RMS distance of the real nodes of centred positions ``p`` to the origin, ``(b,)``."""
    k = mask.sum(-1).clamp(min=1).to(p.dtype)
    return ((p * p).sum((1, 2)) / k).sqrt()


def type_code(node: Tensor) -> Tensor:
    """A scalar code per node: ``node @ r`` with fixed irrational weights ``r_j ∈ (0, 1)``.

    Equal feature vectors give equal codes; different one-hot classes give codes at least
    ~0.03 apart.
    """
    f = node.shape[-1]
    j = torch.arange(1, f + 1, dtype=WORK_DTYPE, device=node.device)
    r = torch.remainder(j * 0.6180339887498949, 1.0) * 0.9 + 0.05
    return node.to(WORK_DTYPE) @ r


def generic_projection(p: Tensor) -> Tensor:
    """``p @ u`` for the fixed unit vector :data:`GENERIC_DIRECTION`."""
    u = torch.tensor(GENERIC_DIRECTION, dtype=p.dtype, device=p.device)
    return p @ (u / u.norm())


def sort_nodes(key: Tensor, mask: Tensor) -> Tensor:
    """Stable ascending argsort of real nodes by ``key``; padding slots stay in place.

    Returns ``order`` with ``sorted[j] = x[order[j]]``; ``order[j] = j`` on padding.
    """
    k = torch.where(mask, key, torch.full_like(key, math.inf))
    return torch.sort(k, dim=1, stable=True).indices


def consecutive_gap(
    key_sorted: Tensor, mask: Tensor, identical_next: Tensor | None = None
) -> Tensor:
    """Smallest gap between consecutive sorted keys of real nodes, ``(b,)`` (``inf`` if none).

    Pairs flagged in ``identical_next`` (``(b, n-1)``: node ``j`` and ``j+1`` carry the same
    position and features) are skipped: swapping identical nodes changes nothing.
    """
    b, n = key_sorted.shape
    if n < 2:
        return torch.full((b,), math.inf, dtype=key_sorted.dtype, device=key_sorted.device)
    gaps = key_sorted[:, 1:] - key_sorted[:, :-1]
    valid = mask[:, 1:] & mask[:, :-1]
    if identical_next is not None:
        valid = valid & ~identical_next
    gaps = torch.where(valid, gaps.abs(), torch.full_like(gaps, math.inf))
    return gaps.min(-1).values


def identical_neighbours(
    pos_sorted: Tensor, code_sorted: Tensor, scale: Tensor, tol: float
) -> Tensor:
    """``(b, n-1)``: consecutive nodes share features and lie within ``tol * scale``."""
    same_pos = (pos_sorted[:, 1:] - pos_sorted[:, :-1]).abs().amax(-1) <= tol * scale[:, None]
    same_code = code_sorted[:, 1:] == code_sorted[:, :-1]
    return same_pos & same_code


# ---------------------------------------------------------------------------- eigensolver
def laplacian_fiedler(
    p: Tensor,
    mask: Tensor,
    tau: Tensor,
    edge: Tensor | None = None,
    bond_weight: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """Fiedler vectors of the pose-invariant affinity graphs of centred positions ``p``.

    ``W_ij = exp(-d_ij² / τ²) + β Σ_e edge_ij,e · e`` on real pairs ``i != j`` (the edge class
    index is its weight), ``L = diag(W 1) - W``. Padding never enters the eigenproblem: graphs
    are grouped by their number of real nodes ``k`` and each group's ``k × k`` Laplacian is
    built and diagonalized on its own, so padding cannot create spurious zero eigenvalues (and
    no work is spent on padding). Graphs with ``k <= 2`` have no informative Fiedler vector
    (``k = 2`` is symmetric under the swap): they get ``v = 0`` and gap 0.

    Returns:
        ``(v, gap)``: unit Fiedler vectors ``(b, n)`` (zero on padding, arbitrary sign) and the
        relative gap ``min(λ2 - λ1, λ3 - λ2) / λ3`` with ``λ1 = 0`` (0 when ``λ2`` is not a
        simple, separated eigenvalue).
    """
    b, n = mask.shape
    counts = mask.sum(-1)
    v = torch.zeros(b, n, dtype=p.dtype, device=p.device)
    gap = torch.zeros(b, dtype=p.dtype, device=p.device)
    tau2 = (tau * tau).clamp(min=1e-300)
    for k in torch.unique(counts).tolist():
        if k < 3:
            continue
        idx = (counts == k).nonzero().flatten()
        q = p[idx, :k]
        sq = (q * q).sum(-1)
        d2 = (sq[:, :, None] + sq[:, None, :] - 2 * q @ q.transpose(1, 2)).clamp(min=0.0)
        W = torch.exp(d2 / -tau2[idx, None, None])
        if edge is not None and edge.shape[-1] > 0:
            cls = torch.arange(edge.shape[-1], dtype=p.dtype, device=p.device)
            bonds = edge[idx, :k, :k].to(p.dtype) @ cls
            W = W + bond_weight * 0.5 * (bonds + bonds.transpose(1, 2))
        W.diagonal(dim1=1, dim2=2).zero_()
        L = torch.diag_embed(W.sum(-1)) - W
        evals, evecs = torch.linalg.eigh(L)
        v[idx, :k] = evecs[:, :, 1]
        lam2, lam3 = evals[:, 1], evals[:, 2]
        gap[idx] = (torch.minimum(lam2, lam3 - lam2) / lam3.clamp(min=1e-300)).clamp(min=0.0)
    return v, gap


def principal_axes(p: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Eigenvalues (descending) and right-handed eigenvector frames of the masked covariance.

    ``C = Σ_i m_i p_i^T p_i / k`` for centred ``p``; columns of ``E`` are the axes, ``det E = +1``.
    For linear graphs (``λ2 <= 1e-8 λ1``) ``e2, e3`` come from :func:`fixed_perpendicular`.
    """
    k = mask.sum(-1).clamp(min=1).to(p.dtype)
    C = p.transpose(1, 2) @ p / k[:, None, None]
    evals, evecs = torch.linalg.eigh(C)
    evals = evals.flip(-1)
    E = evecs.flip(-1)
    # a fixed (not invariant) sign convention: largest component of each axis positive, so that
    # an already canonical input gets the identity frame; invariant choices come later
    big = torch.gather(E, 1, E.abs().argmax(1, keepdim=True))
    E = E * torch.where(big < 0, -1.0, 1.0).to(E.dtype)
    det = torch.linalg.det(E)
    E = torch.cat(
        [E[:, :, :2], E[:, :, 2:] * torch.where(det < 0, -1.0, 1.0)[:, None, None].to(E.dtype)], -1
    )
    # linear graphs: the transverse axes are arbitrary (and irrelevant); complete e1 by a fixed rule
    linear = evals[:, 1] <= 1e-8 * evals[:, 0].clamp(min=1e-300)
    e1 = E[:, :, 0]
    e2 = fixed_perpendicular(e1)
    E_line = torch.stack([e1, e2, torch.linalg.cross(e1, e2)], -1)
    return evals, torch.where(linear[:, None, None], E_line, E)


def eigengap_margin(evals: Tensor, extent_tol: float = 1e-8) -> Tensor:
    """Smallest relative eigengap ``(λ_a - λ_{a+1}) / λ_1`` of a descending 3-spectrum.

    A pair whose eigenvalues are both below ``extent_tol · λ_1`` is exempt (``inf``): points
    with no extent in that plane (a linear molecule) look the same in any basis of it. A graph
    with no extent at all (one node, or all nodes coincident) has margin ``inf``.
    """
    lam1 = evals[:, 0]
    scale = lam1.clamp(min=1e-300)
    gaps = (evals[:, :2] - evals[:, 1:]) / scale[:, None]
    flat = evals[:, :2] <= extent_tol * scale[:, None]
    gaps = torch.where(flat, torch.full_like(gaps, math.inf), gaps)
    margin = gaps.min(-1).values
    return torch.where(lam1 <= 1e-24, torch.full_like(margin, math.inf), margin)


def fixed_perpendicular(e1: Tensor) -> Tensor:
    """A unit vector orthogonal to the unit vectors ``e1`` (``(b, 3)``), by a fixed rule.

    The first coordinate axis (within 0.1 of) least aligned with ``e1``, orthogonalized: so
    ``e1 = x`` gives ``y`` and frames completed from it are the identity, which keeps canonical
    representatives of linear graphs idempotent.
    """
    basis = torch.eye(3, dtype=e1.dtype, device=e1.device)
    near_min = e1.abs() <= e1.abs().amin(-1, keepdim=True) + 0.1  # first such axis: round-off proof
    least = basis[near_min.to(torch.int8).argmax(-1)]
    fixed = least - (least * e1).sum(-1, keepdim=True) * e1
    return fixed / fixed.norm(dim=-1, keepdim=True).clamp(min=1e-300)


def frame_from_atoms(p: Tensor, mask: Tensor, priority: Tensor, scale: Tensor) -> Tensor:
    """A right-handed frame built from the first atoms in ``priority`` order (the fallback).

    ``e1`` points to the first atom at distance ``> 1e-3 · scale`` from the origin, ``e2`` to
    the next atom's component orthogonal to ``e1`` (first one with a clear component);
    ``e3 = e1 × e2``. Without such atoms the missing axes come from a fixed construction
    (identity for a point, a perpendicular for a line). Deterministic and never NaN.
    """
    b, n, _ = p.shape
    dtype, device = p.dtype, p.device
    order = sort_nodes(priority, mask)
    ps = gather_nodes(order, p)
    ms = gather_nodes(order, mask)
    thresh = (1e-3 * scale).clamp(min=1e-300)[:, None]
    big = ps.norm(dim=-1)
    ok1 = ms & (big > thresh)
    has1 = ok1.any(-1)
    i1 = ok1.to(torch.int8).argmax(-1)
    a1 = ps[torch.arange(b, device=device), i1]
    ex = torch.tensor([1.0, 0.0, 0.0], dtype=dtype, device=device).expand(b, 3)
    e1 = torch.where(has1[:, None], a1 / a1.norm(dim=-1, keepdim=True).clamp(min=1e-300), ex)
    perp = ps - (ps @ e1[:, :, None]) * e1[:, None, :]
    ok2 = ms & (perp.norm(dim=-1) > thresh)
    has2 = ok2.any(-1)
    i2 = ok2.to(torch.int8).argmax(-1)
    a2 = perp[torch.arange(b, device=device), i2]
    a2 = torch.where(has2[:, None], a2, fixed_perpendicular(e1))
    e2 = a2 / a2.norm(dim=-1, keepdim=True).clamp(min=1e-300)
    e3 = torch.linalg.cross(e1, e2)
    return torch.stack([e1, e2, e3], -1)


def proper_sign_flips(dtype: torch.dtype, device: torch.device) -> Tensor:
    """The four sign patterns ``s`` with ``s1 s2 s3 = +1`` (right-handed frames), ``(4, 3)``."""
    return torch.tensor(
        [[1.0, 1.0, 1.0], [1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]],
        dtype=dtype,
        device=device,
    )


def third_moment_scores(y: Tensor, p: Tensor, mask: Tensor, weight: Tensor | None = None) -> Tensor:
    """Third moments ``m_a = Σ_i w_i y_ia³ / Σ_i w_i |p_i|³`` of frame coordinates ``y``.

    Returns ``(..., b, 3)``, one value per axis ``a``.

    ``w_i = 1 + code_i`` (node-feature code) breaks the tie of geometrically symmetric but
    chemically different graphs (e.g. a heteronuclear diatomic); ``w = 1`` without features.
    """
    m = mask.to(y.dtype) if weight is None else mask.to(y.dtype) * weight
    denom = ((p.norm(dim=-1) ** 3) * m).sum(-1).clamp(min=1e-300)
    return (y**3 * m[..., None]).sum(-2) / denom[..., None]
