"""Tests for symgen.generators: flow matching, diffusion, discrete flow, CanonicalGenerator."""

import copy
import math

import pytest
import torch
from scipy import stats
from scipy.stats import wasserstein_distance

from symgen.canon import geometric_spectral_canonicalizer
from symgen.couplings import IndependentCoupling, MinibatchOTCoupling
from symgen.diagnostics import toy_shapes
from symgen.generators import (
    CanonicalGenerator,
    CosineSchedule,
    FlowMatching,
    LossOutput,
    NetworkAdapter,
    PolynomialSchedule,
    SamplerOptions,
    VPDiffusion,
    decode_categorical,
    size_histogram,
)
from symgen.groups import permutation_rigid_group
from symgen.masking import masked_center
from symgen.priors import (
    AlignedPrior,
    CategoricalPrior,
    CategoricalSpec,
    CenteredGaussianPrior,
    GaussianPrior,
    ProductPrior,
)
from symgen.state import GeometricGraph
from symgen.testing import make_graph


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------------- oracle models
MU, S = 1.5, 0.5  # data: every coordinate ~ N(MU, S²), independent


class GaussianFlowOracle(torch.nn.Module):
    """Exact marginal velocity (or E[x1 | x_t]) of the linear path from N(0, 1) to N(MU, S²)."""

    def __init__(self, prediction: str) -> None:
        super().__init__()
        self.prediction = prediction

    def forward(self, x: GeometricGraph, t: torch.Tensor) -> GeometricGraph:
        tt = t[:, None, None].to(torch.float64)
        var = (1 - tt) ** 2 + tt**2 * S**2
        r = x.pos.double() - tt * MU
        e1 = MU + tt * S**2 * r / var
        e0 = (1 - tt) * r / var
        out = e1 if self.prediction == "data" else e1 - e0
        return x.replace(pos=out.to(x.dtype), node=torch.zeros_like(x.node))


class GaussianDiffusionOracle(torch.nn.Module):
    """Exact E[ε | z_t] or E[x | z_t] for z_t = α x + σ ε, x ~ N(MU, S²)."""

    def __init__(self, schedule, prediction: str) -> None:  # noqa: ANN001
        super().__init__()
        self.schedule, self.prediction = schedule, prediction

    def forward(self, x: GeometricGraph, t: torch.Tensor) -> GeometricGraph:
        a = self.schedule.alpha(t.double())[:, None, None]
        s = self.schedule.sigma(t.double())[:, None, None]
        var = a**2 * S**2 + s**2
        r = x.pos.double() - a * MU
        out = MU + a * S**2 * r / var if self.prediction == "data" else s * r / var
        return x.replace(pos=out.to(x.dtype), node=torch.zeros_like(x.node))


def _gaussian_template(dtype: torch.dtype, b: int = 3000) -> GeometricGraph:
    return GeometricGraph(
        torch.zeros(b, 1, 3, dtype=dtype),
        torch.zeros(b, 1, 1, dtype=dtype),
        torch.ones(b, 1, dtype=torch.bool),
    )


def _assert_gaussian(x: GeometricGraph, tol_mean: float, tol_std: float) -> None:
    p = x.pos.double().flatten()
    assert abs(float(p.mean()) - MU) < tol_mean, float(p.mean())
    assert abs(float(p.std()) - S) < tol_std, float(p.std())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("solver", "prediction", "steps"),
    [
        ("euler", "velocity", 50),
        ("heun", "velocity", 8),
        ("midpoint", "velocity", 8),
        ("heun", "data", 8),
        ("euler", "data", 50),
    ],
)
def test_flow_matching_sampler_reproduces_a_gaussian(
    dtype: torch.dtype, solver: str, prediction: str, steps: int
) -> None:
    fm = FlowMatching(prediction=prediction)
    x = fm.sample(
        GaussianFlowOracle(prediction),
        GaussianPrior(features=False),
        _gaussian_template(dtype),
        SamplerOptions(steps=steps, solver=solver),
        generator=_gen(0),
    )
    _assert_gaussian(x, 0.03, 0.02)


