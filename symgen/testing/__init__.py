"""The public test kit: assertions, Hypothesis strategies and contract test classes.

Import it from your own tests to check a new group, canonicalizer or network against the
same properties symgen checks for its own (it needs the ``test`` extra: pytest, hypothesis).
"""

from symgen.testing.asserts import (
    EquivarianceReport,
    assert_action_homomorphism,
    assert_equivariant,
    assert_graphs_close,
    assert_group_axioms,
    assert_invariant,
    default_atol,
    graph_distance,
    vector_action,
)
from symgen.testing.contracts import GroupContract
from symgen.testing.strategies import SHAPE_KINDS, geometric_graphs, make_graph, symmetric_points

__all__ = [
    "EquivarianceReport",
    "assert_action_homomorphism",
    "assert_equivariant",
    "assert_graphs_close",
    "assert_group_axioms",
    "assert_invariant",
    "default_atol",
    "graph_distance",
    "vector_action",
    "GroupContract",
    "SHAPE_KINDS",
    "geometric_graphs",
    "make_graph",
    "symmetric_points",
]

from symgen.testing.canon_contract import (  # noqa: E402
    CanonicalizerContract,
    CanonicalizerReport,
    assert_canonicalizer,
    assert_same_orbit_invariants,
    canonical_atol,
)

__all__ += [
    "CanonicalizerContract",
    "CanonicalizerReport",
    "assert_canonicalizer",
    "assert_same_orbit_invariants",
    "canonical_atol",
]
