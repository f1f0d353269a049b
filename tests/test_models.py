"""Networks: equivariance of the baselines, deliberate non-equivariance of the Canon transformer,
masking, shapes, errors and a tiny fit. All models are tiny so the file runs in seconds."""

import subprocess
import sys

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symgen.conditioning import Context, ContextError
from symgen.groups import SO3, SymmetricGroup, permutation_rigid_group
from symgen.masking import masked_center, masked_mean
from symgen.models import (
    EGNN,
    NETWORK_NAMES,
    CanonTransformer,
    CanonTransformerConfig,
    EGNNConfig,
    build_network,
    sinusoidal_embedding,
)
from symgen.network import GraphNetwork
from symgen.state import GeometricGraph
from symgen.testing import assert_equivariant, geometric_graphs, make_graph, vector_action

NODE_IN, NODE_OUT, EDGE_IN, EDGE_OUT = 6, 5, 4, 3

TINY = {
    "canon_transformer": dict(width=16, depth=2, heads=2, pair_width=8, num_rbf=8, rank_dim=8),
    "egnn": dict(width=16, depth=2),
    "e3nn": dict(scalars=8, vectors=4, tensors=2, lmax=2, depth=2, num_rbf=8, radial_hidden=16),
}
EQUIVARIANT = ("egnn", "e3nn")


def _net(name: str, *, edges: bool = True, seed: int = 0, **over) -> torch.nn.Module:
    torch.manual_seed(seed)  # test-only: parameter init of torch.nn layers
    kw = dict(
        node_in=NODE_IN,
        node_out=NODE_OUT,
        edge_in=EDGE_IN if edges else 0,
        edge_out=EDGE_OUT if edges else 0,
    )
    return build_network(name, **{**kw, **TINY[name], **over})


def _batch(
    dtype=torch.float64, edges: bool = True, seed: int = 3, kind: str = "generic"
) -> GeometricGraph:
    # three graphs, two of them padded, plus an extra all-padding slot
    return make_graph(
        [4, 6, 2],
        max_nodes=7,
        num_types=NODE_IN,
        edge_features=EDGE_IN if edges else 0,
        dtype=dtype,
        seed=seed,
        kind=kind,
    )


def _with_garbage_padding(x: GeometricGraph, seed: int) -> GeometricGraph:
    g = torch.Generator().manual_seed(seed)
    pad = ~x.mask
    pos = torch.where(
        pad[..., None], 40 * torch.randn(x.pos.shape, generator=g, dtype=x.dtype), x.pos
    )
    node = torch.where(
        pad[..., None], 9 * torch.randn(x.node.shape, generator=g, dtype=x.dtype), x.node
    )
    edge = None
    if x.edge is not None:
        real_pair = (x.mask[:, :, None] & x.mask[:, None, :])[..., None]
        edge = torch.where(
            real_pair, x.edge, 5 * torch.randn(x.edge.shape, generator=g, dtype=x.dtype)
        )
    return GeometricGraph(pos=pos, node=node, mask=x.mask, edge=edge)


T = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)


pytestmark = pytest.mark.usefixtures("one_thread")


def _fn(net, t):
    """``y -> net(y, t)`` without autograd (the equivariance asserts only compare values)."""
    return torch.no_grad()(lambda y: net(y, t))


# --------------------------------------------------------------------------- interface
@pytest.mark.parametrize("name", NETWORK_NAMES)
@pytest.mark.parametrize("edges", [True, False])
def test_interface_shapes_and_padding_zero(name, edges):
    net = _net(name, edges=edges)
    assert isinstance(net, GraphNetwork)
    x = _with_garbage_padding(_batch(torch.float32, edges=edges), seed=1)
    out = net(x, T.float())
    assert isinstance(out, GeometricGraph) and torch.equal(out.mask, x.mask)
    assert out.pos.shape == (3, 7, 3) and out.node.shape == (3, 7, NODE_OUT)
    assert out.pos.dtype == torch.float32
    pad = ~x.mask
    assert bool((out.pos[pad] == 0).all()) and bool((out.node[pad] == 0).all())
    assert out.pos[x.mask].abs().sum() > 0 and out.node[x.mask].abs().sum() > 0
    if edges:
        assert out.edge is not None and out.edge.shape == (3, 7, 7, EDGE_OUT)
        torch.testing.assert_close(out.edge, out.edge.transpose(1, 2))
        assert bool((out.edge[~x.edge_mask] == 0).all())  # padding pairs and the diagonal
        assert out.edge[x.edge_mask].abs().sum() > 0
    else:
        assert out.edge is None


