"""Group axioms, actions and Haar sampling for every group in symgen.groups."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from scipy import stats

from symgen.groups import (
    SE3,
    SO3,
    DirectProduct,
    Permutation,
    Rotation,
    SymmetricGroup,
    Translations,
    permutation_rigid_group,
    rotation_angle,
)
from symgen.state import GeometricGraph
from symgen.testing import (
    GroupContract,
    assert_equivariant,
    assert_group_axioms,
    geometric_graphs,
    make_graph,
    vector_action,
)


class TestSymmetricGroup(GroupContract):
    def make_group(self):
        return SymmetricGroup()


class TestSO3(GroupContract):
    def make_group(self):
        return SO3()


class TestTranslations(GroupContract):
    def make_group(self):
        return Translations(scale=2.0)


class TestSE3(GroupContract):
    def make_group(self):
        return SE3(translation_scale=1.0)


class TestPermutationRigid(GroupContract):
    def make_group(self):
        return permutation_rigid_group(translation_scale=1.0)


class TestPermutationRotationProduct(GroupContract):
    def make_group(self):
        return DirectProduct(SymmetricGroup(), SO3())


def test_non_commuting_factors_are_caught():
    """SO(3) and T(3) actions do not commute (SE(3) is semidirect): the check must fail."""
    from symgen.testing import assert_action_homomorphism

    x = make_graph([3, 2], dtype=torch.float64)
    with pytest.raises(AssertionError, match="act"):
        assert_action_homomorphism(DirectProduct(SO3(), Translations()), x)


# ----------------------------------------------------------------------------- Haar sampling
def test_so3_rotation_angle_follows_haar_density():
    """θ of a Haar rotation has density (1 - cos θ)/π, i.e. CDF (θ - sin θ)/π."""
    x = make_graph([2] * 20000, dtype=torch.float64)
    R = SO3().sample(x, generator=torch.Generator().manual_seed(123)).matrix
    theta = rotation_angle(R).numpy()
    result = stats.kstest(theta, lambda t: (t - np.sin(t)) / np.pi)
    assert result.pvalue > 1e-3, result


def test_so3_rotation_angle_test_rejects_a_wrong_sampler():
    """The same test fails for rotations with a uniform angle about a uniform axis (not Haar)."""
    g = torch.Generator().manual_seed(123)
    axis = torch.randn(20000, 3, generator=g, dtype=torch.float64)
    angle = torch.rand(20000, generator=g, dtype=torch.float64) * math.pi
    from symgen.groups import axis_angle_to_matrix

    theta = rotation_angle(axis_angle_to_matrix(axis, angle)).numpy()
    result = stats.kstest(theta, lambda t: (t - np.sin(t)) / np.pi)
    assert result.pvalue < 1e-6


def test_so3_samples_are_rotations():
    x = make_graph([3] * 500, dtype=torch.float64)
    R = SO3().sample(x, generator=torch.Generator().manual_seed(0)).matrix
    eye = torch.eye(3, dtype=torch.float64).expand_as(R)
    torch.testing.assert_close(R @ R.transpose(1, 2), eye)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(500, dtype=torch.float64))


def test_so3_haar_is_invariant_in_distribution():
    """Haar: first column of R and of R0 R are both uniform on the sphere (mean ≈ 0, cov ≈ I/3)."""
    x = make_graph([2] * 20000, dtype=torch.float64)
    R = SO3().sample(x, generator=torch.Generator().manual_seed(5)).matrix
    col = R[:, :, 0]
    assert col.mean(0).abs().max() < 0.02
    torch.testing.assert_close(
        col.T @ col / len(col), torch.eye(3, dtype=torch.float64) / 3, atol=0.01, rtol=0
    )


def _s4_chisquare_pvalue(perms: torch.Tensor) -> float:
    """Chi-square p-value of uniformity over the 24 permutations of 4 nodes (all must occur)."""
    codes = perms @ torch.tensor([64, 16, 4, 1])
    counts = torch.bincount(codes, minlength=256)
    observed = counts[counts > 0]
    assert len(observed) == 24
    return float(stats.chisquare(observed.numpy()).pvalue)


def test_symmetric_group_is_uniform_on_s4():
    """Chi-square over the 24 permutations of n = 4; padding never moves."""
    x = make_graph([4, 2] * 12000, max_nodes=5)
    perms = SymmetricGroup().sample(x, generator=torch.Generator().manual_seed(7)).perm
    assert torch.equal(perms[1::2, 2:], torch.arange(2, 5).expand(12000, 3))
    assert torch.equal(perms[0::2, 4], torch.full((12000,), 4))
    assert _s4_chisquare_pvalue(perms[0::2, :4]) > 1e-3
    pair_codes = perms[1::2, :2] @ torch.tensor([2, 1])
    assert set(torch.unique(pair_codes).tolist()) == {1, 2}


def test_chi_square_rejects_a_biased_permutation_sampler():
    """The naive shuffle reaches all 24 permutations of S_4 but is biased: chi-square rejects it.

    Swapping position i with a uniform position in 0..3, for i = 0..3, has 4^4 = 256 equally
    likely paths, and 256 is not a multiple of 24, so the permutations cannot be equally likely.
    """
    num, n = 12000, 4
    g = torch.Generator().manual_seed(7)
    perms = torch.arange(n).expand(num, n).clone()
    rows = torch.arange(num)
    for i in range(n):
        j = torch.randint(n, (num,), generator=g)
        a, b = perms[rows, i].clone(), perms[rows, j].clone()
        perms[rows, i], perms[rows, j] = b, a
    assert _s4_chisquare_pvalue(perms) < 1e-6
    # the real sampler, on the same number of graphs, passes the same test
    x = make_graph([n] * num)
    real = SymmetricGroup().sample(x, generator=torch.Generator().manual_seed(7)).perm
    assert _s4_chisquare_pvalue(real) > 1e-3


def test_padding_never_moves_under_any_group():
    x = make_graph([3, 5, 1], max_nodes=6, edge_features=2, pad_value=3.0, seed=3)
    for G in [SymmetricGroup(), SO3(), Translations(), SE3(1.0), permutation_rigid_group(1.0)]:
        for seed in range(5):
            y = G.act(G.sample(x, generator=torch.Generator().manual_seed(seed)), x)
            assert torch.equal(y.pos[~x.mask], x.pos[~x.mask]), G
            assert torch.equal(y.node[~x.mask], x.node[~x.mask]), G
            pad_pair = ~(x.mask[:, :, None] & x.mask[:, None, :])
            assert torch.equal(y.edge[pad_pair], x.edge[pad_pair]), G


# ----------------------------------------------------------------------------- conventions
def test_permutation_convention():
    """x'[i] = x[p[i]] on nodes and on both edge axes."""
    x = make_graph([3], edge_features=3, seed=1)
    p = Permutation(torch.tensor([[2, 0, 1]]))
    y = SymmetricGroup().act(p, x)
    torch.testing.assert_close(y.pos[0], x.pos[0, [2, 0, 1]])
    torch.testing.assert_close(y.edge[0, 0, 1], x.edge[0, 2, 0])


