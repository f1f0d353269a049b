"""Canonicalizers: contract suites, S_n × SE(3) specifics, degenerate inputs, float32 round-off."""

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symgen.canon import (
    Canonicalization,
    CentroidCanonicalizer,
    LexicographicCanonicalizer,
    PrincipalAxesCanonicalizer,
    SequentialCanonicalizer,
    SpectralOrderCanonicalizer,
    embed_element,
    geometric_spectral_canonicalizer,
)
from symgen.groups import (
    SE3,
    SO3,
    Permutation,
    ProductElement,
    RigidMotion,
    Rotation,
    SymmetricGroup,
    Translation,
    Translations,
    permutation_rigid_group,
    random_rotation,
)
from symgen.state import GeometricGraph
from symgen.testing import (
    CanonicalizerContract,
    assert_canonicalizer,
    geometric_graphs,
    make_graph,
    symmetric_points,
)

FAST = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.differing_executors]
)


# ----------------------------------------------------------------------------- contract suites
class TestCentroid(CanonicalizerContract):
    def make_canonicalizer(self):
        return CentroidCanonicalizer()


class TestPrincipalAxes(CanonicalizerContract):
    def make_canonicalizer(self):
        return PrincipalAxesCanonicalizer()


class TestSpectralOrder(CanonicalizerContract):
    def make_canonicalizer(self):
        return SpectralOrderCanonicalizer()


class TestLexicographic(CanonicalizerContract):
    def make_canonicalizer(self):
        return LexicographicCanonicalizer()


class TestSequentialSnSE3(CanonicalizerContract):
    def make_canonicalizer(self):
        return SequentialCanonicalizer(
            CentroidCanonicalizer(),
            PrincipalAxesCanonicalizer(),
            SpectralOrderCanonicalizer(),
            group=permutation_rigid_group(translation_scale=1.0),
        )


class TestGeometricSpectral(CanonicalizerContract):
    def make_canonicalizer(self):
        canon = geometric_spectral_canonicalizer()
        canon.group = permutation_rigid_group(translation_scale=1.0)  # random translations too
        return canon


# ------------------------------------------------------------------------ S_n × SE(3) specifics
def test_geometric_element_and_centroid():
    x = make_graph(
        [7, 4, 1, 2], max_nodes=8, dtype=torch.float64, seed=3, edge_features=3, pad_value=7.0
    )
    out = geometric_spectral_canonicalizer()(x)
    assert isinstance(out.element, ProductElement)
    perm, motion = out.element.parts
    assert isinstance(perm, Permutation) and isinstance(motion, RigidMotion)
    m = x.mask[..., None].double()
    centroid = (out.representative.pos * m).sum(1) / m.sum(1)
    torch.testing.assert_close(centroid, torch.zeros_like(centroid), atol=1e-12, rtol=0)
    torch.testing.assert_close(
        torch.linalg.det(motion.rotation), torch.ones(4, dtype=torch.float64)
    )
    pad = ~x.mask
    assert torch.equal(perm.perm[pad], torch.arange(8).expand(4, 8)[pad]), (
        "padding slots must be fixed points"
    )
    assert set(out.details) >= {"eigengap", "sign_gap", "order_gap"}


def test_geometric_keeps_chirality():
    """A chiral graph and its mirror image lie in different orbits: different representatives.

    (With reconstruction and det E = +1 this shows that no reflection sneaks into the frame.)
    """
    x = make_graph([6], dtype=torch.float64, seed=11, num_types=4)
    mirror = x.replace(pos=x.pos * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64))
    canon = geometric_spectral_canonicalizer()
    a, b = canon(x), canon(mirror)
    assert not (a.flagged.any() or b.flagged.any())
    assert float((a.representative.pos - b.representative.pos).abs().max()) > 1e-2
    for out in (a, b):
        torch.testing.assert_close(
            torch.linalg.det(out.element.parts[1].rotation), torch.ones(1, dtype=torch.float64)
        )


def test_geometric_batch_independent():
    """Canonicalizing a graph alone or inside a padded batch gives the same result."""
    x = make_graph([5, 9, 3, 6], dtype=torch.float64, seed=5, edge_features=2)
    canon = geometric_spectral_canonicalizer()
    full = canon(x)
    for i, k in enumerate(x.num_nodes.tolist()):
        single = canon(x.index([i]).trim())
        torch.testing.assert_close(single.representative.pos[0], full.representative.pos[i, :k])
        assert bool(single.flagged[0]) == bool(full.flagged[i])


