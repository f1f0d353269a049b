"""Conditioning: the Context type, classifier-free dropout and guidance, the generator and
training-loop plumbing, and a conditional toy model that must follow its condition while its
samples stay exactly invariant."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_generators import _axis_pvalue, _order_pvalue

from symgen.canon import geometric_spectral_canonicalizer
from symgen.conditioning import Context, ContextError, drop_context, guide
from symgen.couplings import IndependentCoupling, MinibatchOTCoupling
from symgen.data import GraphsWithContext, batch_context
from symgen.diagnostics import TOY_SHAPES, toy_shapes
from symgen.generators import CanonicalGenerator, FlowMatching
from symgen.priors import CenteredGaussianPrior
from symgen.state import GeometricGraph
from symgen.testing import make_graph
from symgen.training import Trainer, TrainingConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class ContextMLP(torch.nn.Module):
    """A non-equivariant MLP on flattened 6-node graphs, the time and a context of
    ``context_dim`` targets (read as ``[values · mask, mask]``)."""

    def __init__(self, context_dim: int = 1, n: int = 6, hidden: int = 128) -> None:
        super().__init__()
        self.n, self.context_dim = n, context_dim
        self.register_buffer("freq", torch.arange(1, 9, dtype=torch.float32) * math.pi)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(n * 3 + n + 16 + 2 * context_dim, hidden),
            torch.nn.SiLU(),
            torch.nn.Linear(hidden, hidden),
            torch.nn.SiLU(),
            torch.nn.Linear(hidden, hidden),
            torch.nn.SiLU(),
            torch.nn.Linear(hidden, n * 3 + n),
        )

    def forward(
        self, x: GeometricGraph, t: torch.Tensor, context: Context | None = None
    ) -> GeometricGraph:
        b = x.batch_size
        if context is None:
            context = Context.empty(b, self.context_dim, dtype=x.dtype)
        emb = torch.cat([torch.sin(t[:, None] * self.freq), torch.cos(t[:, None] * self.freq)], -1)
        inp = torch.cat(
            [x.pos.flatten(1), x.node.flatten(1), emb.to(x.dtype), context.features()], -1
        )
        out = self.net(inp.to(self.net[0].weight.dtype)).to(x.dtype)
        return x.replace(
            pos=out[:, : self.n * 3].reshape(b, self.n, 3),
            node=out[:, self.n * 3 :].reshape(b, self.n, 1),
        )


def _generator(net: torch.nn.Module, *, canon: bool = True, **kw) -> CanonicalGenerator:
    return CanonicalGenerator(
        geometric_spectral_canonicalizer() if canon else None,
        CenteredGaussianPrior(features=False),
        kw.pop("coupling", IndependentCoupling()),
        FlowMatching(),
        net,
        sizes=[0, 0, 0, 0, 0, 0, 1],
        node_dim=1,
        **{"context_dim": getattr(net, "context_dim", 0), **kw},
    )


# --------------------------------------------------------------------------- the Context type
@settings(max_examples=25, deadline=None)
@given(
    b=st.integers(1, 5), c=st.integers(1, 4), dtype=st.sampled_from([torch.float32, torch.float64])
)
def test_context_features_and_checks(b: int, c: int, dtype: torch.dtype) -> None:
    values = torch.randn(b, c, generator=_gen(b * 10 + c), dtype=dtype)
    mask = torch.rand(b, c, generator=_gen(c)) < 0.5
    ctx = Context(values, mask)
    f = ctx.features()
    assert f.shape == (b, 2 * c) and f.dtype == dtype
    torch.testing.assert_close(f[:, :c], values * mask)
    torch.testing.assert_close(f[:, c:], mask.to(dtype))
    assert not bool(ctx.unconditional().mask.any())
    ctx.check(b, c)
    with pytest.raises(
        ContextError, match=f"has {c} targets per graph but the model was built for {c + 1}"
    ):
        ctx.check(b, c + 1)
    with pytest.raises(ContextError, match=f"{b} rows but the batch has {b + 1} graphs"):
        ctx.check(b + 1, c)
    # a non-finite value is refused where it is given and ignored where it is masked out
    bad = values.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ContextError, match="finite"):
        Context.full(bad).check(b, c)
    Context(bad, torch.zeros_like(mask)).check(b, c)


def test_context_construction_errors() -> None:
    with pytest.raises(ContextError, match="float"):
        Context(torch.ones(2, 2, dtype=torch.long), torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(ContextError, match="mask must be a bool tensor"):
        Context(torch.ones(2, 2), torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ContextError, match="mask must be a bool tensor"):
        Context(torch.ones(2, 2), torch.ones(2, 2))


def test_drop_context_rates() -> None:
    """Whole contexts drop at p_graph, single targets at p_entry, independently (fixed seed,
    20,000 graphs: the binomial standard error is 0.003)."""
    ctx = Context.full(torch.ones(20000, 3))
    kept = drop_context(ctx, 0.3, generator=_gen(0)).mask
    assert abs(float(kept[:, 0].float().mean()) - 0.7) < 0.015
    assert bool((kept == kept[:, :1]).all())  # whole rows
    kept = drop_context(ctx, 0.0, 0.2, generator=_gen(1)).mask
    assert abs(float(kept.float().mean()) - 0.8) < 0.015
    both = kept.all(1).float().mean()  # independent entries: 0.8^3 of rows keep all three
    assert abs(float(both) - 0.512) < 0.02
    kept = drop_context(ctx, 0.5, 0.5, generator=_gen(2)).mask
    assert abs(float(kept.float().mean()) - 0.25) < 0.015
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError, match="must be in"):
            drop_context(ctx, p)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 100), p=st.floats(0, 1), q=st.floats(0, 1))
def test_drop_context_only_removes_targets(seed: int, p: float, q: float) -> None:
    ctx = Context(torch.randn(7, 3), torch.rand(7, 3, generator=_gen(seed)) < 0.6)
    out = drop_context(ctx, p, q, generator=_gen(seed))
    assert not bool((out.mask & ~ctx.mask).any())
    assert torch.equal(out.values, ctx.values)


@settings(max_examples=25, deadline=None)
@given(w=st.floats(-3, 5), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_guided_prediction_is_the_linear_mix(w: float, dtype: torch.dtype) -> None:
    """The process mixes the raw outputs as u + w (c - u), with c and u the network's outputs
    with the context and with it masked out."""
    torch.manual_seed(0)  # test-only: parameter init
    net = ContextMLP(2).to(dtype)
    x = toy_shapes(4, generator=_gen(0), dtype=dtype)
    t = torch.rand(4, generator=_gen(1), dtype=dtype)
    ctx = Context(
        torch.randn(4, 2, dtype=dtype, generator=_gen(2)), torch.ones(4, 2, dtype=torch.bool)
    )
    pred = FlowMatching().predict(net, x, t, context=ctx, guidance=w).raw
    c, u = net(x, t, context=ctx), net(x, t, context=ctx.unconditional())
    torch.testing.assert_close(pred.pos, u.pos + w * (c.pos - u.pos))
    torch.testing.assert_close(pred.node, u.node + w * (c.node - u.node))
    assert torch.equal(guide(c.pos, u.pos, 0.0), u.pos) and torch.equal(
        guide(c.pos, u.pos, 1.0), c.pos
    )


# --------------------------------------------------------------------------- generator plumbing
def test_guidance_zero_is_the_unconditional_model_and_one_the_conditional() -> None:
    torch.manual_seed(0)  # test-only: parameter init
    gen = _generator(ContextMLP(1))
    ctx = Context.full(torch.full((8, 1), 2.0))
    sizes = [6] * 8
    uncond = gen.sample(sizes, steps=4, generator=_gen(3))
    zero = gen.sample(sizes, steps=4, generator=_gen(3), context=ctx, guidance=0.0)
    assert torch.equal(zero.pos, uncond.pos) and torch.equal(zero.node, uncond.node)
    cond = gen.sample(sizes, steps=4, generator=_gen(3), context=ctx)
    assert not torch.allclose(cond.pos, uncond.pos)
    # guidance 1 never evaluates the unconditional branch: same draw as the explicit context
    again = gen.sample(sizes, steps=4, generator=_gen(3), context=ctx, guidance=1.0)
    assert torch.equal(cond.pos, again.pos)


@pytest.mark.parametrize("coupling", [IndependentCoupling(), MinibatchOTCoupling()])
def test_full_context_dropout_trains_the_unconditional_model(coupling) -> None:
    """With context_dropout = 1 the loss with any context equals the loss without one (the
    same draws), and with context_dropout = 0 it differs."""
    torch.manual_seed(0)  # test-only: parameter init
    net = ContextMLP(1)
    x = toy_shapes(16, generator=_gen(4))
    ctx = Context.full(torch.randn(16, 1, generator=_gen(5)))
    always = _generator(net, coupling=coupling, context_dropout=1.0)
    a = always.loss(x, generator=_gen(6), context=ctx).total
    b = always.loss(x, generator=_gen(6)).total
    assert torch.equal(a, b)
    never = _generator(net, coupling=coupling, context_dropout=0.0)
    c = never.loss(x, generator=_gen(6), context=ctx).total
    assert not torch.equal(a, c)


def test_context_follows_the_ot_coupling() -> None:
    """The OT coupling reorders the prior draws, never the data: each graph keeps its own
    context row (the network sees the context of the graph it is denoising)."""
    seen: list[tuple[torch.Tensor, ...]] = []

    class Spy(ContextMLP):
        def forward(self, x, t, context=None):  # noqa: ANN001, ANN201
            seen.append((x.node[:, 0, 0].clone(), t.clone(), context.values[:, 0].clone()))
            return super().forward(x, t, context)

    torch.manual_seed(0)  # test-only: parameter init
    x = toy_shapes(12, generator=_gen(7))
    label = torch.arange(12, dtype=torch.float32)
    x = x.replace(node=label[:, None, None].expand(12, 6, 1).contiguous())
    gen = _generator(Spy(1), canon=False, coupling=MinibatchOTCoupling(), context_dropout=0.0)
    gen.loss(x, generator=_gen(8), context=Context.full(label[:, None]))
    # the prior's features are zero, so the network's input feature is t · label of the graph
    # it denoises, and that graph's context must be its own label
    feature, t, ctx_seen = seen[0]
    torch.testing.assert_close(feature, t * ctx_seen)


def test_generator_context_errors() -> None:
    torch.manual_seed(0)  # test-only: parameter init
    gen = _generator(ContextMLP(2))
    with pytest.raises(ContextError, match="built for 2"):
        gen.sample([6, 6], context=Context.full(torch.ones(2, 3)))
    with pytest.raises(ContextError, match="2 rows but the batch has 3 graphs"):
        gen.sample([6, 6, 6], context=Context.full(torch.ones(2, 2)))
    with pytest.raises(ContextError, match="finite"):
        gen.sample([6], context=Context.full(torch.tensor([[1.0, float("inf")]])))
    with pytest.raises(ValueError, match="guidance must be a finite number"):
        gen.sample([6], context=Context.full(torch.ones(1, 2)), guidance=float("nan"))
    with pytest.raises(ContextError, match="unconditional"):
        _generator(_NoContext()).sample([6], context=Context.full(torch.ones(1, 2)))
    with pytest.raises(ValueError, match="context_dim=3 but the network takes 2"):
        _generator(ContextMLP(2), context_dim=3)
    with pytest.raises(ValueError, match="context_dropout must be in"):
        _generator(ContextMLP(2), context_dropout=2.0)


class _NoContext(torch.nn.Module):
    def forward(self, x: GeometricGraph, t: torch.Tensor) -> GeometricGraph:
        return x.replace(pos=torch.zeros_like(x.pos), node=torch.zeros_like(x.node))


# --------------------------------------------------------------------------- training loop
def test_graphs_with_context_reach_the_loss_row_by_row() -> None:
    """The training loop passes each batch's own targets: here a graph's target is its size,
    so every context seen must equal the batch's node counts."""
    data = make_graph([3, 4, 5, 6] * 8, num_types=1, seed=0)
    source = GraphsWithContext(data, data.num_nodes.to(torch.float32)[:, None])
    seen: list[bool] = []

    class Recorder(torch.nn.Module):
        context_dim = 1

        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x, t, context=None):  # noqa: ANN001, ANN201
            seen.append(
                bool(torch.equal(context.values[:, 0], x.num_nodes.to(context.values.dtype)))
            )
            return x.replace(pos=self.w * x.pos, node=self.w * x.node)

    gen = CanonicalGenerator(
        None,
        CenteredGaussianPrior(features=False),
        None,
        FlowMatching(weights={"node": 0.0}),
        Recorder(),
        node_dim=1,
        context_dim=1,
        context_dropout=0.0,
    )
    cfg = TrainingConfig(max_steps=6, batch_size=4, warmup_steps=1, progress=False)
    Trainer(gen, source, cfg, val_data=source).fit()
    assert len(seen) >= 6 and all(seen)
    assert batch_context(data, torch.tensor([0])) is None
    with pytest.raises(ContextError, match="3 context rows for 32 graphs"):
        GraphsWithContext(data, torch.ones(3, 1))
    with pytest.raises(ContextError, match="finite"):
        GraphsWithContext(data, torch.full((32, 1), float("nan")))