@pytest.mark.parametrize("name", NETWORK_NAMES)
def test_outputs_on_real_atoms_ignore_padding(name):
    """Garbage in padding slots changes nothing, and each graph alone gives the same answer."""
    net = _net(name).double()
    x = _batch()
    ref = net(x, T)
    for seed in (1, 2):
        out = net(_with_garbage_padding(x, seed), T)
        for a, b in ((out.pos, ref.pos), (out.node, ref.node), (out.edge, ref.edge)):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
    # unpadded, one graph at a time (checks that padding keys/messages are really masked out)
    for i, k in enumerate(x.num_nodes.tolist()):
        xi = GeometricGraph(
            pos=x.pos[i : i + 1, :k],
            node=x.node[i : i + 1, :k],
            mask=x.mask[i : i + 1, :k],
            edge=x.edge[i : i + 1, :k, :k],
        )
        oi = net(xi, T[i : i + 1])
        torch.testing.assert_close(oi.pos[0], ref.pos[i, :k], atol=1e-10, rtol=0)
        torch.testing.assert_close(oi.node[0], ref.node[i, :k], atol=1e-10, rtol=0)
        torch.testing.assert_close(oi.edge[0], ref.edge[i, :k, :k], atol=1e-10, rtol=0)


@pytest.mark.parametrize("name", NETWORK_NAMES)
def test_float32_matches_float64(name):
    net64 = _net(name).double()
    net32 = _net(name).float()
    x = _batch(torch.float64)
    a, b = net64(x, T), net32(x.to(dtype=torch.float32), T.float())
    assert b.node.dtype == torch.float32
    for u, v in ((a.pos, b.pos), (a.node, b.node), (a.edge, b.edge)):
        torch.testing.assert_close(v.double(), u, atol=2e-4, rtol=1e-3)