def test_euler_with_too_few_steps_is_measurably_biased() -> None:
    """The check above is sharp: one Euler step of the exact field gives the wrong spread."""
    x = FlowMatching().sample(
        GaussianFlowOracle("velocity"),
        GaussianPrior(features=False),
        _gaussian_template(torch.float64),
        SamplerOptions(steps=1, solver="euler"),
        generator=_gen(0),
    )
    assert abs(float(x.pos.std()) - S) > 0.1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("schedule", "prediction", "sampler", "steps"),
    [
        (CosineSchedule(), "epsilon", "dpm2m", 20),
        (CosineSchedule(), "data", "dpm2m", 20),
        (PolynomialSchedule(2.0), "epsilon", "dpm2m", 20),
        (CosineSchedule(), "epsilon", "ddim", 100),
        (CosineSchedule(), "data", "ancestral", 150),
        (PolynomialSchedule(2.0), "epsilon", "ancestral", 150),
    ],
)
def test_diffusion_sampler_reproduces_a_gaussian(
    dtype, schedule, prediction, sampler, steps
) -> None:  # noqa: ANN001
    proc = VPDiffusion(schedule, prediction=prediction)
    x = proc.sample(
        GaussianDiffusionOracle(schedule, prediction),
        GaussianPrior(features=False),
        _gaussian_template(dtype),
        SamplerOptions(steps=steps, solver=sampler),
        generator=_gen(1),
    )
    _assert_gaussian(x, 0.03, 0.025)


def test_diffusion_samplers_converge_with_the_expected_order() -> None:
    """DDIM is first order (error halves when steps double); DPM-Solver++(2M) beats it."""
    sch = CosineSchedule()
    err = {}
    for sampler, steps in (("ddim", 10), ("ddim", 20), ("ddim", 40), ("dpm2m", 10)):
        x = VPDiffusion(sch).sample(
            GaussianDiffusionOracle(sch, "epsilon"),
            GaussianPrior(features=False),
            _gaussian_template(torch.float64),
            SamplerOptions(steps=steps, solver=sampler),
            generator=_gen(1),
        )
        err[sampler, steps] = abs(float(x.pos.std()) - S)
    assert (
        1.5 < err["ddim", 10] / err["ddim", 20] < 2.7
        and 1.5 < err["ddim", 20] / err["ddim", 40] < 2.7
    )
    assert err["dpm2m", 10] < 0.5 * err["ddim", 10]


def test_schedules_are_monotone_and_variance_preserving() -> None:
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    for sch in (CosineSchedule(), PolynomialSchedule(1.5)):
        a, s = sch.alpha(t), sch.sigma(t)
        torch.testing.assert_close(a**2 + s**2, torch.ones_like(a))
        assert bool((a.diff() >= 0).all()) and float(a[-1]) == 1.0 and float(a[0]) < 0.01


# ---------------------------------------------------------------------------- discrete flow
P_NODE = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64)
P_EDGE = torch.tensor([0.7, 0.2, 0.1], dtype=torch.float64)