# ------------------------------------------------------------------ a conditional toy model
def _shape_label(x: GeometricGraph) -> torch.Tensor:
    """Which toy shape each sample is closest to (sorted pairwise distances, an invariant)."""

    def sorted_d(p: torch.Tensor) -> torch.Tensor:
        d = torch.cdist(p, p)
        iu = torch.triu_indices(6, 6, 1)
        return d[:, iu[0], iu[1]].sort(-1).values

    ref = sorted_d(torch.tensor(TOY_SHAPES, dtype=torch.float64))
    return torch.cdist(sorted_d(x.pos.double()), ref).argmin(-1)


@pytest.fixture(scope="module")
def conditional_toy() -> CanonicalGenerator:
    torch.manual_seed(0)  # test-only: parameter init
    g = _gen(0)
    a = toy_shapes(1024, weights=(1.0, 0.0), generator=g)
    b = toy_shapes(1024, weights=(0.0, 1.0), generator=g)
    data = GeometricGraph(
        torch.cat([a.pos, b.pos]), torch.cat([a.node, b.node]), torch.cat([a.mask, b.mask])
    )
    label = torch.cat([-torch.ones(1024), torch.ones(1024)])[:, None]
    canon = geometric_spectral_canonicalizer()
    cache = canon.canonicalize(data).representative
    gen = _generator(ContextMLP(1), assume_canonical=True, context_dropout=0.2)
    opt = torch.optim.Adam(gen.parameters(), lr=2e-3)
    for _ in range(800):
        idx = torch.randint(0, 2048, (256,), generator=g)
        out = gen.loss(cache.index(idx), generator=g, context=Context.full(label[idx]))
        opt.zero_grad()
        out.total.backward()
        opt.step()
    return gen


