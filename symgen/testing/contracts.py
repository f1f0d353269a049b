"""Contract test classes: subclass one and pytest runs the whole suite for your object.

Example (in a test module)::

    from symgen.groups import SO3
    from symgen.testing import GroupContract

    class TestSO3(GroupContract):
        def make_group(self):
            return SO3()
"""

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symgen.groups import Group
from symgen.state import GeometricGraph
from symgen.testing.asserts import assert_action_homomorphism, assert_group_axioms
from symgen.testing.strategies import geometric_graphs

__all__ = ["GroupContract"]


class GroupContract:
    """Pytest contract for a :class:`~symgen.groups.Group`.

    Subclass it (with a name starting ``Test``) and implement :meth:`make_group`. The inherited
    tests check, by Hypothesis over batch sizes, node counts, masks, edge features and both
    float dtypes: the group axioms, that ``act`` is a homomorphism that never touches padding,
    that Haar samples are valid elements of the right dtype and device, and that
    ``testing_elements`` is deterministic.
    """

    def make_group(self) -> Group:
        """Return the group under test."""
        raise NotImplementedError("subclasses of GroupContract implement make_group()")

    @given(
        x=geometric_graphs(
            edge_features=st.sampled_from([0, 2]), pad_value=st.sampled_from([0.0, 7.0])
        )
    )
    @settings(
        max_examples=15, deadline=None, suppress_health_check=[HealthCheck.differing_executors]
    )
    def test_group_axioms(self, x: GeometricGraph) -> None:
        assert_group_axioms(self.make_group(), x)

    @given(
        x=geometric_graphs(
            edge_features=st.sampled_from([0, 2]), pad_value=st.sampled_from([0.0, 7.0])
        )
    )
    @settings(
        max_examples=15, deadline=None, suppress_health_check=[HealthCheck.differing_executors]
    )
    def test_action_homomorphism(self, x: GeometricGraph) -> None:
        assert_action_homomorphism(self.make_group(), x)

    @given(x=geometric_graphs(), seed=st.integers(0, 2**31 - 1))
    @settings(
        max_examples=15, deadline=None, suppress_health_check=[HealthCheck.differing_executors]
    )
    def test_sample_is_reproducible_and_acts(self, x: GeometricGraph, seed: int) -> None:
        G = self.make_group()
        g1 = G.sample(x, generator=torch.Generator().manual_seed(seed))
        g2 = G.sample(x, generator=torch.Generator().manual_seed(seed))
        assert G.allclose(g1, g2, atol=0.0), "sample with the same seed gave different elements"
        y = G.act(g1, x)
        assert y.dtype == x.dtype and y.device == x.device
        assert torch.equal(y.mask, x.mask)

    @given(x=geometric_graphs())
    @settings(
        max_examples=15, deadline=None, suppress_health_check=[HealthCheck.differing_executors]
    )
    def test_testing_elements_deterministic(self, x: GeometricGraph) -> None:
        G = self.make_group()
        a, b = G.testing_elements(x), G.testing_elements(x)
        assert len(a) == len(b) >= 1
        assert all(G.allclose(u, v, atol=0.0) for u, v in zip(a, b))