def test_rotation_acts_on_row_vectors():
    x = make_graph([4], dtype=torch.float64)
    R = SO3().testing_elements(x)[2].matrix
    y = SO3().act(Rotation(R), x)
    torch.testing.assert_close(y.pos[0], x.pos[0] @ R[0].T)


def test_compose_means_h_first_then_g():
    x = make_graph([5], dtype=torch.float64)
    G = SE3(1.0)
    g, h = G.testing_elements(x)[1:3]
    torch.testing.assert_close(G.act(G.compose(g, h), x).pos, G.act(g, G.act(h, x)).pos)
    # and the other order is different for these non-commuting elements
    assert not torch.allclose(G.act(G.compose(h, g), x).pos, G.act(g, G.act(h, x)).pos)


def test_wrong_composition_is_caught_by_axioms():
    """A group with compose(g, h) = g (wrong) must fail the axioms check."""

    class Broken(SO3):
        def compose(self, g, h):
            return g

    x = make_graph([3])
    with pytest.raises(AssertionError):
        assert_group_axioms(Broken(), x)


def test_centroid_is_equivariant_and_assert_detects_non_equivariance():
    """assert_equivariant passes for the centroid map and fails for a coordinate-wise square."""

    def centroid(x: GeometricGraph):
        m = x.mask[..., None].to(x.dtype)
        c = (x.pos * m).sum(1) / m.sum(1)
        return x.replace(pos=torch.where(x.mask[..., None], c[:, None, :].expand_as(x.pos), x.pos))

    x = make_graph([4, 2], max_nodes=5, dtype=torch.float32)
    report = assert_equivariant(centroid, SE3(1.0), x)
    assert report.max_error < 1e-9

    def square(x: GeometricGraph):
        return x.replace(pos=x.pos**2)

    with pytest.raises(AssertionError, match="not equivariant"):
        assert_equivariant(square, SO3(), x)


def test_vector_action_ignores_translation():
    x = make_graph([3], dtype=torch.float64)
    G = permutation_rigid_group(1.0)
    g = G.testing_elements(x)[-1]
    y = vector_action(G)(g, x)
    R = g.parts[1].rotation
    expected = SymmetricGroup().act(g.parts[0], x).pos @ R.transpose(1, 2)
    torch.testing.assert_close(y.pos, expected)


@given(x=geometric_graphs(kinds=("generic", "coincident", "collinear", "planar", "symmetric")))
@settings(deadline=None, max_examples=20)
def test_degenerate_shapes_are_valid_states(x):
    assert x.mask[:, 0].all()
    assert torch.isfinite(x.pos).all()