def test_conditional_samples_follow_the_condition(conditional_toy) -> None:
    """Asked for shape 0 (context -1) or shape 1 (+1), at least 90 % of samples are that shape;
    unconditionally (guidance 0) both shapes appear in about equal shares (the data's 50/50)."""
    gen = conditional_toy
    for value, shape in ((-1.0, 0), (1.0, 1)):
        x = gen.sample(
            600, steps=10, generator=_gen(11), context=Context.full(torch.full((600, 1), value))
        )
        share = float((_shape_label(x) == shape).float().mean())
        assert share > 0.9, (value, share)
    x = gen.sample(
        600, steps=10, generator=_gen(12), context=Context.full(torch.ones(600, 1)), guidance=0.0
    )
    share = float((_shape_label(x) == 1).float().mean())
    assert 0.35 < share < 0.65, share


def test_conditional_samples_stay_invariant(conditional_toy) -> None:
    """The context is a property of the whole graph, which the group does not move: the
    conditional (and guided) samples are as invariant as the unconditional ones, and the raw
    canonical-slice samples are not."""
    gen = conditional_toy
    ctx = Context.full(torch.ones(1000, 1))
    for w in (1.0, 2.0):
        x = gen.sample(1000, steps=10, generator=_gen(13), context=ctx, guidance=w)
        assert _axis_pvalue(x) > 1e-3 and _order_pvalue(x) > 1e-3, w
    raw = gen.sample(1000, steps=10, generator=_gen(13), context=ctx, symmetrize=False)
    assert _axis_pvalue(raw) < 1e-6
