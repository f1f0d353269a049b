"""Canonicalizer contract checks: :func:`assert_canonicalizer`, :class:`CanonicalizerContract`.

Example (in a test module)::

    from symgen.canon import CentroidCanonicalizer
    from symgen.testing import CanonicalizerContract

    class TestCentroid(CanonicalizerContract):
        def make_canonicalizer(self):
            return CentroidCanonicalizer()
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import Tensor

from symgen.canon.base import Canonicalization, Canonicalizer
from symgen.state import GeometricGraph
from symgen.testing.strategies import geometric_graphs

__all__ = [
    "CanonicalizerReport",
    "assert_canonicalizer",
    "assert_same_orbit_invariants",
    "canonical_atol",
    "CanonicalizerContract",
]


def canonical_atol(dtype: torch.dtype) -> float:
    """Tolerance on representatives of transformed copies: 1e-3 (float32), 1e-6 (float64).

    Larger than :func:`~symgen.testing.default_atol`: an unflagged pose may still be
    conditioned like ``1 / threshold`` (e.g. a relative eigengap of 1e-2 amplifies round-off
    100x), which is what the thresholds are designed around.
    """
    return 1e-6 if dtype == torch.float64 else 1e-3


@dataclass(frozen=True)
class CanonicalizerReport:
    """What :func:`assert_canonicalizer` checked.

    Attributes:
        num_graphs: graphs in the batch.
        num_flagged: graphs flagged on the input itself.
        num_compared: (graph, element) pairs compared for invariance (both copies unflagged).
        max_invariance_error: largest representative difference over those pairs.
        max_reconstruction_error: largest ``|act(element, rep) - x|`` on real nodes.
    """

    num_graphs: int
    num_flagged: int
    num_compared: int
    max_invariance_error: float
    max_reconstruction_error: float


def _per_graph_error(a: GeometricGraph, b: GeometricGraph) -> Tensor:
    """Largest absolute difference per graph over real nodes (positions, features, edges)."""
    m = a.mask
    err = ((a.pos - b.pos.to(a.dtype)).abs().amax(-1) * m).amax(-1)
    node_err = torch.where(m[..., None], (a.node - b.node.to(a.dtype)).abs(), 0.0).amax((-1, -2))
    err = torch.maximum(err, node_err)
    if a.edge is not None and b.edge is not None:
        pair = (m[:, :, None] & m[:, None, :])[..., None]
        edge_err = torch.where(pair, (a.edge - b.edge.to(a.dtype)).abs(), 0.0).amax((1, 2, 3))
        err = torch.maximum(err, edge_err)
    return err


def _has_identical_nodes(x: GeometricGraph) -> Tensor:
    """Per graph: do two distinct real nodes share position and features exactly?"""
    same_pos = (x.pos[:, :, None] == x.pos[:, None, :]).all(-1)
    same_node = (x.node[:, :, None] == x.node[:, None, :]).all(-1)
    return (same_pos & same_node & x.edge_mask).any(-1).any(-1)


def _padding_untouched(x: GeometricGraph, rep: GeometricGraph) -> None:
    assert torch.equal(rep.mask, x.mask), "the representative's mask differs from the input's"
    pad = ~x.mask
    assert torch.equal(rep.pos[pad], x.pos[pad]), "padding positions were changed"
    assert torch.equal(rep.node[pad], x.node[pad]), "padding node features were changed"
    assert (rep.edge is None) == (x.edge is None), "edge features appeared or disappeared"
    if x.edge is not None and rep.edge is not None:
        touches = pad[:, :, None] | pad[:, None, :]
        assert torch.equal(rep.edge[touches], x.edge[touches]), (
            "edge features touching padding were changed"
        )


def assert_same_orbit_invariants(
    a: GeometricGraph, b: GeometricGraph, *, atol: float | None = None
) -> None:
    """Assert graphs share the invariants of an isometry-and-permutation orbit.

    Per graph: the sorted multiset of pairwise distances of real nodes and the sorted multiset
    of node-feature rows agree (within ``atol``). Holds for every canonicalizer whose group
    acts by rigid motions and/or permutations.
    """
    atol = canonical_atol(a.dtype) if atol is None else atol
    assert torch.equal(a.mask, b.mask), "masks differ"
    for i, k in enumerate(a.num_nodes.tolist()):
        pa, pb = a.pos[i, :k].double(), b.pos[i, :k].double()
        da = torch.cdist(pa, pa).flatten().sort().values
        db = torch.cdist(pb, pb).flatten().sort().values
        scale = 1.0 + float(da.max()) if da.numel() else 1.0
        assert float((da - db).abs().max()) <= atol * scale, f"graph {i}: pairwise distances differ"
        na, nb = a.node[i, :k].double(), b.node[i, :k].double()
        ra = sorted(map(tuple, na.tolist()))
        rb = sorted(map(tuple, nb.tolist()))
        assert torch.allclose(torch.tensor(ra), torch.tensor(rb), atol=1e-6, rtol=0), (
            f"graph {i}: node features are not the same multiset"
        )


def _check_output(canon: Canonicalizer, x: GeometricGraph, out: Canonicalization) -> None:
    b = x.batch_size
    assert isinstance(out, Canonicalization), f"canonicalize returned {type(out).__name__}"
    assert out.margin.shape == (b,) and out.flagged.shape == (b,), (
        "margin/flagged must have shape (b,)"
    )
    assert out.flagged.dtype == torch.bool, "flagged must be a bool tensor"
    assert not bool(torch.isnan(out.margin).any()), "margin contains NaN"
    for name, t in (("pos", out.representative.pos), ("node", out.representative.node)):
        assert bool(torch.isfinite(t).all()), f"representative {name} is not finite"
    assert out.representative.dtype == x.dtype and out.representative.device == x.device
    thr = float(getattr(canon, "threshold", 0.0))
    if thr > 0:
        assert torch.equal(out.flagged, out.margin < thr), "flagged must equal margin < threshold"


def assert_canonicalizer(
    canon: Canonicalizer,
    x: GeometricGraph,
    *,
    elements: Sequence[Any] | None = None,
    num_random: int = 2,
    generator: torch.Generator | None = None,
    atol: float | None = None,
    check_orbit: bool = True,
) -> CanonicalizerReport:
    """Assert the canonicalizer contract on the batch ``x``; return what was checked.

    Checks, with ``G = canon.group`` and ``out = canon(x)``:

    * well-formed output: shapes, no NaN, finite representative, same dtype/device,
      ``flagged == margin < canon.threshold`` (when the canonicalizer has a positive threshold);
    * reconstruction: ``act(out.element, out.representative) == x`` on real nodes;
    * padding: mask equal, padding slots (and edges touching them) bit-identical to ``x``;
    * orbit (every graph, flagged or not): same pairwise distances and node multiset as ``x``
      (``check_orbit=False`` for groups that are not isometries/permutations);
    * idempotence (unflagged graphs): ``canon(rep)`` returns ``rep`` and the identity element
      (on graphs with identical nodes, any element fixing ``rep``);
    * invariance: for every element ``g`` (``G.testing_elements(x)`` plus ``num_random`` Haar
      samples, or ``elements``), ``canon(act(g, x))`` has the same representative as ``x``
      wherever neither copy is flagged. ``act`` is applied in float64 and the result rounded
      back to ``x``'s dtype, so the copy is exact up to one rounding.

    ``atol`` defaults to :func:`canonical_atol` (times ``1 + max |pos|``).

    Examples:
        >>> from symgen.canon import CentroidCanonicalizer
        >>> from symgen.testing import make_graph
        >>> assert_canonicalizer(CentroidCanonicalizer(), make_graph([3, 2])).num_graphs
        2
    """
    G = canon.group
    scale = 1.0 + float(x.pos[x.mask].abs().max()) if bool(x.mask.any()) else 1.0
    atol = canonical_atol(x.dtype) * scale if atol is None else atol
    out = canon.canonicalize(x)
    _check_output(canon, x, out)
    rep = out.representative
    _padding_untouched(x, rep)
    back = G.act(out.element, rep)
    rec = float(_per_graph_error(back, x).max())
    assert rec <= atol, f"reconstruction act(element, rep) != x: max error {rec:.3g} > {atol:.3g}"
    if check_orbit:
        assert_same_orbit_invariants(rep, x, atol=atol)

    unflagged = (~out.flagged).nonzero().flatten()
    if unflagged.numel() > 0:
        sub = rep.index(unflagged)
        again = canon.canonicalize(sub)
        err = float(_per_graph_error(again.representative, sub).max())
        assert err <= atol, f"not idempotent: canon(rep) differs from rep by {err:.3g} > {atol:.3g}"
        # the element must be the identity, except on graphs with identical nodes (same position
        # and features), whose stabilizer swaps them; there it only has to fix rep (checked above)
        plain = (~_has_identical_nodes(sub)).nonzero().flatten()
        if plain.numel() > 0:
            again_plain = canon.canonicalize(sub.index(plain))
            assert G.allclose(
                again_plain.element, G.identity(sub.index(plain)), atol=max(atol, 1e-5)
            ), "canon(rep) did not return the identity element"

    if elements is None:
        gen = torch.Generator().manual_seed(0) if generator is None else generator
        x64 = x.to(dtype=torch.float64)
        elements = list(G.testing_elements(x64)) + [
            G.sample(x64, generator=gen) for _ in range(num_random)
        ]
    compared, worst = 0, 0.0
    for i, g in enumerate(elements):
        y = G.act(g, x.to(dtype=torch.float64)).to(dtype=x.dtype)
        out_g = canon.canonicalize(y)
        _check_output(canon, y, out_g)
        both = ~(out.flagged | out_g.flagged)
        err = _per_graph_error(out_g.representative, rep)
        if bool(both.any()):
            e = float(err[both].max())
            worst = max(worst, e)
            assert e <= atol, (
                f"not invariant under element {i}: unflagged representatives differ by "
                f"{e:.3g} > {atol:.3g} "
                f"(graphs {both.nonzero().flatten()[err[both] > atol].tolist()[:10]})"
            )
        compared += int(both.sum())
        if check_orbit:
            assert_same_orbit_invariants(out_g.representative, x, atol=atol)
    return CanonicalizerReport(
        num_graphs=x.batch_size,
        num_flagged=int(out.flagged.sum()),
        num_compared=compared,
        max_invariance_error=worst,
        max_reconstruction_error=rec,
    )


_SETTINGS = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.differing_executors]
)


class CanonicalizerContract:
    """Pytest contract for a :class:`~symgen.canon.Canonicalizer`.

    Subclass it (name starting ``Test``) and implement :meth:`make_canonicalizer`; override
    :meth:`input_strategy` / :meth:`degenerate_strategy` to change the inputs, and
    :attr:`check_orbit` for groups that are not isometries/permutations. The inherited tests
    run :func:`assert_canonicalizer` by Hypothesis on generic inputs (random positions, node
    types, masks, edge features, float32 and float64), and on degenerate inputs (coincident,
    collinear, planar and symmetric shapes) where unflagged outputs must still be invariant
    and every output stays in the orbit without NaN; plus determinism.

    Examples:
        >>> from symgen.canon import CentroidCanonicalizer
        >>> class TestCentroid(CanonicalizerContract):
        ...     def make_canonicalizer(self):
        ...         return CentroidCanonicalizer()
        >>> TestCentroid().test_contract_generic()  # pytest finds and runs it in a test module
        >>> TestCentroid().test_deterministic()
    """

    #: Check pairwise distances and node multisets (isometries and permutations only).
    check_orbit: bool = True

    def make_canonicalizer(self) -> Canonicalizer:
        """Return the canonicalizer under test."""
        raise NotImplementedError(
            "subclasses of CanonicalizerContract implement make_canonicalizer()"
        )

    def input_strategy(self) -> st.SearchStrategy[GeometricGraph]:
        """Generic inputs (override to restrict, e.g. ``min_nodes``)."""
        return geometric_graphs(
            edge_features=st.sampled_from([0, 2]), pad_value=st.sampled_from([0.0, 7.0])
        )

    def degenerate_strategy(self) -> st.SearchStrategy[GeometricGraph]:
        """Degenerate inputs: coincident, collinear, planar and symmetric shapes."""
        return geometric_graphs(
            kinds=("coincident", "collinear", "planar", "symmetric"),
            pad_value=st.sampled_from([0.0, 7.0]),
        )

    @given(data=st.data(), seed=st.integers(0, 2**31 - 1))
    @_SETTINGS
    def test_contract_generic(self, data: st.DataObject, seed: int) -> None:
        x = data.draw(self.input_strategy())
        assert_canonicalizer(
            self.make_canonicalizer(),
            x,
            generator=torch.Generator().manual_seed(seed),
            check_orbit=self.check_orbit,
        )

    @given(data=st.data(), seed=st.integers(0, 2**31 - 1))
    @_SETTINGS
    def test_contract_degenerate(self, data: st.DataObject, seed: int) -> None:
        x = data.draw(self.degenerate_strategy())
        assert_canonicalizer(
            self.make_canonicalizer(),
            x,
            generator=torch.Generator().manual_seed(seed),
            check_orbit=self.check_orbit,
        )

    @given(data=st.data())
    @settings(
        max_examples=10, deadline=None, suppress_health_check=[HealthCheck.differing_executors]
    )
    def test_deterministic(self, data: st.DataObject) -> None:
        x = data.draw(self.input_strategy())
        canon = self.make_canonicalizer()
        a, b = canon.canonicalize(x), canon.canonicalize(x)
        assert torch.equal(a.representative.pos, b.representative.pos)
        assert torch.equal(a.representative.node, b.representative.node)
        assert torch.equal(a.flagged, b.flagged)
        assert canon.group.allclose(a.element, b.element, atol=0.0)
