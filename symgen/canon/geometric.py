"""The geometric-spectral canonicalizer for S_n × SE(3) (molecules, point clouds with types)."""

import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from symgen.canon import _ops
from symgen.canon.base import Canonicalization, Canonicalizer
from symgen.canon.euclidean import DEFAULT_EIGENGAP_THRESHOLD, DEFAULT_SIGN_THRESHOLD
from symgen.canon.spectral import (
    COORDINATE_WEIGHT,
    DEFAULT_ORDER_THRESHOLD,
    FIEDLER_GAP_SCALE,
    FIEDLER_SKEW_SCALE,
    HANDOVER_WEIGHT,
    TYPE_WEIGHT,
    SpectralKeys,
    spectral_keys,
)
from symgen.groups import Permutation, ProductElement, RigidMotion, permutation_rigid_group
from symgen.state import GeometricGraph

__all__ = [
    "GeometricSpectralCanonicalizer",
    "geometric_spectral_canonicalizer",
    "DEFAULT_SYMMETRY_TOL",
]

#: Default tolerance (relative to the RMS radius) under which two candidate representatives
#: count as the same, so that a sign choice between them is harmless (a symmetry of the graph).
DEFAULT_SYMMETRY_TOL = 1e-4


@dataclass(frozen=True)
class _Solution:
    """Per-graph results on one chunk (float64; ``pos`` already in canonical order)."""

    pos: Tensor
    order: Tensor
    frame: Tensor
    centroid: Tensor
    margin: Tensor
    eigengap: Tensor
    sign_gap: Tensor
    order_gap: Tensor
    fiedler_gap: Tensor

    @staticmethod
    def cat(parts: "list[_Solution]") -> "_Solution":
        """Concatenate chunk results along the batch axis."""
        if len(parts) == 1:
            return parts[0]
        values = {f.name: torch.cat([getattr(q, f.name) for q in parts]) for f in fields(_Solution)}
        return _Solution(**values)