@pytest.mark.parametrize("name", NETWORK_NAMES)
def test_gradients_finite_with_coincident_atoms(name):
    net = _net(name)
    x = _batch(torch.float32, kind="coincident")  # several atoms at one point: d_ij = 0
    pos = x.pos.clone().requires_grad_(True)
    out = net(x.replace(pos=pos), T.float())
    (out.pos.square().sum() + out.node.square().sum() + out.edge.square().sum()).backward()
    assert bool(torch.isfinite(pos.grad).all())
    assert all(bool(torch.isfinite(p.grad).all()) for p in net.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", EQUIVARIANT)
def test_velocity_output_has_zero_centre_of_mass(name):
    out = _net(name).double()(_batch(), T)
    torch.testing.assert_close(
        masked_mean(out.pos, out.mask), torch.zeros(3, 3, dtype=torch.float64), atol=1e-12, rtol=0
    )


def test_scalar_time_is_broadcast_and_bad_inputs_are_named():
    net = _net("egnn")
    x = _batch(torch.float32)
    a = net(x, torch.tensor(0.5))
    b = net(x, torch.full((3,), 0.5))
    torch.testing.assert_close(a.pos, b.pos)
    with pytest.raises(ValueError, match="node_in=6"):
        net(x.replace(node=x.node[..., :3]), b.pos.new_zeros(3))
    with pytest.raises(ValueError, match="no edges"):
        net(x.replace(edge=None), torch.zeros(3))
    with pytest.raises(ValueError, match="time must have shape"):
        net(x, torch.zeros(2))


def test_time_changes_the_output():
    for name in NETWORK_NAMES:
        net = _net(name).double()
        x = _batch()
        a, b = net(x, T), net(x, 1 - T)
        assert (a.node - b.node).abs().max() > 1e-6, name


def test_build_network_errors_and_configs():
    with pytest.raises(ValueError, match="unknown network"):
        build_network("resnet", node_in=1, node_out=1)
    with pytest.raises(ValueError, match="unknown config field"):
        build_network("egnn", node_in=1, node_out=1, heads=4)
    with pytest.raises(ValueError, match="must divide"):
        CanonTransformerConfig(node_in=1, node_out=1, width=10, heads=4)
    with pytest.raises(ValueError, match="depth"):
        EGNNConfig(node_in=1, node_out=1, depth=0)
    # config object and keyword overrides agree
    cfg = EGNNConfig(node_in=2, node_out=2, width=8, depth=1)
    assert EGNN(cfg, attention=False).config.attention is False
    assert (
        CanonTransformer(
            node_in=2, node_out=2, width=8, depth=1, heads=2, pair_width=4
        ).config.depth
        == 1
    )


def test_import_models_does_not_import_e3nn():
    code = "import sys, symgen.models; assert 'e3nn' not in sys.modules; symgen.models.E3NNNetwork"
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- helpers
def test_common_helpers():
    x = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    e = sinusoidal_embedding(x, 5)
    assert e.shape == (3, 5)
    torch.testing.assert_close(e[0], torch.tensor([0.0, 0.0, 1.0, 1.0, 0.0], dtype=torch.float64))
    v = torch.tensor([[[1.0, 0, 0], [3.0, 2, 0], [50.0, 50, 50]]])
    m = torch.tensor([[True, True, False]])
    torch.testing.assert_close(
        masked_center(v, m), torch.tensor([[[-1.0, -1, 0], [1.0, 1, 0], [0, 0, 0]]])
    )


# --------------------------------------------------------------------------- equivariance
@pytest.mark.parametrize("name", EQUIVARIANT)
@pytest.mark.parametrize("edges", [True, False])
def test_equivariant_baselines(name, edges):
    """Velocity rotates (not translates) and permutes; node and edge outputs are invariant."""
    net = _net(name, edges=edges).double()
    G = permutation_rigid_group(translation_scale=1.0)
    x = _with_garbage_padding(_batch(edges=edges), seed=4)
    report = assert_equivariant(
        _fn(net, T),
        G,
        x,
        act_out=vector_action(G),
        num_random=2,
        generator=torch.Generator().manual_seed(5),
    )
    assert len(report.errors) >= 5


@pytest.mark.parametrize("name", EQUIVARIANT)
def test_equivariance_check_catches_a_broken_baseline(name):
    """Control: the same check fails once an absolute position leaks into the output."""
    net = _net(name).double()

    @torch.no_grad()
    def broken(y):
        out = net(y, T)
        return out.replace(node=out.node + 1e-3 * y.pos[..., :1] * y.mask[..., None])

    G = permutation_rigid_group(translation_scale=1.0)
    with pytest.raises(AssertionError, match="not equivariant"):
        assert_equivariant(broken, G, _batch(), act_out=vector_action(G), num_random=1)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    x=geometric_graphs(
        max_batch=3,
        max_nodes=6,
        num_types=NODE_IN,
        edge_features=EDGE_IN,
        dtypes=(torch.float64,),
        kinds=("generic", "planar", "collinear"),
    ),
    name=st.sampled_from(EQUIVARIANT),
)
def test_equivariant_baselines_property(x, name):
    net = _net(name).double()
    t = torch.linspace(0.2, 0.8, x.batch_size, dtype=torch.float64)
    G = permutation_rigid_group(translation_scale=1.0)
    assert_equivariant(_fn(net, t), G, x, act_out=vector_action(G), num_random=1, atol=1e-8)


def test_canon_transformer_is_not_equivariant():
    """The Canon transformer breaks both symmetries: it reads raw poses and slot order."""
    net = _net("canon_transformer").double()
    x = _batch()
    with pytest.raises(AssertionError, match="not equivariant"):
        assert_equivariant(_fn(net, T), SO3(), x, act_out=vector_action(SO3()), num_random=1)
    with pytest.raises(AssertionError, match="not equivariant"):
        assert_equivariant(_fn(net, T), SymmetricGroup(), x, num_random=1)


def test_canon_transformer_permutation_equivariant_with_permuted_rank():
    """With the rank encoding permuted like the atoms, the output permutes with them.

    The rank rides along as an extra node channel, so the group action permutes it with the
    atoms (``rank'[j] = rank[perm[j]]``) and the network reads it back.
    """
    net = _net("canon_transformer").double()
    S = SymmetricGroup()
    x = _with_garbage_padding(_batch(), seed=6)
    rank = torch.arange(x.max_nodes, dtype=x.dtype).expand(x.batch_size, -1)
    xr = x.replace(node=torch.cat([x.node, rank[..., None]], -1))

    @torch.no_grad()
    def fn(y):
        return net(y.replace(node=y.node[..., :-1]), T, rank=y.node[..., -1].round().long())

    report = assert_equivariant(fn, S, xr, num_random=3, generator=torch.Generator().manual_seed(2))
    assert len(report.errors) == 6
    # without the rank travelling along, a non-trivial permutation changes the output
    g = S.testing_elements(x)[0]
    with torch.no_grad():
        assert not torch.allclose(net(S.act(g, x), T).node, S.act(g, net(x, T)).node, atol=1e-6)


