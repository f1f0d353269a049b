"""Canonicalizers for translations T(3) (centroid) and rotations SO(3) (principal axes)."""

import math

import torch
from torch import Tensor

from symgen.canon import _ops
from symgen.canon.base import Canonicalization, Canonicalizer
from symgen.groups import SO3, Rotation, Translation, Translations
from symgen.state import GeometricGraph

__all__ = [
    "CentroidCanonicalizer",
    "PrincipalAxesCanonicalizer",
    "DEFAULT_EIGENGAP_THRESHOLD",
    "DEFAULT_SIGN_THRESHOLD",
]

#: Default flag threshold on the relative principal-axis eigengap ``(λ_a - λ_{a+1}) / λ_1``.
DEFAULT_EIGENGAP_THRESHOLD = 1e-2
#: Default flag threshold on the axis-sign score gap (third moments, PrincipalAxesCanonicalizer);
#: the float32 round-off of the score is ~1e-7.
DEFAULT_SIGN_THRESHOLD = 1e-5


class CentroidCanonicalizer(Canonicalizer):
    """Translations T(3): move the masked centroid of every graph to the origin.

    ``κ(x).pos_i = pos_i - μ`` with ``μ = Σ_i m_i pos_i / Σ_i m_i``; element ``t = μ``, so
    ``act(t, κ(x)) = x``. Never ambiguous: ``margin = inf`` and nothing is flagged. Padding
    slots are returned unchanged.

    Examples:
        >>> x = GeometricGraph(torch.tensor([[[0., 0, 0], [2, 0, 0]]]), torch.zeros(1, 2, 1),
        ...                    torch.ones(1, 2, dtype=torch.bool))
        >>> CentroidCanonicalizer().canonicalize(x).element.vector.tolist()
        [[1.0, 0.0, 0.0]]
    """

    def __init__(self) -> None:
        self.group = Translations()

    def canonicalize(self, x: GeometricGraph) -> Canonicalization:
        mu = _ops.masked_mean(x.pos.to(_ops.WORK_DTYPE), x.mask)
        pos = torch.where(
            x.mask[..., None], (x.pos.to(_ops.WORK_DTYPE) - mu[:, None]).to(x.dtype), x.pos
        )
        margin = torch.full((x.batch_size,), math.inf, dtype=x.dtype, device=x.device)
        return Canonicalization(
            representative=x.replace(pos=pos),
            element=Translation(mu.to(x.dtype)),
            margin=margin,
            flagged=torch.zeros(x.batch_size, dtype=torch.bool, device=x.device),
        )


