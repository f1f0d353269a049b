"""Contract test classes: subclass one and pytest runs the whole suite for your object.

Example (in a test module)::

    from symgen.groups import SO3
    from symgen.testing import GroupContract

    class TestSO3(GroupContract):
        def make_group(self):
            return SO3()
"""

from typing import Any

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symgen.couplings import Coupling
from symgen.groups import Group
from symgen.priors import Prior
from symgen.state import GeometricGraph
from symgen.testing.asserts import assert_action_homomorphism, assert_group_axioms
from symgen.testing.strategies import geometric_graphs

__all__ = ["GroupContract", "PriorContract", "CouplingContract"]

_SETTINGS = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.differing_executors]
)


class GroupContract:
    """Pytest contract for a :class:`~symgen.groups.Group`.

    Subclass it (with a name starting ``Test``) and implement :meth:`make_group`. The inherited
    tests check, by Hypothesis over batch sizes, node counts, masks, edge features and both
    float dtypes: the group axioms, that ``act`` is a homomorphism that never touches padding,
    that Haar samples are valid elements of the right dtype and device, that
    ``testing_elements`` is deterministic, and the declared capabilities: elements survive
    their tensor description, vectors transform like differences of positions, and
    ``permutes_nodes`` says whether elements reorder nodes.
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

    @given(x=geometric_graphs(), seed=st.integers(0, 2**31 - 1))
    @_SETTINGS
    def test_elements_survive_their_tensor_description(self, x: GeometricGraph, seed: int) -> None:
        G = self.make_group()
        g = G.sample(x, generator=torch.Generator().manual_seed(seed))
        tensors = G.element_to_tensors(g)
        assert set(tensors) == set(G.element_keys())
        for name, value in tensors.items():
            assert value.shape[0] == x.batch_size, f"component {name} has no batch axis"
            if name in G.node_indexed:
                assert value.shape[:2] == x.mask.shape, f"{name} is node-indexed"
        assert G.allclose(G.element_from_tensors(tensors, x), g, atol=0.0)
        assert G.allclose(G.element_from_tensors({}, x), G.identity(x), atol=0.0)

    @given(x=geometric_graphs(), seed=st.integers(0, 2**31 - 1))
    @_SETTINGS
    def test_vectors_transform_like_differences_of_positions(
        self, x: GeometricGraph, seed: int
    ) -> None:
        """``act_on_vectors(g, u - v) == act(g, u) - act(g, v)``: a translation never acts."""
        G = self.make_group()
        g = G.sample(x, generator=torch.Generator().manual_seed(seed))
        gen = torch.Generator().manual_seed(seed + 1)
        other = x.replace(pos=torch.randn(x.pos.shape, generator=gen, dtype=x.dtype))
        diff = x.replace(pos=x.pos - other.pos)
        lhs = G.act_on_vectors(g, diff).pos
        rhs = G.act(g, x).pos - G.act(g, other).pos
        tol = 1e-9 if x.dtype == torch.float64 else 1e-4
        torch.testing.assert_close(lhs[x.mask], rhs[x.mask], atol=tol, rtol=tol)

    def test_permutes_nodes_matches_the_action(self) -> None:
        """``permutes_nodes`` is true exactly when some testing element reorders features."""
        x = GeometricGraph(
            torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(0)),
            torch.eye(4).expand(2, 4, 4).clone(),
            torch.ones(2, 4, dtype=torch.bool),
        )
        G = self.make_group()
        moved = any(not torch.equal(G.act(g, x).node, x.node) for g in G.testing_elements(x))
        assert moved == G.permutes_nodes, f"{G!r}: permutes_nodes={G.permutes_nodes}"


def _assert_zero_padding_and_symmetric_edges(x: GeometricGraph, what: str) -> None:
    pad = ~x.mask
    assert float(x.pos[pad].abs().sum()) == 0.0, f"{what}: positions on padding"
    assert float(x.node[pad].abs().sum()) == 0.0, f"{what}: node features on padding"
    if x.edge is not None:
        torch.testing.assert_close(x.edge, x.edge.transpose(1, 2), msg=f"{what}: asymmetric edges")
        off = ~x.edge_mask
        assert float(x.edge[off].abs().sum()) == 0.0, f"{what}: edges on diagonal or padding"


def _pairwise_distances(pos: torch.Tensor, k: int) -> torch.Tensor:
    p = pos[:k].to(torch.float64)
    return torch.cdist(p, p).flatten().sort().values


class PriorContract:
    """Pytest contract for a :class:`~symgen.priors.Prior`.

    Subclass it (name starting ``Test``) and implement :meth:`make_prior`; override
    :meth:`template_strategy` when the prior needs particular feature widths (e.g. edges of a
    categorical spec). The inherited tests check, by Hypothesis over batch sizes, masks, padding
    values and both float dtypes: the sample's layout (template's shapes, dtype and mask; zero
    padding; symmetric edges with a zero diagonal); that the declared :attr:`channels` are
    what is drawn (``"none"`` channels are zero, the others finite, Gaussian ones not
    constant); zero centroids for a centred prior; reproducibility from a seed; a finite
    per-graph ``log_prob`` of its own samples; the noise prior's channels; and that
    ``state_dict`` restores the same distribution in a new instance.
    """

    def make_prior(self) -> Prior:
        """Return the prior under test (a new instance on every call)."""
        raise NotImplementedError("subclasses of PriorContract implement make_prior()")

    def template_strategy(self) -> st.SearchStrategy[GeometricGraph]:
        """Templates to sample like (override for priors that need a feature layout)."""
        return geometric_graphs(
            edge_features=st.sampled_from([0, 3]), pad_value=st.sampled_from([0.0, 7.0])
        )

    def _draw(self, data: st.DataObject, seed: int) -> tuple[Prior, GeometricGraph, GeometricGraph]:
        prior = self.make_prior()
        template = data.draw(self.template_strategy())
        x = prior.sample(template, generator=torch.Generator().manual_seed(seed))
        return prior, template, x

    @given(data=st.data(), seed=st.integers(0, 2**31 - 1))
    @_SETTINGS
    def test_sample_has_the_template_layout(self, data: st.DataObject, seed: int) -> None:
        _, template, x = self._draw(data, seed)
        assert isinstance(x, GeometricGraph)
        assert x.pos.shape == template.pos.shape and x.node.shape == template.node.shape
        assert (x.edge is None) == (template.edge is None)
        assert x.dtype == template.dtype and torch.equal(x.mask, template.mask)
        _assert_zero_padding_and_symmetric_edges(x, "prior sample")

    @given(data=st.data(), seed=st.integers(0, 2**31 - 1))
    @_SETTINGS
    def test_channels_are_what_is_drawn(self, data: st.DataObject, seed: int) -> None:
        prior, template, x = self._draw(data, seed)
        ch = prior.channels
        several = x.num_nodes >= 2  # a centred draw of one node is zero
        for name, kind, value in (("pos", ch.pos, x.pos), ("node", ch.node, x.node)):
            real = value[x.mask]
            if kind == "none":
                assert float(real.abs().sum()) == 0.0, f"{name} is declared 'none' but drawn"
            else:
                assert bool(torch.isfinite(real).all()), f"{name} draws are not finite"
            if kind == "gaussian" and bool(several.any()):
                spread = value[several][x.mask[several]].std()
                assert float(spread) > 0, f"{name} is declared 'gaussian' but constant"
        if x.edge is not None and ch.edge == "none":
            assert float(x.edge.abs().sum()) == 0.0, "edges are declared 'none' but drawn"
        assert prior.noise_prior.channels == ch

    @given(data=st.data(), seed=st.integers(0, 2**31 - 1))
    @_SETTINGS
    def test_centred_priors_have_zero_centroid(self, data: st.DataObject, seed: int) -> None:
        prior, _, x = self._draw(data, seed)
        if not prior.centered:
            return
        m = x.mask[..., None].to(x.dtype)
        centroid = (x.pos * m).sum(1) / m.sum(1)
        tol = 1e-9 if x.dtype == torch.float64 else 1e-5
        assert float(centroid.abs().max()) < tol * max(1.0, float(x.pos.abs().max()))

    @given(data=st.data(), seed=st.integers(0, 2**31 - 1))
    @_SETTINGS
    def test_reproducible_and_random(self, data: st.DataObject, seed: int) -> None:
        prior, template, x = self._draw(data, seed)
        again = prior.sample(template, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(x.pos, again.pos) and torch.equal(x.node, again.node)
        other = prior.sample(template, generator=torch.Generator().manual_seed(seed + 1))
        if prior.channels.pos == "gaussian" and int(x.num_nodes.max()) >= 2:
            assert not torch.equal(x.pos, other.pos), "two seeds gave the same positions"

    @given(data=st.data(), seed=st.integers(0, 2**31 - 1))
    @_SETTINGS
    def test_log_prob_of_own_samples(self, data: st.DataObject, seed: int) -> None:
        prior, _, x = self._draw(data, seed)
        lp = prior.log_prob(x)
        assert lp.shape == (x.batch_size,) and bool(torch.isfinite(lp).all())
        assert torch.equal(lp, prior.log_prob(x))

    @given(data=st.data(), seed=st.integers(0, 2**31 - 1))
    @_SETTINGS
    def test_state_dict_restores_the_distribution(self, data: st.DataObject, seed: int) -> None:
        prior, template, x = self._draw(data, seed)
        fresh = self.make_prior()
        fresh.load_state_dict(prior.state_dict())
        y = fresh.sample(template, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(x.pos, y.pos) and torch.equal(x.node, y.node)


class CouplingContract:
    """Pytest contract for a :class:`~symgen.couplings.Coupling`.

    Subclass it (name starting ``Test``) and implement :meth:`make_coupling`; set
    :attr:`transforms_prior` for couplings that move prior samples by a group element
    (aligned couplings). The inherited tests check, by Hypothesis over batches of mixed sizes
    and both float dtypes: that both marginals are kept (the data are returned unchanged, the
    prior samples are a re-indexing that pairs only graphs of equal size, each sample intact
    or, for aligned couplings, in its orbit: same sorted pair distances and features); the
    ``independent`` flag; reproducibility; and a named error for mismatched layouts.
    """

    #: Whether ``couple`` may rotate and relabel prior samples (compare orbit invariants only).
    transforms_prior: bool = False

    def make_coupling(self) -> Coupling:
        """Return the coupling under test."""
        raise NotImplementedError("subclasses of CouplingContract implement make_coupling()")

    def make_prior(self) -> Prior:
        """The prior whose samples are coupled (default: a centred Gaussian on positions)."""
        from symgen.priors import CenteredGaussianPrior

        return CenteredGaussianPrior(features=False)

    def data_strategy(self) -> st.SearchStrategy[GeometricGraph]:
        """Data batches (several graphs of a few sizes, so that pairs can be exchanged)."""
        return geometric_graphs(min_batch=2, max_batch=7, min_nodes=1, max_nodes=5)

    def _couple(self, data: st.DataObject, seed: int) -> tuple[GeometricGraph, GeometricGraph, Any]:
        x1 = data.draw(self.data_strategy()).zero_padding()
        x0 = self.make_prior().sample(x1, generator=torch.Generator().manual_seed(seed))
        out = self.make_coupling().couple(x0, x1, generator=torch.Generator().manual_seed(seed))
        return x0, x1, out

    @given(data=st.data(), seed=st.integers(0, 2**31 - 1))
    @_SETTINGS
    def test_keeps_both_marginals(self, data: st.DataObject, seed: int) -> None:
        x0, x1, out = self._couple(data, seed)
        b = x1.batch_size
        assert torch.equal(out.target_index, torch.arange(b))
        assert torch.equal(out.x1.pos, x1.pos) and torch.equal(out.x1.mask, x1.mask)
        src = out.source_index
        assert sorted(src.tolist()) == list(range(b)), "prior samples must be used once each"
        assert torch.equal(x0.num_nodes[src], x1.num_nodes), "pairs must have equal sizes"
        assert torch.equal(out.x0.mask, x1.mask)
        _assert_zero_padding_and_symmetric_edges(out.x0, "coupled prior sample")
        moved = x0.index(src)
        if not self.transforms_prior:
            assert torch.equal(out.x0.pos, moved.pos) and torch.equal(out.x0.node, moved.node)
            return
        tol = 1e-9 if x1.dtype == torch.float64 else 1e-4
        for i, k in enumerate(x1.num_nodes.tolist()):
            torch.testing.assert_close(
                _pairwise_distances(out.x0.pos[i], k),
                _pairwise_distances(moved.pos[i], k),
                atol=tol,
                rtol=tol,
                msg=f"pair {i}: the prior sample left its orbit",
            )
            a = out.x0.node[i, :k].sort(0).values
            assert torch.equal(a, moved.node[i, :k].sort(0).values)

    @given(data=st.data(), seed=st.integers(0, 2**31 - 1))
    @_SETTINGS
    def test_independent_flag_and_reproducibility(self, data: st.DataObject, seed: int) -> None:
        x0, x1, out = self._couple(data, seed)
        coupling = self.make_coupling()
        again = coupling.couple(x0, x1, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(out.source_index, again.source_index)
        assert torch.equal(out.x0.pos, again.x0.pos)
        if coupling.independent:
            assert torch.equal(out.source_index, torch.arange(x1.batch_size))
            assert torch.equal(out.x0.pos, x0.pos)

    def test_mismatched_layouts_are_rejected(self) -> None:
        from symgen.testing.strategies import make_graph

        x1 = make_graph([3, 4], seed=0)
        x0 = make_graph([4, 3], seed=1)
        try:
            self.make_coupling().couple(x0, x1)
        except ValueError as err:
            assert "mask" in str(err) or "shape" in str(err), str(err)
        else:
            raise AssertionError("a prior batch with another mask must be rejected")
