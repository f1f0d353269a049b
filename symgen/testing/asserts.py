"""Assertions for group axioms, actions and equivariance, usable in any project's tests."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from symgen.groups import Group
from symgen.state import GeometricGraph

__all__ = [
    "EquivarianceReport",
    "graph_distance",
    "assert_graphs_close",
    "assert_group_axioms",
    "assert_action_homomorphism",
    "assert_equivariant",
    "assert_invariant",
    "vector_action",
    "default_atol",
]


def default_atol(dtype: torch.dtype) -> float:
    """Absolute tolerance of the asserts for a floating dtype: 1e-4 (float32), 1e-9 (float64)."""
    return 1e-9 if dtype == torch.float64 else 1e-4


def graph_distance(a: GeometricGraph, b: GeometricGraph, *, real_only: bool = True) -> float:
    """Largest absolute difference between two graphs' fields (positions, nodes, edges).

    With ``real_only`` only real nodes (and pairs of real nodes) count; the masks must agree.
    """
    if not torch.equal(a.mask, b.mask):
        return float("inf")
    if (a.edge is None) != (b.edge is None):
        return float("inf")
    a = a.replace(
        pos=a.pos.detach(), node=a.node.detach(), edge=None if a.edge is None else a.edge.detach()
    )
    b = b.replace(
        pos=b.pos.detach(), node=b.node.detach(), edge=None if b.edge is None else b.edge.detach()
    )
    m = a.mask if real_only else torch.ones_like(a.mask)
    worst = 0.0
    for u, v in ((a.pos, b.pos), (a.node, b.node)):
        if u.shape != v.shape:
            return float("inf")
        if bool(m.any()):
            worst = max(worst, float((u - v.to(u.dtype))[m].abs().max()))
    if a.edge is not None and b.edge is not None:
        if a.edge.shape != b.edge.shape:
            return float("inf")
        pair = m[:, :, None] & m[:, None, :]
        worst = max(worst, float((a.edge - b.edge.to(a.edge.dtype))[pair].abs().max()))
    return worst


def assert_graphs_close(
    actual: GeometricGraph,
    expected: GeometricGraph,
    *,
    atol: float | None = None,
    what: str = "graphs",
) -> None:
    """Assert two graphs agree on real nodes (and padding is identical in masks)."""
    atol = default_atol(actual.dtype) if atol is None else atol
    err = graph_distance(actual, expected)
    assert err <= atol, f"{what} differ: max abs error {err:.3g} > atol {atol:.3g}"


def _elements(
    group: Group, x: GeometricGraph, num_random: int, generator: torch.Generator | None
) -> list[Any]:
    g = torch.Generator(device=x.device).manual_seed(0) if generator is None else generator
    return list(group.testing_elements(x)) + [
        group.sample(x, generator=g) for _ in range(num_random)
    ]


def assert_group_axioms(
    group: Group,
    x: GeometricGraph,
    *,
    elements: Sequence[Any] | None = None,
    num_random: int = 2,
    generator: torch.Generator | None = None,
    atol: float | None = None,
) -> None:
    """Assert identity, inverse and associativity laws on elements for the batch ``x``.

    ``compose(e, g) = g = compose(g, e)``, ``compose(g, inverse(g)) = e = compose(inverse(g), g)``
    for every given element, and ``compose(compose(a, b), c) = compose(a, compose(b, c))`` for
    cyclically consecutive triples (default elements: ``testing_elements(x)`` plus
    ``num_random`` Haar samples).

    Examples:
        >>> from symgen.testing import make_graph
        >>> from symgen.groups import SE3, SO3, DirectProduct, Translations
        >>> x = make_graph([3, 2], dtype=torch.float64)
        >>> assert_group_axioms(SO3(), x)  # passes silently
        >>> class Broken(SO3):  # compose(g, h) = g ignores h
        ...     def compose(self, g, h):
        ...         return g
        >>> assert_group_axioms(Broken(), x)
        Traceback (most recent call last):
            ...
        AssertionError: Broken(): e·g != g (element 0)
    """
    atol = default_atol(x.dtype) if atol is None else atol
    els = list(elements) if elements is not None else _elements(group, x, num_random, generator)
    e = group.identity(x)
    for i, g in enumerate(els):
        assert group.allclose(group.compose(e, g), g, atol=atol), (
            f"{group!r}: e·g != g (element {i})"
        )
        assert group.allclose(group.compose(g, e), g, atol=atol), (
            f"{group!r}: g·e != g (element {i})"
        )
        gi = group.inverse(g)
        assert group.allclose(group.compose(g, gi), e, atol=atol), (
            f"{group!r}: g·g⁻¹ != e (element {i})"
        )
        assert group.allclose(group.compose(gi, g), e, atol=atol), (
            f"{group!r}: g⁻¹·g != e (element {i})"
        )
    k = len(els)
    for i in range(k):
        a, b, c = els[i], els[(i + 1) % k], els[(i + 2) % k]
        left = group.compose(group.compose(a, b), c)
        right = group.compose(a, group.compose(b, c))
        assert group.allclose(left, right, atol=atol), (
            f"{group!r}: associativity fails at triple {i}"
        )


def assert_action_homomorphism(
    group: Group,
    x: GeometricGraph,
    *,
    elements: Sequence[Any] | None = None,
    num_random: int = 2,
    generator: torch.Generator | None = None,
    atol: float | None = None,
) -> None:
    """Assert that ``act`` is a group action that never touches padding.

    ``act(e, x) = x``, ``act(compose(g, h), x) = act(g, act(h, x))`` and, for every element,
    the mask is unchanged and padding slots keep their exact values.

    Examples:
        >>> from symgen.testing import make_graph
        >>> from symgen.groups import SE3, SO3, DirectProduct, Translations
        >>> x = make_graph([3, 2], dtype=torch.float64)
        >>> assert_action_homomorphism(SE3(translation_scale=1.0), x)  # passes silently
        >>> # rotations and translations do not commute: SE(3) is not SO(3) × T(3)
        >>> not_se3 = DirectProduct(SO3(), Translations())
        >>> assert_action_homomorphism(not_se3, x)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        AssertionError: SO3() × Translations(scale=1.0): act(g∘h) vs act(g, act(h)) ...
    """
    atol = default_atol(x.dtype) if atol is None else atol
    els = list(elements) if elements is not None else _elements(group, x, num_random, generator)
    assert_graphs_close(
        group.act(group.identity(x), x), x, atol=atol, what=f"{group!r}: act(e, x) vs x"
    )
    pad = ~x.mask
    for i, g in enumerate(els):
        y = group.act(g, x)
        assert torch.equal(y.mask, x.mask), f"{group!r}: element {i} changed the mask"
        assert torch.equal(y.pos[pad], x.pos[pad]), (
            f"{group!r}: element {i} moved padding positions"
        )
        assert torch.equal(y.node[pad], x.node[pad]), (
            f"{group!r}: element {i} changed padding features"
        )
        for j in (i, (i + 1) % len(els), (i + 3) % len(els)):
            h = els[j]
            lhs = group.act(group.compose(g, h), x)
            rhs = group.act(g, group.act(h, x))
            assert_graphs_close(
                lhs, rhs, atol=atol, what=f"{group!r}: act(g∘h) vs act(g, act(h)) ({i}, {j})"
            )


def vector_action(group: Group) -> Callable[[Any, GeometricGraph], GeometricGraph]:
    """The action of ``group`` on *vector* outputs (velocities, scores): translations dropped.

    A velocity field transforms as ``v -> v @ R.T`` under a rigid motion ``(R, t)``; ``t`` does
    not act. This is the group's own :meth:`~symgen.groups.Group.act_on_vectors`, so any group
    that declares it (a user's included) works.
    """
    return group.act_on_vectors


@dataclass(frozen=True)
class EquivarianceReport:
    """Worst equivariance error found, overall and per tested element."""

    max_error: float
    errors: tuple[float, ...]


def _as_float64(x: GeometricGraph) -> GeometricGraph:
    return x.to(dtype=torch.float64)


def _as_graph(out: Any, x: GeometricGraph) -> GeometricGraph:
    if isinstance(out, GeometricGraph):
        return out
    if isinstance(out, Tensor):
        if out.ndim >= 2 and out.shape[:2] == x.mask.shape:
            feat = out.reshape(out.shape[0], out.shape[1], -1)
            return GeometricGraph(pos=torch.zeros_like(x.pos), node=feat.to(x.dtype), mask=x.mask)
        flat = out.reshape(out.shape[0], 1, -1).expand(-1, x.max_nodes, -1)
        return GeometricGraph(pos=torch.zeros_like(x.pos), node=flat.to(x.dtype), mask=x.mask)
    raise TypeError(f"expected a GeometricGraph or Tensor output, got {type(out).__name__}")


def assert_equivariant(
    fn: Callable[[GeometricGraph], Any],
    group: Group,
    x: GeometricGraph,
    *,
    act_out: Callable[[Any, GeometricGraph], GeometricGraph] | None = None,
    elements: Sequence[Any] | None = None,
    num_random: int = 3,
    generator: torch.Generator | None = None,
    atol: float | None = None,
    float64: bool = True,
) -> EquivarianceReport:
    """Assert ``fn(act(g, x)) == act_out(g, fn(x))`` and report the worst error.

    Following e3nn's ``assert_equivariant``, inputs are transformed in float64 (``fn`` must
    accept float64 inputs, e.g. a model converted with ``.double()``) unless ``float64=False``.
    Outputs may be a :class:`GeometricGraph` (compared on real nodes) or a tensor with leading
    ``(b, n)`` axes (node-wise) or ``(b,)`` (graph-wise). ``act_out`` defaults to the group's
    action; pass :func:`vector_action` for outputs that are vectors (velocities).

    Returns:
        An :class:`EquivarianceReport`; raises ``AssertionError`` when ``max_error > atol``.

    Examples:
        >>> from symgen.testing import make_graph
        >>> from symgen.groups import SE3, SO3, DirectProduct, Translations
        >>> x = make_graph([4, 2], max_nodes=5)
        >>> def double(y):  # pos -> 2 pos: commutes with rotations, not with translations
        ...     return y.replace(pos=2 * y.pos)
        >>> assert_equivariant(double, SO3(), x).max_error < 1e-12
        True
        >>> assert_equivariant(double, Translations(), x)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        AssertionError: not equivariant under Translations(scale=1.0): max error ...
    """
    x = _as_float64(x) if float64 else x
    atol = default_atol(x.dtype) if atol is None else atol
    act_out = group.act if act_out is None else act_out
    els = list(elements) if elements is not None else _elements(group, x, num_random, generator)
    fx = _as_graph(fn(x), x)
    errors = []
    for g in els:
        lhs = _as_graph(fn(group.act(g, x)), x)
        rhs = act_out(g, fx)
        errors.append(graph_distance(lhs, rhs))
    report = EquivarianceReport(max(errors) if errors else 0.0, tuple(errors))
    assert report.max_error <= atol, (
        f"not equivariant under {group!r}: max error {report.max_error:.3g} > atol {atol:.3g} "
        f"(per element: {[f'{e:.2g}' for e in errors]})"
    )
    return report


def assert_invariant(
    fn: Callable[[GeometricGraph], Any],
    group: Group,
    x: GeometricGraph,
    *,
    elements: Sequence[Any] | None = None,
    num_random: int = 3,
    generator: torch.Generator | None = None,
    atol: float | None = None,
    float64: bool = True,
) -> EquivarianceReport:
    """Assert ``fn(act(g, x)) == fn(x)`` for the given or default elements.

    Returns the report with the worst error.

    Examples:
        >>> from symgen.testing import make_graph
        >>> from symgen.groups import SE3, SO3, DirectProduct, Translations
        >>> x = make_graph([4, 2], max_nodes=5)
        >>> def spread(y):  # Σ_i |pos_i - pos_0|² over the real nodes, one value per graph
        ...     d = (y.pos - y.pos[:, :1]) * y.mask[..., None]
        ...     return (d**2).sum((1, 2))
        >>> assert_invariant(spread, SE3(translation_scale=1.0), x).max_error < 1e-9
        True
    """
    return assert_equivariant(
        fn,
        group,
        x,
        act_out=lambda g, y: y,
        elements=elements,
        num_random=num_random,
        generator=generator,
        atol=atol,
        float64=float64,
    )
