"""Composition of canonicalizers for subgroups into one for a larger group."""

import math
from collections.abc import Callable
from typing import Any

import torch

from symgen.canon.base import Canonicalization, Canonicalizer
from symgen.groups import Group
from symgen.state import GeometricGraph

__all__ = ["SequentialCanonicalizer", "embed_element"]


def embed_element(g: Any, source: Group, target: Group, x: GeometricGraph) -> Any:
    """Express an element ``g`` of ``source`` as an element of the larger group ``target``.

    ``target.embed(g, source, x)``: the element travels through the groups' tensor description
    (:meth:`~symgen.groups.Group.element_to_tensors`), so components ``target`` shares with
    ``source`` are kept and the others are the identity: a translation or a rotation becomes
    a rigid motion of ``SE3``, and any of these an element of S_n × SE(3). Raises
    ``ValueError`` when ``source`` has a component ``target`` lacks.

    Examples:
        >>> from symgen.groups import Translation, Translations, permutation_rigid_group
        >>> x = GeometricGraph(torch.zeros(1, 2, 3), torch.zeros(1, 2, 1),
        ...                    torch.ones(1, 2, dtype=torch.bool))
        >>> t = Translation(torch.ones(1, 3))
        >>> g = embed_element(t, Translations(), permutation_rigid_group(), x)
        >>> g.parts[1].translation.tolist()
        [[1.0, 1.0, 1.0]]
    """
    return target.embed(g, source, x)


class SequentialCanonicalizer(Canonicalizer):
    """Canonicalize stage by stage: ``κ = κ_k ∘ ... ∘ κ_1`` for the group ``G``.

    Stage ``j`` canonicalizes the previous representative for its own group ``G_j``; elements
    are embedded into ``G`` and composed so that ``act(g_1 ∘ ... ∘ g_k, s_k) = x``. The result is
    ``G``-invariant when every stage is invariant to its own group and *equivariant* (commutes)
    with the groups of the later stages: e.g. centring (T(3)), then principal axes (SO(3),
    permutation invariant), then node order (S_n).

    Margin: ``min_j margin_j / threshold_j`` over stages with a positive threshold (``inf``
    otherwise), so ``threshold = 1`` and ``flagged`` is "some stage flagged". The stages' own
    margins are kept in ``details["stage<j>"]``.

    Args:
        stages: the canonicalizers, applied first to last.
        group: the composite group ``G`` (whose elements the result carries).
        embed: optional ``embed(g, source_group, target_group, x)``; default :func:`embed_element`.

    Examples:
        >>> from symgen.canon import CentroidCanonicalizer, PrincipalAxesCanonicalizer
        >>> from symgen.groups import SE3
        >>> canon = SequentialCanonicalizer(
        ...     CentroidCanonicalizer(), PrincipalAxesCanonicalizer(), group=SE3())
        >>> x = GeometricGraph(torch.randn(1, 4, 3), torch.zeros(1, 4, 1),
        ...                    torch.ones(1, 4, dtype=torch.bool))
        >>> out = canon(x)
        >>> torch.testing.assert_close(SE3().act(out.element, out.representative).pos, x.pos)
    """

    threshold = 1.0

    def __init__(
        self,
        *stages: Canonicalizer,
        group: Group,
        embed: Callable[[Any, Group, Group, GeometricGraph], Any] | None = None,
    ) -> None:
        if not stages:
            raise ValueError("SequentialCanonicalizer needs at least one stage")
        for s in stages:
            if not isinstance(s, Canonicalizer):
                raise TypeError(f"stages must be Canonicalizer instances, got {type(s).__name__}")
        self.stages: tuple[Canonicalizer, ...] = tuple(stages)
        self.group = group
        self.embed = embed_element if embed is None else embed

    def canonicalize(self, x: GeometricGraph) -> Canonicalization:
        total = self.group.identity(x)
        margin = torch.full((x.batch_size,), math.inf, dtype=x.dtype, device=x.device)
        flagged = torch.zeros(x.batch_size, dtype=torch.bool, device=x.device)
        details: dict[str, torch.Tensor] = {}
        current = x
        for j, stage in enumerate(self.stages):
            out = stage.canonicalize(current)
            g = self.embed(out.element, stage.group, self.group, x)
            total = self.group.compose(total, g)
            thr = float(getattr(stage, "threshold", 0.0))
            if thr > 0:
                margin = torch.minimum(margin, out.margin.to(x.dtype) / thr)
            flagged = flagged | out.flagged
            details[f"stage{j}"] = out.margin
            current = out.representative
        return Canonicalization(current, total, margin, flagged, details)

    def __repr__(self) -> str:
        inner = ", ".join(repr(s) for s in self.stages)
        return f"SequentialCanonicalizer({inner}, group={self.group!r})"