def _estimate(x: GeometricGraph) -> GeometricGraph:
    """A self-conditioning estimate shaped like the output for the batch ``x``."""
    return make_graph(
        [4, 6, 2],
        max_nodes=7,
        num_types=NODE_OUT,
        edge_features=EDGE_OUT,
        seed=9,
        dtype=torch.float64,
    ).replace(mask=x.mask)


def test_canon_transformer_self_conditioning_and_pair_sums():
    """Self-conditioning: the estimate changes the output, its padding is ignored, and a
    wrongly shaped estimate or a network built without the option is refused."""
    net = _net("canon_transformer", self_condition=True).double()
    assert net.self_conditioning and not _net("canon_transformer").self_conditioning
    x = _batch()
    est = _estimate(x)
    with torch.no_grad():
        plain, with_est = net(x, T), net(x, T, cond=est)
        garbage = est.replace(pos=torch.where(x.mask[..., None], est.pos, 99.0))
        assert not torch.allclose(plain.node, with_est.node)
        m = x.mask[..., None]
        torch.testing.assert_close(net(x, T, cond=garbage).node * m, with_est.node * m)
    with pytest.raises(ValueError, match="cond must be shaped"):
        net(x, T, cond=est.replace(node=est.node[..., :2]))
    with pytest.raises(ValueError, match="without self_condition"):
        _net("canon_transformer").double()(x, T, cond=est)


def test_egnn_self_conditioning_stays_equivariant():
    """The EGNN reads the estimate through invariants only: moving the input and the estimate
    by the same element of S_n x SE(3) moves the velocity and permutes the invariant outputs;
    the estimate changes the output, and bad estimates are refused."""
    net = _net("egnn", self_condition=True).double()
    assert net.self_conditioning and not _net("egnn").self_conditioning
    x = _with_garbage_padding(_batch(), seed=4)
    est = _estimate(x)
    G = permutation_rigid_group(translation_scale=1.0)
    real = x.mask[..., None]
    pair = (x.mask[:, :, None] & x.mask[:, None, :])[..., None]
    with torch.no_grad():
        out = net(x, T, cond=est)
        assert not torch.allclose(out.node * real, net(x, T).node * real)
        for g in G.testing_elements(x):
            moved = net(G.act(g, x), T, cond=G.act(g, est))
            expect = G.act_on_vectors(g, out)
            torch.testing.assert_close(moved.pos * real, expect.pos * real)
            torch.testing.assert_close(moved.node * real, expect.node * real)
            torch.testing.assert_close(moved.edge * pair, expect.edge * pair)
        # rotating the estimate alone (input fixed) changes nothing: only its distances enter
        r = SO3().testing_elements(est)[0]
        torch.testing.assert_close(net(x, T, cond=SO3().act(r, est)).pos * real, out.pos * real)
    with pytest.raises(ValueError, match="cond must be shaped"):
        net(x, T, cond=est.replace(node=est.node[..., :2]))
    with pytest.raises(ValueError, match="without self_condition"):
        _net("egnn").double()(x, T, cond=est)


@pytest.mark.parametrize("name", ["canon_transformer", "egnn"])
def test_context_input(name):
    """A context changes the prediction; ``None`` is the all-masked context; a network built
    without context refuses one; the EGNN stays S_n x SE(3)-equivariant with a context (it
    enters as an invariant)."""
    net = _net(name, context_dim=2).double()
    assert net.context_dim == 2 and _net(name).context_dim == 0
    x = _with_garbage_padding(_batch(), seed=5)
    real = x.mask[..., None]
    ctx = Context(
        torch.tensor([[1.0, -2.0], [0.5, 0.0], [3.0, 1.0]], dtype=torch.float64),
        torch.tensor([[True, True], [True, False], [False, True]]),
    )
    with torch.no_grad():
        out = net(x, T, context=ctx)
        plain = net(x, T)
        torch.testing.assert_close(plain.pos, net(x, T, context=ctx.unconditional()).pos)
        assert not torch.allclose(out.pos * real, plain.pos * real)
        # a masked target's value is ignored: only given values enter
        other = Context(ctx.values.masked_fill(~ctx.mask, 123.0), ctx.mask)
        torch.testing.assert_close(net(x, T, context=other).pos, out.pos)
        if name == "egnn":
            G = permutation_rigid_group(translation_scale=1.0)
            for g in G.testing_elements(x):
                moved = net(G.act(g, x), T, context=ctx)
                torch.testing.assert_close(moved.pos * real, G.act_on_vectors(g, out).pos * real)
    with pytest.raises(ValueError, match="takes no context"):
        _net(name).double()(x, T, context=ctx)
    with pytest.raises(ContextError, match="built for 2"):
        net(x, T, context=Context.full(torch.ones(3, 3, dtype=torch.float64)))
    with pytest.raises(ValueError, match="context_dim must be >= 0"):
        _net(name, context_dim=-1)