class TokenOracle(torch.nn.Module):
    """Exact p(x1 | x_t) for i.i.d. tokens under the mixture path with source probs ``pi``."""

    def __init__(self, masked: bool) -> None:
        super().__init__()
        self.masked = masked

    def _posterior(self, z: torch.Tensor, t: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        tt = t.double().reshape((-1,) + (1,) * (z.ndim - 1))
        zz = z.double()
        is_mask = zz.abs().sum(-1, keepdim=True) == 0
        if self.masked:
            post = torch.where(is_mask, p.expand_as(zz), zz)
        else:
            k = len(p)
            post = p * (tt * zz + (1 - tt) / k)
            post = post / post.sum(-1, keepdim=True)
        return torch.log(post.clamp_min(1e-12)).to(z.dtype)

    def forward(self, x: GeometricGraph, t: torch.Tensor) -> GeometricGraph:
        assert x.edge is not None
        return x.replace(
            pos=torch.zeros_like(x.pos),
            node=self._posterior(x.node, t, P_NODE),
            edge=self._posterior(x.edge, t, P_EDGE),
        )


@pytest.mark.parametrize(
    "source, steps, eta",
    [
        ("masked", 4, 0.0),
        ("masked", 20, 0.0),
        ("uniform", 4, 0.0),
        ("uniform", 20, 0.0),
        ("masked", 20, 3.0),
        ("uniform", 20, 3.0),
    ],
)
def test_discrete_flow_reproduces_token_marginals(source: str, steps: int, eta: float) -> None:
    """With the exact posterior the sampler reproduces the data marginals; the detailed-balance
    term (eta > 0) re-noises tokens but must leave the marginals unchanged."""
    spec = CategoricalSpec((3,), 3)
    template = make_graph([5, 3] * 500, num_types=3, edge_features=3, seed=0)
    prior = ProductPrior(GaussianPrior(features=False), CategoricalPrior(spec, source))
    opts = SamplerOptions(steps=steps, solver="euler", final_tokens="sample", stochasticity=eta)
    x = FlowMatching(spec=spec).sample(
        TokenOracle(source == "masked"), prior, template, opts, generator=_gen(2)
    )
    m = x.mask
    assert bool((x.node.sum(-1)[m] == 1).all()) and bool((x.node[~m] == 0).all())
    torch.testing.assert_close(x.node[m].mean(0).double(), P_NODE, atol=0.025, rtol=0)
    assert x.edge is not None
    torch.testing.assert_close(x.edge, x.edge.transpose(1, 2))
    assert bool((x.edge.sum(-1)[x.edge_mask] == 1).all())
    assert bool((x.edge.sum(-1)[~x.edge_mask] == 0).all())
    torch.testing.assert_close(x.edge[x.edge_mask].mean(0).double(), P_EDGE, atol=0.02, rtol=0)


def test_final_argmax_reads_out_the_mode_and_stochasticity_moves_tokens() -> None:
    """``final_tokens="argmax"`` returns the posterior's mode at the last step (a biased but
    noise-free read-out); ``stochasticity > 0`` re-decides tokens (more jumps than without)."""
    spec = CategoricalSpec((3,), 3)
    template = make_graph([5, 3] * 200, num_types=3, edge_features=3, seed=0)
    prior = ProductPrior(GaussianPrior(features=False), CategoricalPrior(spec, "masked"))
    x = FlowMatching(spec=spec).sample(
        TokenOracle(True), prior, template, SamplerOptions(steps=1), generator=_gen(3)
    )
    mode = torch.zeros(3)
    mode[int(P_NODE.argmax())] = 1
    assert bool((x.node[x.mask] == mode).all())
    assert x.edge is not None and bool((x.edge[x.edge_mask].argmax(-1) == 0).all())
    # a Literal option: the runtime type checker of the test suite or the ValueError outside it
    with pytest.raises((ValueError, TypeError), match="final_tokens"):
        SamplerOptions(final_tokens="max")
    with pytest.raises(ValueError, match="stochasticity"):
        SamplerOptions(stochasticity=-1.0)
    with pytest.raises(ValueError, match="temperature"):
        SamplerOptions(temperature=0.0)
    # temperature sharpens the token draws towards the mode (T = 1: the posterior itself)
    share = {}
    for temp in (1.0, 0.2):
        opts = SamplerOptions(steps=1, final_tokens="sample", temperature=temp)
        y = FlowMatching(spec=spec).sample(
            TokenOracle(True), prior, template, opts, generator=_gen(5)
        )
        share[temp] = float((y.node[y.mask] == mode).all(-1).double().mean())
    assert abs(share[1.0] - float(P_NODE.max())) < 0.05 and share[0.2] > 0.9

    class Recorder(TokenOracle):
        seen: list[torch.Tensor]

        def forward(self, x: GeometricGraph, t: torch.Tensor) -> GeometricGraph:
            self.seen.append(x.node.clone())
            return super().forward(x, t)

    changes = {}
    for eta in (0.0, 5.0):
        net = Recorder(False)
        net.seen = []
        prior_u = ProductPrior(GaussianPrior(features=False), CategoricalPrior(spec, "uniform"))
        FlowMatching(spec=spec).sample(
            net, prior_u, template, SamplerOptions(steps=10, stochasticity=eta), generator=_gen(4)
        )
        changes[eta] = sum(int((a != b).any(-1).sum()) for a, b in zip(net.seen, net.seen[1:]))
    assert changes[5.0] > 1.5 * changes[0.0]


def test_interpolation_endpoints_and_token_mixture() -> None:
    spec = CategoricalSpec((3,), 3)
    x1 = make_graph([4, 6], num_types=3, edge_features=3, seed=3)
    prior = ProductPrior(CenteredGaussianPrior(features=False), CategoricalPrior(spec, "masked"))
    x0 = prior.sample(x1, generator=_gen(0))
    fm = FlowMatching(spec=spec)
    b = x1.batch_size
    at0 = fm.interpolate(x0, x1, torch.zeros(b), generator=_gen(1))
    at1 = fm.interpolate(x0, x1, torch.ones(b), generator=_gen(1))
    torch.testing.assert_close(at0.pos, x0.pos)
    torch.testing.assert_close(
        at1.node, x1.node.where(x1.mask[..., None], torch.zeros_like(x1.node))
    )
    half = fm.interpolate(x0, x1, torch.full((b,), 0.5), generator=_gen(2))
    assert half.edge is not None
    torch.testing.assert_close(half.edge, half.edge.transpose(1, 2))
    kept = half.node.sum(-1)[half.mask]  # each token is either masked (0) or the data token (1)
    assert set(kept.tolist()) <= {0.0, 1.0}


# ---------------------------------------------------------------------------- small networks
class FlatMLP(torch.nn.Module):
    """A non-equivariant MLP on flattened positions and features of fixed-size graphs (with
    ``step_size``, also a step-size input ``d``, as few-step objectives need)."""

    def __init__(self, n: int, f: int, hidden: int = 128, *, step_size: bool = False) -> None:
        super().__init__()
        self.n, self.f = n, f
        self.step_size_input = step_size
        self.register_buffer("freq", torch.arange(1, 9, dtype=torch.float32) * math.pi)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(n * 3 + n * f + (32 if step_size else 16), hidden),
            torch.nn.SiLU(),
            torch.nn.Linear(hidden, hidden),
            torch.nn.SiLU(),
            torch.nn.Linear(hidden, hidden),
            torch.nn.SiLU(),
            torch.nn.Linear(hidden, n * 3 + n * f),
        )

    def forward(
        self, x: GeometricGraph, t: torch.Tensor, d: torch.Tensor | None = None
    ) -> GeometricGraph:
        b = x.batch_size
        inputs = [t] + ([torch.zeros_like(t) if d is None else d] if self.step_size_input else [])
        emb = torch.cat(
            [torch.sin(v[:, None] * self.freq) for v in inputs]
            + [torch.cos(v[:, None] * self.freq) for v in inputs],
            -1,
        ).to(x.dtype)
        out = self.net(torch.cat([x.pos.flatten(1), x.node.flatten(1), emb], -1))
        return x.replace(
            pos=out[:, : self.n * 3].reshape(b, self.n, 3),
            node=out[:, self.n * 3 :].reshape(b, self.n, self.f),
        )