@given(
    x=geometric_graphs(
        min_nodes=3, max_nodes=12, dtypes=(torch.float64,), edge_features=st.sampled_from([0, 3])
    )
)
@FAST
def test_float32_roundoff_far_below_thresholds(x):
    """Rounding the input to float32 moves every raw margin by < 1/5 of its threshold.

    So float32 round-off cannot flip an unflagged decision: a decision can only change where
    a raw margin crosses zero, and unflagged inputs are at least one threshold away.
    """
    canon = geometric_spectral_canonicalizer()
    a = canon(x)
    b = canon(x.to(dtype=torch.float32))
    thresholds = {
        "eigengap": canon.eigengap_threshold,
        "sign_gap": canon.sign_threshold,
        "order_gap": canon.order_threshold,
    }
    ok = ~(a.flagged | b.flagged)
    for name, thr in thresholds.items():
        u, v = a.details[name][ok], b.details[name][ok].double()
        finite = torch.isfinite(u) & torch.isfinite(v)
        assert torch.equal(torch.isfinite(u), torch.isfinite(v)), name
        if bool(finite.any()):
            assert float((u - v)[finite].abs().max()) < 0.2 * thr, name
    both = ok.nonzero().flatten()
    if both.numel():
        err = (a.representative.pos[both] - b.representative.pos[both].double()).abs().max()
        assert float(err) < 1e-3


@pytest.mark.parametrize("k", [4, 6, 8, 12])
def test_symmetric_solids_are_flagged_without_nan(k):
    """Tetrahedron, octahedron, cube, 12-gon (one type): degenerate, flagged, stay in the orbit."""
    pts = (
        symmetric_points(k)
        @ random_rotation(1, generator=torch.Generator().manual_seed(k), dtype=torch.float64)[0].T
    )
    x = GeometricGraph(
        pts[None] + 0.3,
        torch.ones(1, k, 1, dtype=torch.float64),
        torch.ones(1, k, dtype=torch.bool),
    )
    out = geometric_spectral_canonicalizer()(x)
    assert bool(out.flagged[0]) and float(out.details["eigengap"][0]) < 1e-2
    assert bool(torch.isfinite(out.representative.pos).all()) and not bool(
        torch.isnan(out.margin).any()
    )
    assert_canonicalizer(geometric_spectral_canonicalizer(), x)


def test_symmetric_flip_is_not_a_tie():
    """A planar C2v shape (a kite) has a zero third moment on two axes, but the flip between the two
    tied frames is a rotation symmetry: same representative, so it is not flagged."""
    pts = torch.tensor(
        [[0.0, 1.6, 0.0], [-0.9, 0.0, 0.0], [0.9, 0.0, 0.0], [0.0, -0.7, 0.0]], dtype=torch.float64
    )
    node = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    x = GeometricGraph(pts[None], node[None], torch.ones(1, 4, dtype=torch.bool))
    out = geometric_spectral_canonicalizer()(x)
    assert not bool(out.flagged[0]), out.details
    report = assert_canonicalizer(geometric_spectral_canonicalizer(), x, num_random=4)
    assert report.num_flagged == 0 and report.num_compared >= 4


def test_linear_and_tiny_graphs():
    """Collinear graphs are exempt from the (zero) transverse eigengap; 1-2 nodes never give NaN."""
    line = torch.tensor([[0.0, 0, 0], [1.1, 0, 0], [2.5, 0, 0], [3.0, 0, 0]], dtype=torch.float64)
    x = GeometricGraph.from_graphs(
        [
            line,
            torch.zeros(1, 3, dtype=torch.float64),
            torch.tensor([[0.0, 0, 0], [1.2, 0, 0]], dtype=torch.float64),
        ],
        [
            torch.eye(4, dtype=torch.float64),
            torch.eye(4, dtype=torch.float64)[:1],
            torch.eye(4, dtype=torch.float64)[:2],
        ],
    )
    canon = geometric_spectral_canonicalizer()
    out = canon(x)
    assert float(out.details["eigengap"][0]) > 1e-2
    assert not bool(out.flagged[1]), "a single node is never ambiguous"
    assert bool(torch.isfinite(out.representative.pos).all())
    assert_canonicalizer(canon, x)


