"""Few-step training without a teacher: the shortcut objective of the flow process."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_generators import FlatMLP, _axis_pvalue, _order_pvalue

from symgen.canon import geometric_spectral_canonicalizer
from symgen.couplings import IndependentCoupling
from symgen.diagnostics import toy_shapes
from symgen.generators import (
    CanonicalGenerator,
    FlowMatching,
    NetworkAdapter,
    SamplerOptions,
    size_histogram,
)
from symgen.models import CanonTransformer
from symgen.network import supports_step_size
from symgen.priors import (
    CategoricalPrior,
    CategoricalSpec,
    CenteredGaussianPrior,
    ProductPrior,
)
from symgen.state import GeometricGraph


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class Analytic(torch.nn.Module):
    """A velocity field with a known, nonlinear dependence on (x, t, d); records each d."""

    step_size_input = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: GeometricGraph, t: torch.Tensor, d: torch.Tensor | None = None):
        d = torch.zeros_like(t) if d is None else d
        self.seen.append(d.detach().clone())
        w = (1 + t + 3 * d)[:, None, None]
        pos = torch.sin(x.pos) * w + d[:, None, None] ** 2
        return x.replace(pos=pos, node=torch.cos(x.node) * w)


class IgnoresStepSize(torch.nn.Module):
    """A small MLP on fixed-size graphs that accepts a step size and ignores it."""

    step_size_input = True

    def __init__(self, n: int = 6, f: int = 1) -> None:
        super().__init__()
        self.n, self.f = n, f
        self.net = torch.nn.Sequential(
            torch.nn.Linear(n * 3 + n * f + 1, 32),
            torch.nn.SiLU(),
            torch.nn.Linear(32, n * (3 + f)),
        )
        self.seen: list[float] = []

    def forward(self, x: GeometricGraph, t: torch.Tensor, d: torch.Tensor | None = None):
        self.seen.append(math.nan if d is None else float(d[0]))
        b = x.batch_size
        out = self.net(torch.cat([x.pos.flatten(1), x.node.flatten(1), t[:, None]], -1))
        return x.replace(
            pos=out[:, : self.n * 3].reshape(b, self.n, 3),
            node=out[:, self.n * 3 :].reshape(b, self.n, self.f),
        )


def _graphs(b: int, n: int, dtype: torch.dtype, seed: int) -> GeometricGraph:
    g = _gen(seed)
    mask = torch.ones(b, n, dtype=torch.bool)
    mask[0, -1] = False  # one padded slot
    x = GeometricGraph(
        torch.randn(b, n, 3, generator=g, dtype=dtype),
        torch.randn(b, n, 2, generator=g, dtype=dtype),
        mask,
    )
    return x.zero_padding()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("level", [0, 2, 3, 4])
def test_target_is_the_composition_of_two_half_steps(dtype: torch.dtype, level: int) -> None:
    """shortcut_target = (v(x, t, d/2) + v(x + d/2 v(x, t, d/2), t + d/2, d/2)) / 2, computed
    here by hand; the finest half step (2^-levels) is asked at d = 0."""
    proc = FlowMatching(shortcut=0.5, shortcut_levels=4)
    model = Analytic()
    x0, x1 = _graphs(3, 4, dtype, 0), _graphs(3, 4, dtype, 1)
    d = torch.full((3,), 2.0**-level, dtype=dtype)
    t = torch.tensor([0.0, 0.25, 0.5], dtype=dtype) * (1 - d)
    xt = proc.interpolate(x0, x1, t)
    got = proc.shortcut_target(model, x0, x1, xt, t, d)

    half = d / 2
    asked = torch.zeros_like(half) if float(half[0]) <= 2.0**-4 else half
    m = xt.mask[..., None].to(dtype)
    v1 = model(xt, t, asked)
    v1 = v1.replace(pos=v1.pos * m, node=v1.node * m)
    mid = xt.replace(
        pos=xt.pos + half[:, None, None] * v1.pos, node=xt.node + half[:, None, None] * v1.node
    )
    v2 = model(mid, t + half, asked)
    want_pos = 0.5 * (v1.pos + v2.pos * m)
    want_node = 0.5 * (v1.node + v2.node * m)
    torch.testing.assert_close(got.pos, want_pos)
    torch.testing.assert_close(got.node, want_node)
    assert all(torch.equal(s, asked) for s in model.seen)


@settings(max_examples=25, deadline=None)
@given(
    b=st.integers(1, 40),
    share=st.sampled_from([0.25, 0.5, 0.9]),
    levels=st.integers(1, 8),
    seed=st.integers(0, 10_000),
)
def test_shortcut_times_lie_on_the_grid_of_their_step(
    b: int, share: float, levels: int, seed: int
) -> None:
    proc = FlowMatching(shortcut=share, shortcut_levels=levels)
    t0 = torch.rand(b, generator=_gen(seed))
    t, d, chosen = proc._shortcut_times(t0, _gen(seed + 1))
    m = min(b - 1, max(1, int(share * b + 0.5))) if b > 1 else 0
    assert len(chosen) == m and len(set(chosen.tolist())) == m
    rest = torch.ones(b, dtype=torch.bool)
    rest[chosen] = False
    k = -torch.log2(d[chosen].double())
    assert bool((k == k.round()).all()) and bool((k >= 0).all()) and bool((k < levels).all())
    if m:
        ratio = t[chosen].double() / d[chosen].double()
        assert bool((ratio - ratio.round()).abs().max() < 1e-9)
    assert bool((t[chosen] + d[chosen] <= 1 + 1e-9).all())
    assert bool((d[rest] == 0).all()) and torch.equal(t[rest], t0[rest])


def test_shortcut_graphs_are_a_random_subset_not_the_first() -> None:
    """Batches come sorted by size: the shortcut share must not always be the smallest graphs."""
    proc = FlowMatching(shortcut=0.25)
    hits = torch.zeros(16)
    for seed in range(200):
        _, _, chosen = proc._shortcut_times(torch.rand(16), _gen(seed))
        hits[chosen] += 1
    assert bool((hits > 0).all())  # every slot is chosen sometimes
    assert float(hits.max() - hits.min()) < 40  # about 50 each


def test_euler_with_step_sizes_reproduces_euler_when_the_network_ignores_them() -> None:
    torch.manual_seed(0)
    net = IgnoresStepSize()
    prior = CenteredGaussianPrior(features=False)
    template = GeometricGraph(
        torch.zeros(5, 6, 3), torch.zeros(5, 6, 1), torch.ones(5, 6, dtype=torch.bool)
    )
    opts = SamplerOptions(steps=4, solver="euler", time_grid=0.5)
    plain = FlowMatching().sample(net, prior, template, opts, generator=_gen(3))
    assert all(math.isnan(s) for s in net.seen)  # the ordinary sampler passes no step size
    net.seen.clear()
    short = FlowMatching(shortcut=0.25).sample(net, prior, template, opts, generator=_gen(3))
    torch.testing.assert_close(short.pos, plain.pos, rtol=0, atol=0)
    times = opts.times()
    proc = FlowMatching(shortcut=0.25)
    want = [proc.step_size_input(b - a) for a, b in zip(times[:-1], times[1:])]
    assert net.seen == pytest.approx(want) and want[0] > 0  # the trained levels nearest h
    net.seen.clear()
    FlowMatching(shortcut=0.25).sample(
        net, prior, template, opts.replace(shortcut=False), generator=_gen(3)
    )
    assert net.seen == [0.0] * 4  # the many-step path of the same network: d = 0
    net.seen.clear()
    FlowMatching(shortcut=0.25).sample(
        net, prior, template, opts.replace(solver="heun"), generator=_gen(3)
    )
    assert set(net.seen) == {0.0}  # other solvers ask for the instantaneous velocity


def test_errors_name_the_missing_step_size_input_and_bad_settings() -> None:
    class Plain(torch.nn.Module):
        def forward(self, x, t):  # noqa: ANN001, ANN201
            return x

    x = _graphs(4, 3, torch.float32, 0)
    with pytest.raises(ValueError, match="step_size_input"):
        FlowMatching(shortcut=0.5).loss(Plain(), x, x, generator=_gen(0))
    with pytest.raises(ValueError, match="takes no step size"):
        NetworkAdapter(Plain())(x, torch.rand(4), d=torch.zeros(4))
    with pytest.raises(ValueError, match="average velocities"):
        FlowMatching(prediction="data", shortcut=0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        FlowMatching(shortcut=1.0)
    with pytest.raises(ValueError, match="shortcut_levels"):
        FlowMatching(shortcut=0.5, shortcut_levels=0)


def test_splicing_replaces_only_the_chosen_rows_and_the_continuous_channels() -> None:
    """The loss target is the shortcut target on the chosen graphs' continuous channels and
    the ordinary velocity elsewhere, tokens untouched; continuous edges are spliced too."""
    from symgen.generators.prediction import regression_target

    spec = CategoricalSpec(node_blocks=(3,), edge_classes=None)
    proc = FlowMatching(spec=spec, shortcut=0.5, shortcut_levels=3)
    g = _gen(0)
    mask = torch.ones(4, 3, dtype=torch.bool)
    tok = torch.nn.functional.one_hot(torch.randint(0, 3, (4, 3), generator=g), 3).float()
    node = torch.cat([tok, torch.randn(4, 3, 2, generator=g)], -1)  # 3 token + 2 continuous
    edge = torch.randn(4, 3, 3, 1, generator=g)
    edge = (edge + edge.transpose(1, 2)) * (1 - torch.eye(3))[None, :, :, None]
    x1 = GeometricGraph(torch.randn(4, 3, 3, generator=g), node, mask, edge)
    x0 = x1.replace(
        pos=torch.randn(4, 3, 3, generator=g),
        node=torch.cat([tok.flip(0), torch.randn(4, 3, 2, generator=g)], -1),
    )
    t = torch.tensor([0.0, 0.25, 0.5, 0.75])
    d = torch.tensor([0.25, 0.0, 0.5, 0.0])
    chosen = torch.tensor([0, 2])
    xt = proc.interpolate(x0, x1, t, generator=_gen(1))
    model = Analytic()
    base = regression_target("velocity", proc.schedule, x0, x1, t)
    got = proc._with_shortcut_targets(model, base, x0, x1, xt, t, d, chosen, _gen(2))
    want = proc.shortcut_target(
        model,
        x0.index(chosen),
        x1.index(chosen),
        xt.index(chosen),
        t[chosen],
        d[chosen],
        generator=_gen(2),
    )
    torch.testing.assert_close(got.pos[chosen], want.pos)
    torch.testing.assert_close(got.node[chosen][..., 3:], want.node[..., 3:])
    torch.testing.assert_close(got.edge[chosen], want.edge)
    for rows in (torch.tensor([1, 3]),):
        torch.testing.assert_close(got.pos[rows], base.pos[rows])
        torch.testing.assert_close(got.node[rows], base.node[rows])
        torch.testing.assert_close(got.edge[rows], base.edge[rows])
    torch.testing.assert_close(got.node[..., :3], base.node[..., :3])  # token columns kept


def test_midpoint_tokens_continue_the_path_from_x_t() -> None:
    """A token already revealed at t stays revealed at t + d/2 (the path is continued from x_t,
    not redrawn), and a noisy one is revealed with probability (κ(t+h) - κ(t)) / (1 - κ(t))."""
    spec = CategoricalSpec(node_blocks=(4,), edge_classes=None)
    proc = FlowMatching(spec=spec, shortcut=0.5)
    seen = []

    class Records(torch.nn.Module):
        step_size_input = True

        def forward(self, x, t, d=None):  # noqa: ANN001, ANN201
            seen.append(x.node.clone())
            return x.replace(pos=torch.zeros_like(x.pos), node=torch.zeros_like(x.node))

    b, n = 400, 8
    x1 = GeometricGraph(
        torch.zeros(b, n, 3),
        torch.nn.functional.one_hot(torch.zeros(b, n, dtype=torch.long), 4).float(),
        torch.ones(b, n, dtype=torch.bool),
    )
    x0 = x1.replace(node=torch.nn.functional.one_hot(torch.full((b, n), 3), 4).float())
    t, d = torch.full((b,), 0.5), torch.full((b,), 0.5)
    xt = proc.interpolate(x0, x1, t, generator=_gen(0))
    proc.shortcut_target(Records(), x0, x1, xt, t, d, generator=_gen(1))
    before, after = xt.node[..., 0] == 1, seen[1][..., 0] == 1
    assert bool((after | ~before).all())  # nothing revealed is hidden again
    frac = float((after & ~before).sum() / (~before).sum())
    assert abs(frac - (0.75 - 0.5) / 0.5) < 0.03  # κ(t) = t: reveal 0.5 of the noisy tokens


def test_canon_transformer_step_size_input_and_tokens_in_the_loss() -> None:
    """The transformer's step-size input changes its output; the loss with discrete tokens,
    self-conditioning and shortcut targets runs and backpropagates into every parameter,
    including the step embedding's frequencies that are silent at d = 0."""
    spec = CategoricalSpec(node_blocks=(3,), edge_classes=2)
    net = CanonTransformer(
        node_in=3,
        node_out=3,
        edge_in=2,
        edge_out=2,
        width=16,
        depth=1,
        heads=2,
        pair_width=4,
        self_condition=True,
        step_size=True,
    )
    assert supports_step_size(net) and supports_step_size(NetworkAdapter(net))
    g = _gen(0)
    mask = torch.ones(6, 5, dtype=torch.bool)
    node = torch.nn.functional.one_hot(torch.randint(0, 3, (6, 5), generator=g), 3).float()
    e = torch.randint(0, 2, (6, 5, 5), generator=g)
    e = torch.triu(e, 1)
    edge = torch.nn.functional.one_hot(e + e.transpose(1, 2), 2).float()
    x1 = GeometricGraph(torch.randn(6, 5, 3, generator=g), node, mask, edge).zero_padding()
    prior = ProductPrior(CenteredGaussianPrior(features=False), CategoricalPrior(spec, "uniform"))
    x0 = prior.sample(x1, generator=g)
    t = torch.rand(6, generator=g)
    a = net(x1, t, d=torch.zeros(6)).pos
    b = net(x1, t, d=torch.full((6,), 0.5)).pos
    assert not torch.allclose(a, b)
    torch.testing.assert_close(net(x1, t).pos, a)  # no step size = d = 0
    proc = FlowMatching(spec=spec, self_conditioning=True, shortcut=0.5, shortcut_levels=3)
    out = proc.loss(net, x0, x1, generator=_gen(1))
    out.total.backward()
    assert math.isfinite(float(out.total.detach())) and set(out.terms) == {"pos", "node", "edge"}
    assert all(p.grad is not None for p in net.parameters())
    sin_columns = net.step.net[0].weight.grad[:, : net.step.freq_dim // 2]
    assert float(sin_columns.abs().sum()) > 0  # d > 0 reached the loss


class PointMLP(torch.nn.Module):
    """An MLP for one-node graphs with time and step-size inputs."""

    step_size_input = True

    def __init__(self, hidden: int = 128) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(5, hidden),
            torch.nn.SiLU(),
            torch.nn.Linear(hidden, hidden),
            torch.nn.SiLU(),
            torch.nn.Linear(hidden, 3),
        )

    def forward(self, x: GeometricGraph, t: torch.Tensor, d: torch.Tensor | None = None):
        d = torch.zeros_like(t) if d is None else d
        h = torch.cat([x.pos[:, 0], t[:, None], d[:, None]], -1)
        return x.replace(pos=self.net(h)[:, None, :])