class PairNet(torch.nn.Module):
    """A tiny permutation-equivariant, E(3)-equivariant network with node and edge heads."""

    def __init__(self, f: int, e: int | None, hidden: int = 32) -> None:
        super().__init__()
        self.node_in = torch.nn.Linear(f + 1, hidden)
        self.msg = torch.nn.Sequential(torch.nn.Linear(2 * hidden + 1, hidden), torch.nn.SiLU())
        self.coef = torch.nn.Linear(hidden, 1)
        self.node_out = torch.nn.Linear(hidden, f)
        self.edge_out = None if e is None else torch.nn.Linear(hidden, e)

    def forward(self, x: GeometricGraph, t: torch.Tensor) -> GeometricGraph:
        b, n = x.mask.shape
        h = torch.nn.functional.silu(
            self.node_in(torch.cat([x.node, t[:, None, None].expand(b, n, 1)], -1))
        )
        diff = x.pos[:, :, None] - x.pos[:, None, :]
        d2 = (diff**2).sum(-1, keepdim=True)
        pair = torch.cat(
            [h[:, :, None].expand(b, n, n, -1), h[:, None].expand(b, n, n, -1), d2], -1
        )
        m = self.msg(pair) * x.edge_mask[..., None].to(x.dtype)
        vel = (diff * torch.tanh(self.coef(m))).sum(2) / n
        node = self.node_out(h + m.sum(2))
        edge = None if self.edge_out is None else self.edge_out(m + m.transpose(1, 2))
        return x.replace(pos=vel, node=node, edge=edge)


# ---------------------------------------------------------------------------- toy domain
N_TRAIN = 4096


def _sorted_distances(x: GeometricGraph) -> torch.Tensor:
    p = x.pos.double()
    d = torch.cdist(p, p)
    iu = torch.triu_indices(6, 6, 1)
    return d[:, iu[0], iu[1]].sort(-1).values


def _w1(a: GeometricGraph, b: GeometricGraph) -> float:
    A, B = _sorted_distances(a), _sorted_distances(b)
    return (
        sum(wasserstein_distance(A[:, i].numpy(), B[:, i].numpy()) for i in range(A.shape[1]))
        / A.shape[1]
    )