class GeometricSpectralCanonicalizer(Canonicalizer):
    """S_n × SE(3): centre, principal-axis pose, then spectral (Fiedler) node order.

    Algorithm (batched, float64 inside, no loop over graphs):

    1. **translation**: ``p_i = pos_i - μ`` (masked centroid ``μ``);
    2. **pose** (permutation invariant): principal axes of ``C = Σ_i p_i^T p_i / k`` with
       ``λ1 ≥ λ2 ≥ λ3``, made right-handed (chirality kept); among the four right-handed
       sign variants the one with the largest third-moment score
       ``S = Σ_a Σ_i w_i (p_i · e_a)³ / Σ_i w_i |p_i|³`` (``w_i = 1 + |code_i|``, atom-type code)
       is chosen;
    3. **order** (in the canonical frame ``y = p E``): ascending
       ``key_i = a v_i + (1 - |a|) 0.3 t_i + 1e-3 code_i + 1e-3 t_i`` with ``t_i = (y_i · u) / R``
       the coordinate along a fixed generic direction ``u`` of the canonical frame, ``v`` the
       Fiedler vector of ``L = diag(W 1) - W``, ``W_ij = exp(-d_ij² / τ²)`` (+ bond orders,
       ``τ = 0.5 R``), and ``a = w · clamp(Σ_i v_i t_i / (0.05 |t|), -1, 1)`` its signed weight
       (``w`` fades ``v`` out as ``λ2`` becomes degenerate, see
       :func:`~symgen.canon.spectral_keys`). So atoms follow the Fiedler order where it is
       defined; ``t`` separates symmetry-equivalent atoms (e.g. the two mirror-image hydrogens
       of a CH2) that no pose-invariant key can tell apart, and takes over continuously where
       the Fiedler vector is undefined or unsigned. Every key is a continuous function of the
       input, so only crossings of keys change the order: that is the order margin.

    Result: ``representative.pos = y`` sorted by key (centroid 0), nodes and edges permuted
    alike; ``element = ProductElement((Permutation(perm), RigidMotion(E, μ)))`` of
    :func:`~symgen.groups.permutation_rigid_group`, ``act(element, rep) == x``.

    Symmetric graphs: when two sign variants of the frame give the *same* representative
    (within ``symmetry_tol · R``: the flip is a rotational symmetry, e.g. the C2 axis of
    water), the choice between them is harmless and does not count as a tie.

    Margin (``threshold = 1``): ``min(eigengap / eigengap_threshold,
    sign_gap / sign_threshold, order_gap / order_threshold)`` with the raw values in
    ``details``: ``eigengap`` = smallest relative principal-axis gap ``(λ_a - λ_{a+1}) / λ_1``
    (no-extent pairs exempt, as for linear molecules), ``sign_gap`` = score difference to the
    best sign variant giving a *different* representative, ``order_gap`` = smallest gap
    between consecutive sort keys of non-identical atoms. Defaults 1e-2, 1e-5, 1e-5; the last two
    sit 10-30x above the float32 round-off of the quantities they threshold (rounding a float64
    input to float32 moves the raw sign gap by <= 3e-7 and the order gap by <= 1e-6).

    Fallback (deterministic, flagged): for a degenerate spectrum (``eigengap < 1e-2``: methane,
    benzene, spherical and symmetric tops) the frame is built from atoms taken in order of the
    pose-invariant key (spectral key plus distance to the centroid): ``e1`` towards the first
    atom off the centroid, ``e2`` from the next atom's orthogonal part, ``e3 = e1 × e2``. One
    node, coincident nodes and collinear nodes never produce NaN.

    Examples:
        >>> types = torch.eye(3)[[0, 1, 2, 0, 1, 2]].expand(3, 6, 3)
        >>> x = GeometricGraph(torch.randn(3, 6, 3), types,
        ...                    torch.ones(3, 6, dtype=torch.bool))
        >>> canon = geometric_spectral_canonicalizer()
        >>> out = canon(x)
        >>> torch.testing.assert_close(canon.group.act(out.element, out.representative).pos, x.pos)
    """

    threshold = 1.0
    config_exclude = ("workers",)

    def __init__(
        self,
        *,
        eigengap_threshold: float = DEFAULT_EIGENGAP_THRESHOLD,
        sign_threshold: float = DEFAULT_SIGN_THRESHOLD,
        order_threshold: float = DEFAULT_ORDER_THRESHOLD,
        symmetry_tol: float = DEFAULT_SYMMETRY_TOL,
        tau_scale: float = 0.5,
        bond_weight: float = 1.0,
        use_edges: bool = True,
        workers: int | None = None,
    ) -> None:
        for name, value in (
            ("eigengap_threshold", eigengap_threshold),
            ("sign_threshold", sign_threshold),
            ("order_threshold", order_threshold),
            ("tau_scale", tau_scale),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if symmetry_tol < 0:
            raise ValueError(f"symmetry_tol must be >= 0, got {symmetry_tol}")
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1 or None, got {workers}")
        self.group = permutation_rigid_group()
        self.eigengap_threshold = float(eigengap_threshold)
        self.sign_threshold = float(sign_threshold)
        self.order_threshold = float(order_threshold)
        self.symmetry_tol = float(symmetry_tol)
        self.tau_scale = float(tau_scale)
        self.bond_weight = float(bond_weight)
        self.use_edges = bool(use_edges)
        self.workers = workers

    def canonicalize(self, x: GeometricGraph) -> Canonicalization:
        edge = x.edge if self.use_edges else None

        def solve(sl: slice) -> _Solution:
            return self._solve(
                x.pos[sl], x.mask[sl], x.node[sl], None if edge is None else edge[sl]
            )

        sol = _Solution.cat(
            _ops.parallel_map(solve, _ops.chunk_slices(x.batch_size, x.device, self.workers))
        )
        mask = x.mask
        rep = GeometricGraph.unchecked(
            pos=torch.where(mask[..., None], sol.pos.to(x.dtype), x.pos),
            node=_ops.gather_nodes(sol.order, x.node),
            mask=mask,
            edge=None if x.edge is None else _ops.gather_edges(sol.order, x.edge),
        )
        element = ProductElement(
            (
                Permutation(torch.argsort(sol.order, dim=1)),
                RigidMotion(sol.frame.to(x.dtype), sol.centroid.to(x.dtype)),
            )
        )
        details = {
            "eigengap": sol.eigengap.to(x.dtype),
            "sign_gap": sol.sign_gap.to(x.dtype),
            "order_gap": sol.order_gap.to(x.dtype),
            "fiedler_gap": sol.fiedler_gap.to(x.dtype),
        }
        margin = sol.margin.to(x.dtype)
        return Canonicalization(rep, element, margin, margin < self.threshold, details)

    def _solve(self, pos_in: Tensor, mask: Tensor, node: Tensor, edge: Tensor | None) -> _Solution:
        """The algorithm on one chunk of graphs, in float64."""
        pos = pos_in.to(_ops.WORK_DTYPE)
        p, mu = _ops.centered(pos, mask)
        R = _ops.rms_radius(p, mask)
        Rc = R.clamp(min=1e-12)
        # pose-invariant spectral part (skew sign rule); its key orders atoms for the fallback
        keys = spectral_keys(
            pos, mask, node, edge, tau_scale=self.tau_scale, bond_weight=self.bond_weight
        )

        # pose: principal axes; frame from atoms for degenerate spectra
        evals, E0 = _ops.principal_axes(p, mask)
        eigengap = _ops.eigengap_margin(evals)
        degenerate = eigengap < self.eigengap_threshold
        no_extent = evals[:, 0] <= 1e-24  # one node or all coincident: the identity frame
        f = (degenerate | no_extent).nonzero().flatten()
        if f.numel():
            priority = keys.key[f] + 1e-3 * p[f].norm(dim=-1) / Rc[f, None]
            E0 = E0.index_put((f,), _ops.frame_from_atoms(p[f], mask[f], priority, R[f]))

        # invariant sign choice among the four right-handed variants y_v = (p E0) diag(s_v);
        # the score S_v = Σ_a s_va m_a is linear in the per-axis third moments m_a
        weight = 1.0 + keys.code.abs()
        y0 = torch.einsum("bni,bij->bnj", p, E0)
        moments = _ops.third_moment_scores(y0, p, mask, weight)  # (b, 3)
        flips = _ops.proper_sign_flips(p.dtype, p.device)  # (4, 3)
        scores = moments @ flips.T  # (b, 4)
        top = scores.topk(2, dim=1)
        choice = top.indices[:, 0]
        sign_gap = top.values[:, 0] - top.values[:, 1]
        # Two variants can give the same representative (within ε = symmetry_tol · R per
        # coordinate) only if their scores differ by at most 3 ε Σ w r² / Σ w r³ (+ O(ε²)):
        # above twice that bound the best-scoring variant is the answer and needs no comparison.
        m = mask.to(p.dtype) * weight
        r = p.norm(dim=-1)
        bound = (
            6.0 * self.symmetry_tol * Rc * (m * r * r).sum(-1) / (m * r**3).sum(-1).clamp(1e-300)
        )
        close = (sign_gap <= bound).nonzero().flatten()
        if close.numel():
            c_choice, c_gap = self._compare_variants(
                y0[close], mask[close], keys, close, scores[close], Rc[close], flips
            )
            choice = choice.index_put((close,), c_choice)
            sign_gap = sign_gap.index_put((close,), c_gap)
        sign_gap = torch.where(degenerate, torch.full_like(sign_gap, math.inf), sign_gap)

        # node order in the chosen frame
        signs = flips[choice]  # (b, 3)
        y = y0 * signs[:, None, :]
        key = self._order_key(y, mask, keys.fiedler, keys.fiedler_gap, keys.code, Rc)
        order = _ops.sort_nodes(key, mask)
        y_sorted = _ops.gather_nodes(order, y)
        same = _ops.identical_neighbours(y_sorted, torch.gather(keys.code, 1, order), R, 1e-7)
        order_gap = _ops.consecutive_gap(torch.gather(key, 1, order), mask, same)

        margin = torch.minimum(
            torch.minimum(eigengap / self.eigengap_threshold, sign_gap / self.sign_threshold),
            order_gap / self.order_threshold,
        )
        return _Solution(
            pos=y_sorted,
            order=order,
            frame=E0 * signs[:, None, :],
            centroid=mu,
            margin=margin,
            eigengap=eigengap,
            sign_gap=sign_gap,
            order_gap=order_gap,
            fiedler_gap=keys.fiedler_gap,
        )

    @staticmethod
    def _order_key(
        y: Tensor, mask: Tensor, fiedler: Tensor, fiedler_gap: Tensor, code: Tensor, Rc: Tensor
    ) -> Tensor:
        """Sort keys of atoms with canonical-frame coordinates ``y`` (``(..., b, n, 3)``)."""
        t = _ops.generic_projection(y) / Rc[:, None]  # (..., b, n)
        t_real = t * mask.to(t.dtype)
        stat = (fiedler * t_real).sum(-1) / t_real.norm(dim=-1).clamp(min=1e-300)
        w = (fiedler_gap / FIEDLER_GAP_SCALE - 1.0).clamp(0.0, 1.0)
        a = (w * (stat / FIEDLER_SKEW_SCALE).clamp(-1.0, 1.0))[..., None]  # signed Fiedler weight
        handover = HANDOVER_WEIGHT * (1.0 - a.abs()) + COORDINATE_WEIGHT
        return a * fiedler + TYPE_WEIGHT * code + handover * t

    def _compare_variants(
        self,
        y0: Tensor,
        mask: Tensor,
        keys: SpectralKeys,
        rows: Tensor,
        scores: Tensor,
        Rc: Tensor,
        flips: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """Sign choice for near-tied graphs ``rows``: build all four representatives and compare.

        Variants whose sorted representative equals the best-scoring one's (within
        ``symmetry_tol · R``, same type sequence) differ by a symmetry of the graph: the first
        of them is taken, so that a canonical input comes back with the identity element, and
        they do not count towards the sign gap. Returns the choice and the sign gap.
        """
        k, n = mask.shape
        y = y0[None] * flips[:, None, None, :]  # (4, k, n, 3)
        code = keys.code[rows]
        key = self._order_key(y, mask, keys.fiedler[rows], keys.fiedler_gap[rows], code, Rc)
        mask4 = mask[None].expand(4, k, n).reshape(4 * k, n)
        order = _ops.sort_nodes(key.reshape(4 * k, n), mask4)
        y_sorted = _ops.gather_nodes(order, y.reshape(4 * k, n, 3)).reshape(4, k, n, 3)
        code_sorted = torch.gather(code[None].expand(4, k, n), 2, order.reshape(4, k, n))
        sc = scores.T  # (4, k)
        best = sc.argmax(0)
        idx = torch.arange(k, device=mask.device)
        y_best, code_best = y_sorted[best, idx], code_sorted[best, idx]
        diff = ((y_sorted - y_best[None]).abs().amax(-1) * mask[None]).amax(-1) / Rc[None]
        differs = (diff > self.symmetry_tol) | (code_sorted != code_best[None]).any(-1)
        gaps = torch.where(differs, sc[best, idx][None] - sc, torch.full_like(sc, math.inf))
        return (~differs).to(torch.int8).argmax(0), gaps.min(0).values

    def __repr__(self) -> str:
        return (
            f"GeometricSpectralCanonicalizer(eigengap_threshold={self.eigengap_threshold}, "
            f"sign_threshold={self.sign_threshold}, order_threshold={self.order_threshold}, "
            f"symmetry_tol={self.symmetry_tol}, tau_scale={self.tau_scale})"
        )


def geometric_spectral_canonicalizer(
    *,
    eigengap_threshold: float = DEFAULT_EIGENGAP_THRESHOLD,
    sign_threshold: float = DEFAULT_SIGN_THRESHOLD,
    order_threshold: float = DEFAULT_ORDER_THRESHOLD,
    symmetry_tol: float = DEFAULT_SYMMETRY_TOL,
    tau_scale: float = 0.5,
    bond_weight: float = 1.0,
    use_edges: bool = True,
    workers: int | None = None,
) -> Canonicalizer:
    """The S_n × SE(3) canonicalizer for molecules: a :class:`GeometricSpectralCanonicalizer`.

    Its ``element`` is a ``ProductElement((Permutation, RigidMotion))`` of
    ``permutation_rigid_group()`` and its representative has centroid 0. See the class for the
    algorithm, margins and fallbacks.

    Examples:
        >>> canon = geometric_spectral_canonicalizer()
        >>> canon.group
        SymmetricGroup() × SE3(translation_scale=0.0)
    """
    return GeometricSpectralCanonicalizer(
        eigengap_threshold=eigengap_threshold,
        sign_threshold=sign_threshold,
        order_threshold=order_threshold,
        symmetry_tol=symmetry_tol,
        tau_scale=tau_scale,
        bond_weight=bond_weight,
        use_edges=use_edges,
        workers=workers,
    )
