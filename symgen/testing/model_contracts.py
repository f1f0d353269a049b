"""Contract test classes for processes and networks: subclass one, and pytest runs the suite.

Example (in a test module)::

    from symgen.generators import FlowMatching
    from symgen.testing import ProcessContract

    class TestMyFlow(ProcessContract):
        def make_process(self):
            return FlowMatching(prediction="data")
"""

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from symgen.generators.base import Process
from symgen.generators.sampling import SOLVERS, SamplerOptions
from symgen.groups import Group
from symgen.masking import pair_mask
from symgen.network import supports_self_conditioning
from symgen.priors import GaussianPrior, Prior
from symgen.state import GeometricGraph
from symgen.testing.asserts import assert_equivariant, default_atol
from symgen.testing.oracles import GaussianOracle
from symgen.testing.strategies import geometric_graphs, make_graph

__all__ = ["ProcessContract", "NetworkContract"]

_SETTINGS = settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.differing_executors]
)


def _rng(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _times(x: GeometricGraph, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(x.batch_size, generator=g, dtype=torch.float64).to(x.dtype)


def _tiny_network(x: GeometricGraph, self_condition: bool) -> nn.Module:
    from symgen.models import build_network

    e = 0 if x.edge is None else x.edge.shape[-1]
    f = x.node.shape[-1]
    return build_network(
        "canon_transformer",
        node_in=f,
        node_out=f,
        edge_in=e,
        edge_out=e,
        width=16,
        depth=1,
        heads=2,
        pair_width=4,
        num_rbf=4,
        rank_dim=4,
        self_condition=self_condition,
    ).to(x.dtype)


class ProcessContract:
    """Pytest contract for a :class:`~symgen.generators.Process`.

    Subclass it (name starting ``Test``) and implement :meth:`make_process`; override
    :meth:`make_prior` (default: a Gaussian on positions and features) and
    :meth:`data_strategy` for processes with categorical channels. The inherited tests check,
    by Hypothesis over batches, masks, padding values and both float dtypes: a well-formed
    loss (finite scalar, a ``pos`` term, gradients reaching the network, reproducible from a
    seed), that padding values never change the loss, that every solver in :attr:`solvers`
    returns finite samples with the template's layout, zero padding and reproducibility, that
    the process accepts its prior; and, for affine processes, that sampling the exact
    prediction of Gaussian data (:class:`~symgen.testing.GaussianOracle`) reproduces the data
    distribution with each solver of :attr:`oracle_solvers`.
    """

    #: Solvers whose samples are checked for layout and reproducibility.
    solvers: tuple[str, ...] = tuple(SOLVERS)
    #: ``(solver, steps)`` pairs of the Gaussian-oracle test (affine processes only).
    oracle_solvers: tuple[tuple[str, int], ...] = (("euler", 100), ("heun", 20))

    def make_process(self) -> Process:
        """Return the process under test."""
        raise NotImplementedError("subclasses of ProcessContract implement make_process()")

    def make_prior(self) -> Prior:
        """The prior the process starts from."""
        return GaussianPrior()

    def make_network(self, x: GeometricGraph, process: Process) -> nn.Module:
        """A small network with the data's widths (self-conditioned if the process is)."""
        return _tiny_network(x, process.self_conditioning)

    def data_strategy(self) -> st.SearchStrategy[GeometricGraph]:
        """Data batches (continuous features; override for categorical channels)."""
        return geometric_graphs(edge_features=st.sampled_from([0, 2]), max_nodes=6)

    def _setup(self, data: st.DataObject) -> tuple[Process, Prior, GeometricGraph, nn.Module]:
        process, prior = self.make_process(), self.make_prior()
        x1 = data.draw(self.data_strategy()).zero_padding()
        torch.manual_seed(0)
        return process, prior, x1, self.make_network(x1, process)

    @given(data=st.data(), seed=st.integers(0, 2**31 - 1))
    @_SETTINGS
    def test_loss_is_well_formed(self, data: st.DataObject, seed: int) -> None:
        process, prior, x1, net = self._setup(data)
        x0 = prior.sample(x1, generator=torch.Generator().manual_seed(seed))
        out = process.loss(net, x0, x1, generator=torch.Generator().manual_seed(seed))
        assert out.total.ndim == 0 and bool(torch.isfinite(out.total))
        assert "pos" in out.terms and set(out.terms) <= {"pos", "node", "edge"}
        again = process.loss(net, x0, x1, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(out.total, again.total), "the loss is not reproducible from a seed"
        out.total.backward()
        grads = [p.grad for p in net.parameters() if p.requires_grad]
        assert any(g is not None and float(g.abs().sum()) > 0 for g in grads)
        assert all(g is None or bool(torch.isfinite(g).all()) for g in grads)

    @given(data=st.data(), seed=st.integers(0, 2**31 - 1))
    @_SETTINGS
    def test_padding_values_never_change_the_loss(self, data: st.DataObject, seed: int) -> None:
        process, prior, x1, net = self._setup(data)
        x0 = prior.sample(x1, generator=torch.Generator().manual_seed(seed))
        m = x1.mask[..., None]
        pm = pair_mask(x1.mask, self_loops=True)[..., None]
        noisy = x1.replace(  # the same graphs with 7 in every padding slot
            pos=torch.where(m, x1.pos, 7.0),
            node=torch.where(m, x1.node, 7.0),
            edge=None if x1.edge is None else torch.where(pm, x1.edge, 7.0),
        )
        a = process.loss(net, x0, x1, generator=torch.Generator().manual_seed(seed)).total
        b = process.loss(net, x0, noisy, generator=torch.Generator().manual_seed(seed)).total
        torch.testing.assert_close(a, b, atol=default_atol(x1.dtype), rtol=1e-5)

    @given(data=st.data(), seed=st.integers(0, 2**31 - 1))
    @_SETTINGS
    def test_samples_have_the_template_layout(self, data: st.DataObject, seed: int) -> None:
        process, prior, template, net = self._setup(data)
        process.check_prior(prior)
        for solver in self.solvers:
            opts = SamplerOptions(steps=3, solver=solver)  # type: ignore[arg-type]
            runs = [
                process.sample(net, prior, template, opts, generator=_rng(seed)) for _ in range(2)
            ]
            x = runs[0]
            assert x.pos.shape == template.pos.shape and torch.equal(x.mask, template.mask)
            assert x.node.shape == template.node.shape
            assert bool(torch.isfinite(x.pos).all()), f"{solver}: non-finite positions"
            assert float(x.pos[~x.mask].abs().sum()) == 0.0, f"{solver}: padding not zero"
            assert torch.equal(x.pos, runs[1].pos), f"{solver}: not reproducible from a seed"

    def test_gaussian_oracle_reproduces_the_data(self) -> None:
        process = self.make_process()
        if getattr(process, "schedule", None) is None or getattr(process, "spec", None):
            return  # the closed-form oracle needs an affine path, without categorical channels
        mean, std = 1.5, 0.5
        template = make_graph([4] * 500, num_types=1, dtype=torch.float64)
        oracle = GaussianOracle(process, mean, std)
        prior = GaussianPrior(features=False)
        for solver, steps in self.oracle_solvers:
            opts = SamplerOptions(steps=steps, solver=solver)  # type: ignore[arg-type]
            x = process.sample(oracle, prior, template, opts, generator=_rng(0))
            p = x.pos[x.mask].flatten()
            assert abs(float(p.mean()) - mean) < 0.04, (solver, float(p.mean()))
            assert abs(float(p.std()) - std) < 0.04, (solver, float(p.std()))


class NetworkContract:
    """Pytest contract for a network (the :class:`symgen.network.GraphNetwork` protocol).

    Subclass it (name starting ``Test``) and implement :meth:`make_network` with the widths
    :attr:`node_in`, :attr:`node_out`, :attr:`edge_in` and :attr:`edge_out`; set
    :attr:`equivariant_group` if the network promises equivariance (positions then transform as
    vectors, :meth:`~symgen.groups.Group.act_on_vectors`). The inherited tests check, by
    Hypothesis over batches, masks and padding values: the output layout (same mask, output
    widths, zero padding, finite); that padding never leaks into real nodes (extra padding
    slots and padding values change nothing); that graphs of a batch do not interact; float64;
    gradients; the optional self-conditioning input; and the declared equivariance.
    """

    node_in: int = 4
    node_out: int = 3
    edge_in: int = 2
    edge_out: int = 2
    #: The group the network is equivariant to (``None``: nothing is promised).
    equivariant_group: Group | None = None

    def make_network(self) -> nn.Module:
        """Return the network under test (same widths as the attributes; float32)."""
        raise NotImplementedError("subclasses of NetworkContract implement make_network()")

    def input_strategy(self) -> st.SearchStrategy[GeometricGraph]:
        return geometric_graphs(
            num_types=self.node_in,
            edge_features=self.edge_in,
            max_nodes=6,
            dtypes=(torch.float64,),
            pad_value=st.sampled_from([0.0, 7.0]),
        )

    def _net(self) -> nn.Module:
        torch.manual_seed(0)
        return self.make_network().double().eval().requires_grad_(False)

    @given(data=st.data(), seed=st.integers(0, 2**31 - 1))
    @_SETTINGS
    def test_output_layout(self, data: st.DataObject, seed: int) -> None:
        x = data.draw(self.input_strategy())
        out = self._net()(x, _times(x, seed))
        assert isinstance(out, GeometricGraph) and torch.equal(out.mask, x.mask)
        assert out.pos.shape == x.pos.shape and out.node.shape[-1] == self.node_out
        assert out.dtype == torch.float64
        pad = ~x.mask
        assert float(out.pos[pad].abs().sum()) == 0 and float(out.node[pad].abs().sum()) == 0
        assert bool(torch.isfinite(out.pos).all() and torch.isfinite(out.node).all())
        if self.edge_out:
            assert out.edge is not None and out.edge.shape[-1] == self.edge_out
            assert float(out.edge[~x.edge_mask].abs().sum()) == 0

    @given(data=st.data(), seed=st.integers(0, 2**31 - 1))
    @_SETTINGS
    def test_padding_never_leaks(self, data: st.DataObject, seed: int) -> None:
        """Real-node outputs are the same on the trimmed batch (no padding slots to spare)."""
        x = data.draw(self.input_strategy())
        net, t = self._net(), _times(x, seed)
        a, b = net(x, t), net(x.trim(), t)
        k = b.max_nodes
        m = b.mask
        torch.testing.assert_close(a.pos[:, :k][m], b.pos[m], atol=1e-9, rtol=1e-7)
        torch.testing.assert_close(a.node[:, :k][m], b.node[m], atol=1e-9, rtol=1e-7)

    @given(data=st.data(), seed=st.integers(0, 2**31 - 1))
    @_SETTINGS
    def test_graphs_do_not_interact(self, data: st.DataObject, seed: int) -> None:
        x = data.draw(self.input_strategy())
        net, t = self._net(), _times(x, seed)
        full = net(x, t)
        i = x.batch_size - 1
        alone = net(x.index([i]), t[i : i + 1])
        torch.testing.assert_close(full.pos[i], alone.pos[0], atol=1e-9, rtol=1e-7)
        torch.testing.assert_close(full.node[i], alone.node[0], atol=1e-9, rtol=1e-7)

    def test_float32_gradients_and_self_conditioning(self) -> None:
        torch.manual_seed(0)
        net = self.make_network()
        x = make_graph([5, 3], num_types=self.node_in, edge_features=self.edge_in, seed=1)
        t = torch.tensor([0.3, 0.8])
        out = net(x, t)
        assert out.dtype == torch.float32
        loss = out.pos.square().sum() + out.node.square().sum()
        if out.edge is not None:
            loss = loss + out.edge.square().sum()
        loss.backward()
        grads = [p.grad for p in net.parameters() if p.requires_grad]
        assert any(g is not None and float(g.abs().sum()) > 0 for g in grads)
        assert all(g is None or bool(torch.isfinite(g).all()) for g in grads)
        if supports_self_conditioning(net):
            cond = out.map(lambda v: torch.ones_like(v).detach())
            with torch.no_grad():
                conditioned = net(x, t, cond=cond)
            assert not torch.allclose(conditioned.pos, out.pos.detach()), "cond= is ignored"

    @given(data=st.data(), seed=st.integers(0, 2**31 - 1))
    @_SETTINGS
    def test_declared_equivariance(self, data: st.DataObject, seed: int) -> None:
        group = self.equivariant_group
        if group is None:
            return
        x = data.draw(self.input_strategy()).zero_padding()
        net, t = self._net(), _times(x, seed)
        assert_equivariant(
            lambda y: net(y, t),
            group,
            x,
            act_out=group.act_on_vectors,
            generator=torch.Generator().manual_seed(seed),
            atol=1e-7,
        )