def _two_modes(b: int, g: torch.Generator) -> GeometricGraph:
    """Points at ±2 on the x axis (noise 0.05): the flow's one-step map collapses between them."""
    sign = torch.randint(0, 2, (b,), generator=g).float() * 2 - 1
    pos = torch.zeros(b, 1, 3)
    pos[:, 0, 0] = 2 * sign
    pos = pos + 0.05 * torch.randn(b, 1, 3, generator=g)
    return GeometricGraph(pos, torch.zeros(b, 1, 1), torch.ones(b, 1, dtype=torch.bool))


def _train_points(shortcut: float, steps: int = 1500) -> tuple[FlowMatching, PointMLP]:
    from symgen.priors import GaussianPrior

    torch.manual_seed(0)
    g = _gen(0)
    proc, net = FlowMatching(shortcut=shortcut, shortcut_levels=5), PointMLP()
    prior = GaussianPrior()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        x1 = _two_modes(512, g)
        loss = proc.loss(net, prior.sample(x1, generator=g), x1, generator=g).total
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return proc, net


def test_shortcut_training_makes_one_step_work_on_two_modes() -> None:
    """Same network, data, budget and seed (about 15 s on 2 cores). Flow matching's
    one-step map is the posterior mean, which lands between the two modes; most of the
    shortcut-trained model's one-step samples land on a mode, and its many-step path (d = 0)
    stays as good as the flow model's."""
    from symgen.priors import GaussianPrior

    prior = GaussianPrior()
    template = _two_modes(2000, _gen(9))

    def on_mode(proc: FlowMatching, net: PointMLP, steps: int, shortcut: bool = True) -> float:
        opts = SamplerOptions(steps=steps, solver="euler", shortcut=shortcut)
        with torch.no_grad():
            x = proc.sample(net, prior, template, opts, generator=_gen(1))
        return float(
            (
                (x.pos[:, 0] - torch.sign(x.pos[:, 0, :1]) * torch.tensor([2.0, 0, 0])).norm(dim=-1)
                < 0.5
            )
            .float()
            .mean()
        )

    flow, short = _train_points(0.0), _train_points(0.25)
    one_flow, one_short = on_mode(*flow, 1), on_mode(*short, 1)
    assert one_flow < 0.1 and one_short > 0.6, (one_flow, one_short)
    many_flow, many_short = on_mode(*flow, 64), on_mode(*short, 64, shortcut=False)
    assert many_short > many_flow - 0.05 and many_flow > 0.8, (many_flow, many_short)