def _select_signs(
    p: Tensor, mask: Tensor, E: Tensor, weight: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Score the 4 right-handed sign variants of ``E``; return frames, scores, coordinates."""
    flips = _ops.proper_sign_flips(p.dtype, p.device)  # (4, 3)
    frames = E[None] * flips[:, None, None, :]  # (4, b, 3, 3): columns scaled
    y = p[None] @ frames  # (4, b, n, 3)
    scores = _ops.third_moment_scores(
        y, p[None], mask[None], None if weight is None else weight[None]
    ).sum(-1)  # (4, b)
    return frames, scores, y


class PrincipalAxesCanonicalizer(Canonicalizer):
    """Rotations SO(3): express positions in the principal-axis frame of the graph.

    With centred positions ``p_i = pos_i - μ`` and covariance ``C = Σ_i m_i p_i^T p_i / k``,
    the frame ``E = [e1 e2 e3]`` holds the eigenvectors of ``C`` for ``λ1 ≥ λ2 ≥ λ3``. Among the
    four right-handed sign variants (``det E = +1``, so chirality is kept) the one maximizing
    the third-moment score ``S = Σ_a Σ_i w_i (p_i · e_a)³ / Σ_i w_i |p_i|³`` is chosen
    (``w_i = 1 + |code_i|`` with the node-feature code, so that types break geometric ties). The
    representative is ``pos @ E`` (rotation about the origin; the centroid is *not* removed,
    compose with :class:`CentroidCanonicalizer` for that) and the element is ``Rotation(E)``.

    Margin: ``min(eigengap / eigengap_threshold, sign_gap / sign_threshold)`` where
    ``eigengap = min_a (λ_a - λ_{a+1}) / λ_1`` (pairs with no extent, as in a linear molecule,
    are exempt) and ``sign_gap`` is the score difference between the best and second-best
    sign variant; ``threshold = 1`` so ``flagged`` means "within one threshold of a tie"; the
    raw values are in ``details["eigengap"]`` and ``details["sign_gap"]``.

    Fallback (degenerate spectrum, ``eigengap < eigengap_threshold``, or no extent at all): the
    frame is built from the atoms in index order (``e1`` towards the first atom away from the
    origin, ``e2`` from the next atom's orthogonal component, ``e3 = e1 × e2``); degenerate
    spectra are flagged, graphs without extent (one node, coincident nodes) are not, since the
    frame from their common position is exactly equivariant.

    Examples:
        >>> x = GeometricGraph(torch.randn(2, 5, 3, dtype=torch.float64), torch.zeros(2, 5, 1,
        ...                    dtype=torch.float64), torch.ones(2, 5, dtype=torch.bool))
        >>> out = PrincipalAxesCanonicalizer().canonicalize(x)
        >>> torch.testing.assert_close(SO3().act(out.element, out.representative).pos, x.pos)
    """

    threshold = 1.0

    def __init__(
        self,
        eigengap_threshold: float = DEFAULT_EIGENGAP_THRESHOLD,
        sign_threshold: float = DEFAULT_SIGN_THRESHOLD,
    ) -> None:
        if eigengap_threshold <= 0 or sign_threshold <= 0:
            raise ValueError("eigengap_threshold and sign_threshold must be positive")
        self.group = SO3()
        self.eigengap_threshold = float(eigengap_threshold)
        self.sign_threshold = float(sign_threshold)

    def canonicalize(self, x: GeometricGraph) -> Canonicalization:
        mask = x.mask
        pos = x.pos.to(_ops.WORK_DTYPE)
        p, _ = _ops.centered(pos, mask)
        evals, E = _ops.principal_axes(p, mask)
        eigengap = _ops.eigengap_margin(evals)
        frames, scores, _ = _select_signs(p, mask, E, 1.0 + _ops.type_code(x.node).abs())
        top = scores.topk(2, dim=0)
        best = top.indices[0]
        sign_gap = top.values[0] - top.values[1]
        E_best = frames[best, torch.arange(x.batch_size, device=x.device)]
        degenerate = eigengap < self.eigengap_threshold
        no_extent = evals[:, 0] <= 1e-24
        use_atoms = degenerate | no_extent
        priority = torch.arange(x.max_nodes, dtype=_ops.WORK_DTYPE, device=x.device).expand_as(
            p[..., 0]
        )
        # the fallback frame uses positions relative to the origin (SO(3) fixes the origin, not
        # the centroid): a graph with no extent is then oriented by the direction of its centroid
        origin = pos * mask[..., None].to(pos.dtype)
        scale = torch.maximum(_ops.rms_radius(origin, mask), _ops.rms_radius(p, mask))
        E_fb = _ops.frame_from_atoms(origin, mask, priority, scale)
        E_final = torch.where(use_atoms[:, None, None], E_fb, E_best)
        sign_gap = torch.where(use_atoms, torch.full_like(sign_gap, math.inf), sign_gap)
        margin = torch.minimum(eigengap / self.eigengap_threshold, sign_gap / self.sign_threshold)
        rep_pos = torch.where(mask[..., None], (pos @ E_final).to(x.dtype), x.pos)
        return Canonicalization(
            representative=x.replace(pos=rep_pos),
            element=Rotation(E_final.to(x.dtype)),
            margin=margin.to(x.dtype),
            flagged=margin < self.threshold,
            details={"eigengap": eigengap.to(x.dtype), "sign_gap": sign_gap.to(x.dtype)},
        )

    def __repr__(self) -> str:
        return (
            f"PrincipalAxesCanonicalizer(eigengap_threshold={self.eigengap_threshold}, "
            f"sign_threshold={self.sign_threshold})"
        )
