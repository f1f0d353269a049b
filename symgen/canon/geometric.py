"""The geometric-spectral canonicalizer for S_n × SE(3) (molecules, point clouds with types)."""

import math

import torch

from symgen.canon import _ops
from symgen.canon.base import Canonicalization, Canonicalizer
from symgen.canon.euclidean import DEFAULT_EIGENGAP_THRESHOLD, DEFAULT_SIGN_THRESHOLD, _select_signs
from symgen.canon.spectral import (
    COORDINATE_WEIGHT,
    DEFAULT_ORDER_THRESHOLD,
    FIEDLER_GAP_SCALE,
    FIEDLER_SKEW_SCALE,
    HANDOVER_WEIGHT,
    TYPE_WEIGHT,
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
        self.group = permutation_rigid_group()
        self.eigengap_threshold = float(eigengap_threshold)
        self.sign_threshold = float(sign_threshold)
        self.order_threshold = float(order_threshold)
        self.symmetry_tol = float(symmetry_tol)
        self.tau_scale = float(tau_scale)
        self.bond_weight = float(bond_weight)
        self.use_edges = bool(use_edges)

    def canonicalize(self, x: GeometricGraph) -> Canonicalization:
        b, n = x.mask.shape
        mask, dev = x.mask, x.device
        rows = torch.arange(b, device=dev)
        pos = x.pos.to(_ops.WORK_DTYPE)
        p, mu = _ops.centered(pos, mask)
        R = _ops.rms_radius(p, mask)
        Rc = R.clamp(min=1e-12)
        keys = spectral_keys(
            pos,
            mask,
            x.node,
            x.edge if self.use_edges else None,
            tau_scale=self.tau_scale,
            bond_weight=self.bond_weight,
        )  # pose-invariant part (skew sign rule), for the fallback frame only

        # pose: principal axes, fallback frame for degenerate spectra, invariant sign choice
        evals, E = _ops.principal_axes(p, mask)
        eigengap = _ops.eigengap_margin(evals)
        degenerate = eigengap < self.eigengap_threshold
        priority = keys.key + 1e-3 * p.norm(dim=-1) / Rc[:, None]
        E_fb = _ops.frame_from_atoms(p, mask, priority, R)
        no_extent = evals[:, 0] <= 1e-24  # one node or all coincident: the identity frame
        E0 = torch.where((degenerate | no_extent)[:, None, None], E_fb, E)
        frames, scores, y = _select_signs(
            p, mask, E0, 1.0 + keys.code.abs()
        )  # (4, b, 3, 3), (4, b), (4, b, n, 3)

        # order in each candidate frame
        t = _ops.generic_projection(y) / Rc[None, :, None]  # (4, b, n)
        fied = keys.fiedler[None]
        t_real = t * mask[None].to(t.dtype)
        stat = (fied * t_real).sum(-1) / t_real.norm(dim=-1).clamp(min=1e-300)
        w = (keys.fiedler_gap / FIEDLER_GAP_SCALE - 1.0).clamp(0.0, 1.0)
        a = w[None] * (stat / FIEDLER_SKEW_SCALE).clamp(-1.0, 1.0)  # (4, b): signed Fiedler weight
        key = (
            a[..., None] * fied
            + TYPE_WEIGHT * keys.code[None]
            + (HANDOVER_WEIGHT * (1.0 - a.abs()[..., None]) + COORDINATE_WEIGHT) * t
        )
        mask4 = mask[None].expand(4, b, n).reshape(4 * b, n)
        order = _ops.sort_nodes(key.reshape(4 * b, n), mask4).reshape(4, b, n)
        y_sorted = _ops.gather_nodes(y.reshape(4 * b, n, 3), order.reshape(4 * b, n)).reshape(
            4, b, n, 3
        )
        code_sorted = torch.gather(keys.code[None].expand(4, b, n), 2, order)

        best = scores.argmax(0)
        y_best, code_best = y_sorted[best, rows], code_sorted[best, rows]
        diff = ((y_sorted - y_best[None]).abs().amax(-1) * mask[None]).amax(-1) / Rc[None]
        differs = (diff > self.symmetry_tol) | (code_sorted != code_best[None]).any(-1)
        s_best = scores[best, rows]
        # among variants giving the same representative (a symmetry), take the first one, so
        # that a canonical input is returned with the identity element
        best = (~differs).to(torch.int8).argmax(0)
        y_best, code_best = y_sorted[best, rows], code_sorted[best, rows]
        gaps = torch.where(differs, s_best[None] - scores, torch.full_like(scores, math.inf))
        sign_gap = gaps.min(0).values
        sign_gap = torch.where(degenerate, torch.full_like(sign_gap, math.inf), sign_gap)

        order_best = order[best, rows]
        key_best = torch.gather(key[best, rows], 1, order_best)
        same = _ops.identical_neighbours(y_best, code_best, R, 1e-7)
        order_gap = _ops.consecutive_gap(key_best, mask, same)

        margin = torch.minimum(
            torch.minimum(eigengap / self.eigengap_threshold, sign_gap / self.sign_threshold),
            order_gap / self.order_threshold,
        )

        # assemble the representative and the element
        edge = None if x.edge is None else _ops.gather_edges(x.edge, order_best)
        rep = GeometricGraph(
            pos=torch.where(mask[..., None], y_best.to(x.dtype), x.pos),
            node=_ops.gather_nodes(x.node, order_best),
            mask=mask,
            edge=edge,
        )
        frame = frames[best, rows]
        element = ProductElement(
            (
                Permutation(torch.argsort(order_best, dim=1)),
                RigidMotion(frame.to(x.dtype), mu.to(x.dtype)),
            )
        )
        details = {
            "eigengap": eigengap.to(x.dtype),
            "sign_gap": sign_gap.to(x.dtype),
            "order_gap": order_gap.to(x.dtype),
            "fiedler_gap": keys.fiedler_gap.to(x.dtype),
        }
        return Canonicalization(rep, element, margin.to(x.dtype), margin < self.threshold, details)

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
    )
