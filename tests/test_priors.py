"""Tests for symgen.priors: Gaussian, centred Gaussian, categorical, aligned and product priors."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from symgen.canon import geometric_spectral_canonicalizer
from symgen.groups import SymmetricGroup, Translations, permutation_rigid_group
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
from symgen.testing import assert_invariant, geometric_graphs, make_graph

DTYPES = [torch.float32, torch.float64]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _check_layout(x: GeometricGraph, template: GeometricGraph) -> None:
    assert x.pos.shape == template.pos.shape and x.node.shape == template.node.shape
    assert torch.equal(x.mask, template.mask) and x.dtype == template.dtype
    pad = ~x.mask
    assert bool((x.pos[pad] == 0).all()) and bool((x.node[pad] == 0).all())
    if template.edge is not None:
        assert x.edge is not None
        torch.testing.assert_close(x.edge, x.edge.transpose(1, 2))
        diag = torch.diagonal(x.edge, dim1=1, dim2=2)
        assert bool((diag == 0).all())
        pair = x.mask[:, :, None] & x.mask[:, None, :]
        assert bool((x.edge[~pair] == 0).all())


@settings(max_examples=25, deadline=None)
@given(
    geometric_graphs(
        max_nodes=7, edge_features=st.integers(0, 3), pad_value=st.sampled_from([0.0, 7.0])
    )
)
def test_gaussian_priors_are_shaped_like_the_template(x: GeometricGraph) -> None:
    for prior in (GaussianPrior(), CenteredGaussianPrior(), GaussianPrior(features=False)):
        y = prior.sample(x, generator=_gen(1))
        _check_layout(y, x)
        assert bool(torch.isfinite(prior.log_prob(y)).all())
    y = CenteredGaussianPrior().sample(x, generator=_gen(2))
    centroid = y.pos.sum(1) / x.num_nodes[:, None].to(x.dtype)
    assert float(centroid.abs().max()) < 1e-5


@pytest.mark.parametrize("dtype", DTYPES)
def test_gaussian_log_prob_matches_torch_normal(dtype: torch.dtype) -> None:
    x = make_graph([3, 5], max_nodes=6, num_types=2, edge_features=2, dtype=dtype, seed=3)
    prior = GaussianPrior(std=0.7, feature_std=1.3)
    n = torch.distributions.Normal(0.0, 0.7)
    f = torch.distributions.Normal(0.0, 1.3)
    want = []
    for i, k in enumerate(x.num_nodes.tolist()):
        lp = n.log_prob(x.pos[i, :k].double()).sum() + f.log_prob(x.node[i, :k].double()).sum()
        iu = torch.triu_indices(k, k, 1)
        assert x.edge is not None
        lp = lp + f.log_prob(x.edge[i, iu[0], iu[1]].double()).sum()
        want.append(lp)
    torch.testing.assert_close(prior.log_prob(x).double(), torch.stack(want), rtol=1e-5, atol=1e-4)


def _helmert(k: int) -> torch.Tensor:
    """Orthonormal basis (rows) of the zero-sum subspace of R^k."""
    q, _ = torch.linalg.qr(
        torch.cat([torch.ones(k, 1), torch.randn(k, k - 1, generator=_gen(9))], 1).double()
    )
    return q[:, 1:].T  # (k-1, k)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [1, 2, 5])
def test_centered_log_prob_is_the_density_on_the_zero_com_subspace(
    dtype: torch.dtype, k: int
) -> None:
    std = 0.8
    prior = CenteredGaussianPrior(std=std, features=False)
    x = prior.sample(make_graph([k] * 4, dtype=dtype, seed=k), generator=_gen(k))
    H = _helmert(k)
    z = torch.einsum("jk,bkc->bjc", H, x.pos.double())  # coordinates in an orthonormal basis
    want = torch.distributions.Normal(0.0, std).log_prob(z).sum((1, 2))
    torch.testing.assert_close(prior.log_prob(x).double(), want, rtol=1e-5, atol=1e-4)


def test_centered_norm_has_chi_square_with_3k_minus_3_dof() -> None:
    k, std = 5, 1.5
    t = make_graph([k] * 4000, dtype=torch.float64)
    x = CenteredGaussianPrior(std=std, features=False).sample(t, generator=_gen(4))
    r = (x.pos**2).sum((1, 2)) / std**2
    assert stats.kstest(r.numpy(), stats.chi2(3 * (k - 1)).cdf).pvalue > 1e-3
    assert stats.kstest(r.numpy(), stats.chi2(3 * k).cdf).pvalue < 1e-6  # the wrong dof is detected


@settings(max_examples=25, deadline=None)
@given(geometric_graphs(max_nodes=7, edge_features=st.integers(0, 2)))
def test_centered_log_prob_is_invariant(x: GeometricGraph) -> None:
    prior = CenteredGaussianPrior(std=1.2)
    y = prior.sample(x, generator=_gen(5))
    G = permutation_rigid_group()
    lp = prior.log_prob(y)
    atol = 1e-3 if x.dtype == torch.float32 else 1e-9
    for g in G.testing_elements(y) + [G.sample(y, generator=_gen(6))]:
        torch.testing.assert_close(prior.log_prob(G.act(g, y)), lp, atol=atol, rtol=1e-4)
    T = Translations(scale=3.0)
    moved = T.act(T.sample(y, generator=_gen(7)), y)
    torch.testing.assert_close(prior.log_prob(moved), lp, atol=atol, rtol=1e-4)
    # the uncentred Gaussian is rotation/permutation invariant but not translation invariant
    gp = GaussianPrior()
    assert not torch.allclose(gp.log_prob(moved), gp.log_prob(y))


def test_masked_center_ignores_padding() -> None:
    p = torch.tensor([[[1.0, 2, 3], [3.0, 2, 1], [100.0, 100, 100]]])
    out = masked_center(p, torch.tensor([[True, True, False]]))
    torch.testing.assert_close(out[0, :2].sum(0), torch.zeros(3))
    assert bool((out[0, 2] == 0).all())


SPEC = CategoricalSpec(node_blocks=(4, 3), edge_classes=3)


def _cat_template(dtype: torch.dtype = torch.float32, extra: int = 0) -> GeometricGraph:
    return make_graph(
        [5, 3, 6], max_nodes=7, num_types=7 + extra, edge_features=3, dtype=dtype, seed=0
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_uniform_categorical_prior(dtype: torch.dtype) -> None:
    t = _cat_template(dtype)
    prior = CategoricalPrior(SPEC, "uniform")
    x = prior.sample(t, generator=_gen(0))
    _check_layout(x, t)
    m = x.mask
    for sl in SPEC.block_slices():
        assert bool((x.node[..., sl].sum(-1)[m] == 1).all())
    pair = x.edge_mask
    assert x.edge is not None and bool((x.edge.sum(-1)[pair] == 1).all())
    k = x.num_nodes.to(torch.float64)
    want = -(k * (math.log(4) + math.log(3)) + k * (k - 1) / 2 * math.log(3))
    torch.testing.assert_close(prior.log_prob(x).double(), want, rtol=1e-6, atol=1e-4)
    # log_prob is permutation invariant
    G = permutation_rigid_group()
    torch.testing.assert_close(
        prior.log_prob(G.act(G.sample(x, generator=_gen(1)), x)), prior.log_prob(x)
    )


@settings(max_examples=25, deadline=None)
@given(
    x=geometric_graphs(max_nodes=7, num_types=3, edge_features=st.integers(0, 3)),
    source=st.sampled_from(["uniform", "marginal"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_categorical_log_prob_is_invariant_under_node_permutations(
    x: GeometricGraph, source: str, seed: int
) -> None:
    """``log p(π·x) = log p(x)`` for every relabelling π of the real nodes (S_n invariance)."""
    e = 0 if x.edge is None else x.edge.shape[-1]
    # one-hot atom types (3 classes), then one continuous column; one-hot edge classes
    extra = torch.randn(x.batch_size, x.max_nodes, 1, generator=_gen(seed), dtype=torch.float64)
    x = x.replace(node=torch.cat([x.node, extra.to(x.dtype) * x.mask[..., None]], -1))
    spec = CategoricalSpec(node_blocks=(3,), edge_classes=e or None)
    if source == "marginal":  # unequal class probabilities: log p depends on where tokens are
        prior = CategoricalPrior(
            spec,
            "marginal",
            node_marginals=[torch.tensor([0.6, 0.3, 0.1])],
            edge_marginal=None if e == 0 else torch.arange(1.0, e + 1.0),
        )
    else:
        prior = CategoricalPrior(spec, "uniform")
    lp = prior.log_prob(x)
    assert lp.dtype == x.dtype and bool(torch.isfinite(lp).all())
    atol = 1e-3 if x.dtype == torch.float32 else 1e-9
    report = assert_invariant(
        prior.log_prob, SymmetricGroup(), x, generator=_gen(seed), atol=atol, float64=False
    )
    assert len(report.errors) >= 4  # testing elements and 3 Haar-random relabellings


def test_masked_categorical_prior_is_all_zero_and_absorbing() -> None:
    t = _cat_template()
    prior = CategoricalPrior(SPEC, "masked")
    x = prior.sample(t, generator=_gen(0))
    assert bool((x.node == 0).all()) and x.edge is not None and bool((x.edge == 0).all())
    torch.testing.assert_close(prior.log_prob(x), torch.zeros(3))
    assert bool(
        torch.isinf(prior.log_prob(t)).all()
    )  # one-hot tokens are impossible under the mask
    assert bool(torch.isinf(CategoricalPrior(SPEC, "uniform").log_prob(x)).all())


def test_marginal_prior_reproduces_data_frequencies() -> None:
    data = make_graph([6] * 200, num_types=7, edge_features=3, seed=1)
    # make block 0 skewed: most nodes class 0
    node = data.node.clone()
    cls = torch.multinomial(
        torch.tensor([0.7, 0.2, 0.05, 0.05]), 1200, replacement=True, generator=_gen(2)
    )
    node[..., :4] = torch.nn.functional.one_hot(cls, 4).float().reshape(200, 6, 4)
    node[..., 4:] = torch.nn.functional.one_hot(torch.zeros(200, 6, dtype=torch.long), 3).float()
    data = data.replace(node=node)
    prior = CategoricalPrior.from_data(data, SPEC)
    x = prior.sample(make_graph([6] * 2000, num_types=7, edge_features=3), generator=_gen(3))
    freq = x.node[..., :4].sum((0, 1)) / x.node[..., :4].sum()
    want = data.node[..., :4].sum((0, 1)) / data.node[..., :4].sum()
    torch.testing.assert_close(freq, want, atol=0.01, rtol=0)
    assert bool((x.node[..., 4] == 1).all())  # a class with frequency 1 is always drawn
    assert x.edge is not None and data.edge is not None
    ef = x.edge[x.edge_mask].mean(0)
    ew = data.edge[data.edge_mask].mean(0)
    torch.testing.assert_close(ef, ew, atol=0.01, rtol=0)


def test_categorical_prior_continuous_columns_and_errors() -> None:
    t = _cat_template(extra=2)
    x = CategoricalPrior(SPEC, "uniform").sample(t, generator=_gen(0))
    rest = x.node[..., 7:][x.mask]
    assert rest.abs().sum() > 0 and rest.shape[-1] == 2
    with pytest.raises(ValueError, match="node features have"):
        CategoricalPrior(CategoricalSpec((10,)), "uniform").sample(t)
    with pytest.raises((ValueError, TypeError), match="source"):  # a Literal option
        CategoricalPrior(SPEC, "gaussian")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="marginal"):
        CategoricalPrior(SPEC, "marginal")
    with pytest.raises(ValueError, match="at least one class"):
        CategoricalSpec((3, 0))
    with pytest.raises(ValueError, match="positive"):
        GaussianPrior(std=0.0)


def test_product_prior_combines_positions_and_tokens() -> None:
    t = _cat_template()
    prior = ProductPrior(CenteredGaussianPrior(features=False), CategoricalPrior(SPEC, "uniform"))
    x = prior.sample(t, generator=_gen(0))
    _check_layout(x, t)
    assert prior.centered
    want = CenteredGaussianPrior(features=False).log_prob(x) + CategoricalPrior(
        SPEC, "uniform"
    ).log_prob(x)
    torch.testing.assert_close(prior.log_prob(x), want)
    with pytest.raises(ValueError, match="must not model features"):
        ProductPrior(CenteredGaussianPrior(), CategoricalPrior(SPEC))


@pytest.mark.parametrize("dtype", DTYPES)
def test_aligned_prior_samples_are_canonical(dtype: torch.dtype) -> None:
    canon = geometric_spectral_canonicalizer()
    prior = AlignedPrior(CenteredGaussianPrior(features=False), canon)
    t = make_graph([6, 4, 7], max_nodes=8, dtype=dtype, seed=2)
    x = prior.sample(t, generator=_gen(0))
    _check_layout(x, t)
    again = canon.canonicalize(x)
    ok = ~again.flagged
    atol = 1e-3 if dtype == torch.float32 else 1e-8
    torch.testing.assert_close(again.representative.pos[ok], x.pos[ok], atol=atol, rtol=0)
    torch.testing.assert_close(prior.log_prob(x), CenteredGaussianPrior(features=False).log_prob(x))
    # aligned noise is a rotated/relabelled prior sample: same norms as the unaligned draw
    raw = CenteredGaussianPrior(features=False).sample(t, generator=_gen(0))
    torch.testing.assert_close(
        (x.pos**2).sum((1, 2)), (raw.pos**2).sum((1, 2)), atol=atol, rtol=1e-4
    )


@settings(max_examples=15, deadline=None)
@given(
    x=geometric_graphs(max_nodes=7, edge_features=st.integers(0, 2)),
    seed=st.integers(0, 2**31 - 1),
)
def test_aligned_log_prob_is_constant_on_orbits(x: GeometricGraph, seed: int) -> None:
    """With an S_n × SE(3)-invariant base, ``log p(g·x) = log p(x) = log p(κ(x))``."""
    canon = geometric_spectral_canonicalizer()
    prior = AlignedPrior(CenteredGaussianPrior(std=1.3), canon)
    y = prior.sample(x, generator=_gen(seed))
    atol = 1e-3 if x.dtype == torch.float32 else 1e-9
    G = permutation_rigid_group(translation_scale=2.0)
    for z in (x, y):  # any input, and a sample of the prior itself
        lp = prior.log_prob(z)
        assert lp.dtype == x.dtype and bool(torch.isfinite(lp).all())
        tol = atol * (1 + float(lp.abs().max()))  # assert_invariant has no relative tolerance
        assert_invariant(prior.log_prob, G, z, generator=_gen(seed), atol=tol, float64=False)
        # the orbit's representative on the canonical slice has the orbit's density
        rep = canon.canonicalize(z).representative
        torch.testing.assert_close(prior.log_prob(rep), lp, atol=tol, rtol=0)
    # the property needs the invariant base: an uncentred base is not translation invariant
    loose = AlignedPrior(GaussianPrior(), canon)
    T = Translations(scale=3.0)
    moved = T.act(T.sample(x, generator=_gen(seed)), x)
    assert not torch.allclose(loose.log_prob(moved), loose.log_prob(x))