def _axis_pvalue(x: GeometricGraph) -> float:
    """KS p-value of |z-component| of the principal axis against U(0, 1) (uniform axes)."""
    p = masked_center(x.pos.double(), x.mask)
    _, vecs = torch.linalg.eigh(p.transpose(1, 2) @ p)
    return float(stats.kstest(vecs[:, 2, 2].abs().numpy(), "uniform").pvalue)


def _order_pvalue(x: GeometricGraph) -> float:
    """Chi-square p-value of the slot of the atom farthest from the centroid against uniform."""
    far = masked_center(x.pos, x.mask).norm(dim=-1).argmax(-1)
    counts = torch.bincount(far, minlength=6).numpy()
    return float(stats.chisquare(counts).pvalue)


@pytest.fixture(scope="module")
def trained() -> dict:
    torch.manual_seed(0)
    g = _gen(0)
    data = toy_shapes(N_TRAIN, generator=g)
    canon = geometric_spectral_canonicalizer()
    cache = canon.canonicalize(data).representative  # a precomputed canonical cache
    model = FlatMLP(6, 1)
    gen = CanonicalGenerator(
        canon,
        CenteredGaussianPrior(features=False),
        IndependentCoupling(),
        FlowMatching(),
        model,
        assume_canonical=True,
        sizes=size_histogram(data),
        node_dim=1,
        sampler=SamplerOptions(solver="heun"),
    )
    test = toy_shapes(1000, generator=_gen(5))
    untrained = gen.sample(1000, steps=10, generator=_gen(1))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    steps = 1500
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, N_TRAIN, (256,), generator=g)
        out = gen.loss(cache.index(idx), generator=g)
        opt.zero_grad()
        out.total.backward()
        opt.step()
        sched.step()
        losses.append(out.total.item())
    result = {
        "gen": gen,
        "test": test,
        "untrained": untrained,
        "losses": losses,
        "samples": gen.sample(1000, steps=10, generator=_gen(1)),
        "raw": gen.sample(1000, steps=10, generator=_gen(1), symmetrize=False),
        "bfloat16": gen.sample(1000, steps=10, generator=_gen(2), precision="bfloat16"),
    }
    # the mixed-precision path: a copy trained on for 200 steps with the network in bfloat16
    low = copy.deepcopy(gen)
    low.precision = "bfloat16"
    opt = torch.optim.Adam(low.parameters(), lr=2e-4)
    low_losses = []
    for _ in range(200):
        idx = torch.randint(0, N_TRAIN, (256,), generator=g)
        out = low.loss(cache.index(idx), generator=g)
        opt.zero_grad()
        out.total.backward()
        opt.step()
        low_losses.append(out.total.item())
    result["bfloat16_losses"] = low_losses
    result["bfloat16_trained"] = low.sample(1000, steps=10, generator=_gen(3))
    return result


def test_toy_generator_reproduces_shape_statistics(trained: dict) -> None:
    test = trained["test"]
    w_trained, w_untrained = _w1(trained["samples"], test), _w1(trained["untrained"], test)
    w_data = _w1(toy_shapes(1000, generator=_gen(9)), test)
    assert w_trained < 0.3 * w_untrained, (w_trained, w_untrained)
    assert w_trained < 0.12, (w_trained, w_data)
    assert sum(trained["losses"][-100:]) / 100 < 0.5 * sum(trained["losses"][:100]) / 100


def test_toy_samples_are_centred_and_shaped(trained: dict) -> None:
    x = trained["samples"]
    assert x.pos.shape == (1000, 6, 3) and bool(x.mask.all())
    assert float(x.pos.mean(1).abs().max()) < 1e-5


def test_toy_samples_are_invariant_and_the_raw_sampler_is_not(trained: dict) -> None:
    # the statistics accept the truly invariant data ...
    data = toy_shapes(1000, generator=_gen(11))
    assert _axis_pvalue(data) > 1e-3 and _order_pvalue(data) > 1e-3
    # ... accept the symmetrized samples ...
    x = trained["samples"]
    assert _axis_pvalue(x) > 1e-3 and _order_pvalue(x) > 1e-3
    # ... and reject the same model without the final Haar element.
    raw = trained["raw"]
    assert _axis_pvalue(raw) < 1e-6 and _order_pvalue(raw) < 1e-6
    # sampling with the network in bfloat16 changes nothing about the symmetry
    low = trained["bfloat16"]
    assert low.dtype == torch.float32 and trained["gen"].precision == "float32"
    assert _axis_pvalue(low) > 1e-3 and _order_pvalue(low) > 1e-3
    assert _w1(low, trained["test"]) < 0.12