def _train(shortcut: float, steps: int = 200) -> CanonicalGenerator:
    torch.manual_seed(0)
    g = _gen(0)
    data = toy_shapes(2048, generator=g)
    canon = geometric_spectral_canonicalizer()
    cache = canon.canonicalize(data).representative
    gen = CanonicalGenerator(
        canon,
        CenteredGaussianPrior(features=False),
        IndependentCoupling(),
        FlowMatching(shortcut=shortcut, shortcut_levels=5),
        FlatMLP(6, 1, step_size=True),
        assume_canonical=True,
        sizes=size_histogram(data),
        node_dim=1,
    )
    opt = torch.optim.Adam(gen.parameters(), lr=2e-3)
    for _ in range(steps):
        idx = torch.randint(0, 2048, (256,), generator=g)
        out = gen.loss(cache.index(idx), generator=g)
        opt.zero_grad()
        out.total.backward()
        opt.step()
    return gen


@pytest.fixture(scope="module")
def toy_pair() -> dict:
    return {"shortcut": _train(0.25)}


def test_shortcut_samples_are_invariant(toy_pair) -> None:
    """Symmetrization at generation time keeps the generated distribution invariant at any step
    count: the principal axis is uniform and the farthest atom's slot is uniform."""
    gen = toy_pair["shortcut"]
    for steps in (1, 4):
        x = gen.sample(1000, steps=steps, solver="euler", generator=_gen(7))
        assert _axis_pvalue(x) > 1e-3 and _order_pvalue(x) > 1e-3
    raw = gen.sample(1000, steps=1, solver="euler", generator=_gen(7), symmetrize=False)
    assert _axis_pvalue(raw) < 1e-6  # the canonical slice alone is not invariant