def test_egnn_pair_mlp_equals_the_concatenated_input():
    """The EGNN's pair MLPs split their first layer by input block (node terms computed once
    per node): the same function as the MLP on the concatenated pair input."""
    from symgen.models.common import mlp, real_pairs
    from symgen.models.egnn import _pair_mlp

    torch.manual_seed(0)  # test-only: parameter init
    net = mlp([2 * 8 + 5, 16, 16], last_act=True).double()
    x = _batch()
    pairs = real_pairs(x.mask)
    h = torch.randn(x.batch_size * x.max_nodes, 8, dtype=torch.float64)
    pair = torch.randn(pairs.dst.shape[0], 5, dtype=torch.float64)
    expect = net(torch.cat([h[pairs.dst], h[pairs.src], pair], -1))
    torch.testing.assert_close(_pair_mlp(net, h, pairs, pair), expect)


def test_canon_transformer_rank_shape_error():
    net = _net("canon_transformer")
    with pytest.raises(ValueError, match="rank must have shape"):
        net(_batch(torch.float32), T.float(), rank=torch.zeros(3, 2, dtype=torch.long))


# --------------------------------------------------------------------------- learning
@pytest.mark.parametrize("name", NETWORK_NAMES)
def test_tiny_fit_reduces_loss(name):
    """A few Adam steps on one batch fit an equivariant target (velocity to the centroid, types)."""
    net = _net(name)
    x = _batch(torch.float32)
    m = x.mask[..., None].float()
    target_pos = -masked_center(x.pos, x.mask)
    target_edge = x.edge[..., :EDGE_OUT]
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    t = T.float()

    def loss_fn():
        out = net(x, t)
        pm = x.edge_mask[..., None].float()
        return (
            ((out.pos - target_pos) ** 2 * m).sum()
            + ((out.node - x.node[..., :NODE_OUT]) ** 2 * m).sum()
            + ((out.edge - target_edge) ** 2 * pm).sum()
        ) / m.sum()

    with torch.no_grad():
        first = float(loss_fn())
    for _ in range(25):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    with torch.no_grad():
        last = float(loss_fn())
    assert last < 0.4 * first, (name, first, last)


# --------------------------------------------------------------------------- realistic sizes
BASE = {
    "canon_transformer": dict(width=256, depth=8, heads=8, pair_width=64),
    "egnn": dict(width=256, depth=9),
    "e3nn": dict(scalars=128, vectors=32, tensors=16, lmax=2, depth=5),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", NETWORK_NAMES)
def test_base_size_networks_on_qm9_sized_batch(name):
    """Base-size networks on a QM9-sized padded batch: symmetry (or its absence) and masking."""
    torch.manual_seed(0)
    net = build_network(
        name, node_in=NODE_IN, node_out=NODE_OUT, edge_in=EDGE_IN, edge_out=EDGE_OUT, **BASE[name]
    ).double()
    x = make_graph(
        [18, 29, 9],
        max_nodes=29,
        num_types=NODE_IN,
        edge_features=EDGE_IN,
        dtype=torch.float64,
        seed=11,
    )
    x = x.replace(pos=x.pos * 1.2)  # molecule-like extent (a few Å)
    t = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    G = permutation_rigid_group(translation_scale=1.0)
    if name == "canon_transformer":
        with pytest.raises(AssertionError, match="not equivariant"):
            assert_equivariant(_fn(net, t), G, x, act_out=vector_action(G), num_random=1)
    else:
        assert_equivariant(_fn(net, t), G, x, act_out=vector_action(G), num_random=1, atol=1e-8)
    with torch.no_grad():
        a, b = net(x, t), net(_with_garbage_padding(x, seed=3), t)
    for u, v in ((a.pos, b.pos), (a.node, b.node), (a.edge, b.edge)):
        torch.testing.assert_close(u, v, atol=1e-10, rtol=0)
        assert bool(torch.isfinite(u).all())