def test_training_in_bfloat16_keeps_losses_finite_and_samples_invariant(trained: dict) -> None:
    losses = trained["bfloat16_losses"]
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-50:]) / 50 < 1.2 * sum(trained["losses"][-100:]) / 100  # no blow-up
    x = trained["bfloat16_trained"]
    assert x.dtype == torch.float32
    assert _axis_pvalue(x) > 1e-3 and _order_pvalue(x) > 1e-3
    assert _w1(x, trained["test"]) < 0.12


# ---------------------------------------------------------------------------- pipeline variants
def test_equivariant_baseline_keeps_zero_com_and_trains() -> None:
    data = toy_shapes(64, generator=_gen(0))
    model = PairNet(1, None)
    gen = CanonicalGenerator(
        None,
        CenteredGaussianPrior(features=False),
        MinibatchOTCoupling(),
        FlowMatching(),
        model,
        node_dim=1,
    )
    assert gen.network.center and gen.group is None
    out = gen.loss(data, generator=_gen(1))
    assert isinstance(out, LossOutput) and set(out.terms) == {"pos", "node"}
    assert bool(torch.isfinite(out.total))
    out.total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(gr is not None and bool(torch.isfinite(gr).all()) for gr in grads)
    assert max(float(gr.norm()) for gr in grads if gr is not None) > 0.0  # gradients reach it
    x = gen.sample([6, 4, 5], steps=4, generator=_gen(2))
    m = x.mask[..., None].to(x.dtype)
    assert float((x.pos * m).sum(1).abs().max()) < 1e-5 * max(1.0, float(x.pos.abs().max()))
    assert x.num_nodes.tolist() == [6, 4, 5]


def test_network_adapter_centres_any_output() -> None:
    x = make_graph([3, 5], seed=1)

    def shifted(y: GeometricGraph, t: torch.Tensor) -> GeometricGraph:
        return y.replace(pos=y.pos + 3.0)

    out = NetworkAdapter(shifted, center=True)(x, torch.zeros(2))
    m = x.mask[..., None].to(x.dtype)
    assert float((out.pos * m).sum(1).abs().max()) < 1e-4


def test_augmentation_mode_and_argument_errors() -> None:
    data = toy_shapes(32, generator=_gen(0), symmetrize=False)
    G = permutation_rigid_group()
    gen = CanonicalGenerator(
        None,
        CenteredGaussianPrior(features=False),
        None,
        FlowMatching(),
        FlatMLP(6, 1),
        augment_group=G,
        node_dim=1,
    )
    prepared = gen.prepare(data, generator=_gen(1))
    assert not torch.allclose(prepared.pos, data.pos)  # rotated and relabelled
    torch.testing.assert_close(
        _sorted_distances(prepared), _sorted_distances(data), atol=1e-4, rtol=0
    )
    assert torch.isfinite(gen.loss(data, generator=_gen(2)).total)
    canon = geometric_spectral_canonicalizer()
    with pytest.raises(ValueError, match="not both"):
        CanonicalGenerator(
            canon, CenteredGaussianPrior(), None, FlowMatching(), FlatMLP(6, 1), augment_group=G
        )
    with pytest.raises(ValueError, match="size histogram"):
        gen.sample(3, steps=2)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        gen.sample([6], steps=0)
    spec = CategoricalSpec((3,), 3)
    with pytest.raises(ValueError, match="categorical prior noise"):
        CanonicalGenerator(
            canon, CenteredGaussianPrior(), None, FlowMatching(spec=spec), FlatMLP(6, 1)
        )
    cat_prior = ProductPrior(
        CenteredGaussianPrior(features=False), CategoricalPrior(spec, "masked")
    )
    with pytest.raises(ValueError, match="Gaussian prior on features"):
        CanonicalGenerator(canon, cat_prior, None, VPDiffusion(spec=spec), FlatMLP(6, 1))
    with pytest.raises((ValueError, TypeError), match="solver"):
        SamplerOptions(solver="rk4")