def test_coincident_identical_atoms_are_not_ties():
    """Two identical atoms at the same place can be swapped harmlessly: not flagged by the order."""
    pos = torch.tensor(
        [[[0.0, 0, 0], [0.0, 0, 0], [1.0, 0.2, 0], [0.3, 1.5, 0.4], [-1.0, 0.3, 0.9]]],
        dtype=torch.float64,
    )
    node = torch.eye(5, dtype=torch.float64)[[0, 0, 1, 2, 3]][None]
    out = geometric_spectral_canonicalizer()(
        GeometricGraph(pos, node, torch.ones(1, 5, dtype=torch.bool))
    )
    assert (
        math.isinf(float(out.details["order_gap"][0])) or float(out.details["order_gap"][0]) > 1e-6
    )


def test_bond_orders_change_the_order_but_not_the_contract():
    x = make_graph([8, 6], dtype=torch.float64, seed=2, edge_features=4)
    with_edges = geometric_spectral_canonicalizer()(x)
    without = geometric_spectral_canonicalizer(use_edges=False)(x)
    assert with_edges.representative.pos.shape == without.representative.pos.shape
    assert_canonicalizer(geometric_spectral_canonicalizer(), x)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="eigengap_threshold"):
        geometric_spectral_canonicalizer(eigengap_threshold=0.0)
    with pytest.raises(ValueError, match="symmetry_tol"):
        geometric_spectral_canonicalizer(symmetry_tol=-1.0)
    with pytest.raises(TypeError, match="Canonicalizer"):
        SequentialCanonicalizer(object(), group=SE3())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one"):
        SequentialCanonicalizer(group=SE3())


# ----------------------------------------------------------------------------- composition
def test_embed_element_into_products():
    x = make_graph([3, 2], dtype=torch.float64)
    G = permutation_rigid_group()
    t = Translation(torch.ones(2, 3, dtype=torch.float64))
    g = embed_element(t, Translations(), G, x)
    torch.testing.assert_close(G.act(g, x).pos[x.mask], (x.pos + 1)[x.mask])
    R = Rotation(
        random_rotation(2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    )
    h = embed_element(R, SO3(), SE3(), x)
    torch.testing.assert_close(h.rotation, R.matrix)
    with pytest.raises(ValueError, match="no element component"):
        embed_element(R, SO3(), SymmetricGroup(), x)


def test_sequential_margin_is_normalized_min():
    x = make_graph([6, 5, 7], dtype=torch.float64, seed=9)
    stages = (CentroidCanonicalizer(), PrincipalAxesCanonicalizer(), SpectralOrderCanonicalizer())
    out = SequentialCanonicalizer(*stages, group=permutation_rigid_group())(x)
    assert isinstance(out, Canonicalization)
    torch.testing.assert_close(
        out.margin, torch.minimum(out.details["stage1"] / 1.0, out.details["stage2"] / 1e-5)
    )
    assert torch.equal(out.flagged, out.margin < 1.0)


# ----------------------------------------------------------------------------- order quality
def test_spectral_order_follows_the_chain():
    """On a bent chain of atoms the Fiedler order is the chain order (or its reverse)."""
    angles = torch.linspace(0, 2.0, 9, dtype=torch.float64)
    chain = torch.stack([3 * torch.cos(angles), 3 * torch.sin(angles), 0.1 * angles**2], -1)
    perm = torch.tensor([4, 0, 7, 2, 8, 1, 5, 3, 6])
    x = GeometricGraph(
        chain[perm][None],
        torch.ones(1, 9, 1, dtype=torch.float64),
        torch.ones(1, 9, dtype=torch.bool),
    )
    out = SpectralOrderCanonicalizer().canonicalize(x)
    ranks = perm[torch.argsort(out.element.perm[0])].tolist()  # chain index of rep[j] = x[order[j]]
    assert ranks == sorted(ranks) or ranks == sorted(ranks, reverse=True), ranks


def test_lexicographic_flags_equidistant_atoms():
    """Three same-type atoms on a circle around the centroid are tied in distance: flagged."""
    pts = symmetric_points(3) * 1.2
    x = GeometricGraph(
        torch.cat([pts, torch.zeros(1, 3, dtype=torch.float64)])[None],
        torch.tensor([[1.0, 0], [1, 0], [1, 0], [0, 1]], dtype=torch.float64)[None],
        torch.ones(1, 4, dtype=torch.bool),
    )
    assert bool(LexicographicCanonicalizer().canonicalize(x).flagged[0])
