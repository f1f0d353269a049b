"""The public test kit: assertions, Hypothesis strategies and contract test classes.

Import it from your own tests to check a new group, canonicalizer, prior, coupling, process or
network against the same properties symgen checks for its own: subclass the matching contract
class (:class:`GroupContract`, :class:`CanonicalizerContract`, :class:`PriorContract`,
:class:`CouplingContract`, :class:`ProcessContract`, :class:`NetworkContract`) and implement its
one ``make_*`` method. It needs the ``test`` extra (pytest, hypothesis).
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
from symgen.testing.contracts import CouplingContract, GroupContract, PriorContract
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
    "PriorContract",
    "CouplingContract",
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

from symgen.testing.model_contracts import NetworkContract, ProcessContract  # noqa: E402
from symgen.testing.oracles import GaussianOracle  # noqa: E402

__all__ += ["ProcessContract", "NetworkContract", "GaussianOracle"]