@pytest.mark.parametrize("process", ["flow", "flow-aligned-prior", "flow-relaxed", "diffusion"])
def test_molecule_like_pipeline_with_categorical_channels(process: str) -> None:
    spec = CategoricalSpec((3,), 3)
    data = make_graph([5, 3, 4, 5], max_nodes=6, num_types=3, edge_features=3, seed=4)
    canon = geometric_spectral_canonicalizer()
    if process == "flow":
        prior = ProductPrior(
            CenteredGaussianPrior(features=False), CategoricalPrior(spec, "masked")
        )
        proc, solver = FlowMatching(spec=spec), "midpoint"
    elif process == "flow-aligned-prior":
        aligned = AlignedPrior(CenteredGaussianPrior(features=False), canon)
        prior = ProductPrior(aligned, CategoricalPrior(spec, "uniform"))
        proc, solver = FlowMatching(spec=spec, prediction="data"), "heun"
    elif process == "flow-relaxed":
        prior = CenteredGaussianPrior()
        proc, solver = FlowMatching(spec=spec, categorical="continuous"), "heun"
    else:
        prior = CenteredGaussianPrior()
        proc, solver = VPDiffusion(spec=spec, prediction="data"), "ancestral"
    model = PairNet(3, 3)
    gen = CanonicalGenerator(
        canon, prior, None, proc, model, node_dim=3, edge_dim=3, sizes=size_histogram(data)
    )
    out = gen.loss(data, generator=_gen(0))
    assert set(out.terms) == {"pos", "node", "edge"} and bool(torch.isfinite(out.total))
    out.total.backward()
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in model.parameters())
    x = gen.sample(7, steps=5, solver=solver, generator=_gen(1))
    assert bool((x.node.sum(-1)[x.mask] == 1).all()) and bool((x.node[~x.mask] == 0).all())
    assert x.edge is not None
    torch.testing.assert_close(x.edge, x.edge.transpose(1, 2))
    assert bool((x.edge.sum(-1)[x.edge_mask] == 1).all()) and bool(
        (x.edge.sum(-1)[~x.edge_mask] == 0).all()
    )
    assert set(x.num_nodes.tolist()) <= {3, 4, 5}


def test_decode_categorical_rounds_blocks_and_edges() -> None:
    spec = CategoricalSpec((2, 2), 2)
    x = make_graph([3], num_types=4, edge_features=2, seed=0)
    noisy = x.replace(node=x.node * 0.8 + 0.1, edge=None if x.edge is None else x.edge * 0.6 + 0.2)
    back = decode_categorical(noisy, spec)
    assert back.edge is not None
    assert bool((back.node.sum(-1) == 2).all()) and bool(
        (back.edge.sum(-1)[back.edge_mask] == 1).all()
    )


def test_self_conditioning_passes_the_previous_estimate() -> None:
    """Training passes an estimate in about half of the batches; sampling passes, at every step
    after the first, the clean-data estimate of the previous step (zeros before that)."""
    spec = CategoricalSpec((3,), 3)
    data = make_graph([5, 3, 4, 5], max_nodes=6, num_types=3, edge_features=3, seed=4)

    class Recorder(PairNet):
        self_conditioning = True

        def __init__(self) -> None:
            super().__init__(3, 3)
            self.seen: list[GeometricGraph] = []

        def forward(self, x, t, cond=None):  # noqa: ANN001, ANN201
            assert cond is not None and cond.node.shape == x.node.shape
            self.seen.append(cond)
            return super().forward(x, t)

    prior = ProductPrior(CenteredGaussianPrior(features=False), CategoricalPrior(spec, "masked"))
    proc = FlowMatching(spec=spec, self_conditioning=True)
    net = Recorder()
    gen = CanonicalGenerator(None, prior, None, proc, net, node_dim=3, edge_dim=3)
    estimates = 0
    for i in range(20):
        net.seen.clear()
        gen.loss(data, generator=_gen(i))
        estimates += len(net.seen) - 1  # a second call means an estimate was computed
        assert float(net.seen[0].pos.abs().sum()) == 0.0  # the first call has no estimate
    assert 4 <= estimates <= 16
    net.seen.clear()
    gen.sample([4, 5], steps=3, generator=_gen(1))
    assert len(net.seen) == 3 and float(net.seen[0].node.abs().sum()) == 0.0
    probs = net.seen[1].node[net.seen[1].mask]
    torch.testing.assert_close(probs.sum(-1), torch.ones(len(probs)))  # softmax estimate
    with pytest.raises(ValueError, match="self-conditioning"):
        CanonicalGenerator(None, prior, None, proc, PairNet(3, 3), node_dim=3, edge_dim=3)
