"""Tests for symgen.couplings: independent, minibatch OT, aligned and aligned-OT couplings."""

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from symgen.couplings import (
    AlignedCoupling,
    AlignedOTCoupling,
    IndependentCoupling,
    MinibatchOTCoupling,
    align,
    assignment,
    kabsch,
    pair_cost,
    pairwise_cost,
)
from symgen.groups import SymmetricGroup, axis_angle_to_matrix, random_rotation
from symgen.masking import masked_center
from symgen.priors import CenteredGaussianPrior
from symgen.state import GeometricGraph
from symgen.testing import geometric_graphs, make_graph


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _pair(x: GeometricGraph, seed: int) -> tuple[GeometricGraph, GeometricGraph]:
    """A centred prior batch shaped like ``x`` and the centred data ``x``."""
    data = x.zero_padding()
    data = data.replace(pos=masked_center(data.pos, data.mask))
    return CenteredGaussianPrior(features=False).sample(data, generator=_gen(seed)), data


def _is_permutation_within_sizes(src: torch.Tensor, sizes: torch.Tensor) -> bool:
    if sorted(src.tolist()) != list(range(len(src))):
        return False
    return bool((sizes[src] == sizes).all())


@settings(max_examples=30, deadline=None)
@given(geometric_graphs(min_batch=2, max_batch=9, min_nodes=1, max_nodes=5))
def test_ot_coupling_is_a_permutation_and_lowers_cost(x: GeometricGraph) -> None:
    x0, x1 = _pair(x, 0)
    ind = IndependentCoupling().couple(x0, x1)
    ot = MinibatchOTCoupling().couple(x0, x1)
    assert _is_permutation_within_sizes(ot.source_index, x1.num_nodes)
    torch.testing.assert_close(ot.x0.pos, x0.pos[ot.source_index])
    assert torch.equal(ot.x1.pos, x1.pos) and torch.equal(
        ot.target_index, torch.arange(x.batch_size)
    )
    c_ot, c_ind = pair_cost(ot.x0, ot.x1).sum(), pair_cost(ind.x0, ind.x1).sum()
    assert float(c_ot) <= float(c_ind) * (1 + 1e-5) + 1e-5


@settings(max_examples=15, deadline=None)
@given(st.integers(2, 6), st.integers(0, 10_000), st.sampled_from([torch.float32, torch.float64]))
def test_ot_coupling_is_optimal_by_brute_force(b: int, seed: int, dtype: torch.dtype) -> None:
    x = make_graph([4] * b, dtype=dtype, seed=seed)
    x0, x1 = _pair(x, seed)
    C = pairwise_cost(x0, x1).double()
    best = min(sum(float(C[p[j], j]) for j in range(b)) for p in itertools.permutations(range(b)))
    for solver in ("pot", "scipy"):
        c = MinibatchOTCoupling(solver=solver).couple(x0, x1)
        got = float(pair_cost(c.x0, c.x1).double().sum())
        assert math.isclose(got, best, rel_tol=1e-4, abs_tol=1e-4)


def test_ot_never_pairs_graphs_of_different_sizes() -> None:
    x = make_graph([3, 5, 3, 5, 5, 2], max_nodes=6, seed=1)
    x0, x1 = _pair(x, 3)
    C = pairwise_cost(x0, x1)
    assert bool(torch.isinf(C[0, 1])) and bool(torch.isfinite(C[0, 2]))
    c = MinibatchOTCoupling().couple(x0, x1)
    assert bool((c.x0.num_nodes == x1.num_nodes).all())


def test_assignment_validates_input() -> None:
    with pytest.raises(ValueError, match="square"):
        assignment(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="NaN or inf"):
        assignment(torch.tensor([[0.0, math.inf], [1.0, 0.0]]))
    # a Literal option: the runtime type checker of the test suite, or the ValueError outside it
    with pytest.raises((ValueError, TypeError), match="solver"):
        assignment(torch.zeros(2, 2), "greedy")  # type: ignore[arg-type]


def test_layout_mismatch_is_rejected() -> None:
    a = make_graph([3, 4])
    b = make_graph([4, 3], max_nodes=4)
    with pytest.raises(ValueError, match="same mask"):
        IndependentCoupling().couple(a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kabsch_recovers_proper_rotations(dtype: torch.dtype) -> None:
    p = torch.randn(5, 7, 3, generator=_gen(0), dtype=dtype)
    R = random_rotation(5, generator=_gen(1), dtype=dtype)
    w = torch.ones(5, 7, dtype=dtype)
    atol = 1e-4 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(kabsch(p, p @ R.transpose(1, 2), w), R, atol=atol, rtol=0)
    # a mirror image is best matched by a reflection; Kabsch must still return det +1
    mirror = p * torch.tensor([1.0, 1.0, -1.0], dtype=dtype)
    Q = kabsch(p, mirror, w)
    torch.testing.assert_close(torch.linalg.det(Q), torch.ones(5, dtype=dtype), atol=atol, rtol=0)
    torch.testing.assert_close(
        Q @ Q.transpose(1, 2), torch.eye(3, dtype=dtype).expand(5, 3, 3), atol=atol, rtol=0
    )


@settings(max_examples=30, deadline=None)
@given(
    geometric_graphs(
        min_batch=1,
        max_batch=5,
        min_nodes=1,
        max_nodes=7,
        kinds=("generic", "planar", "coincident"),
    )
)
def test_alignment_never_increases_the_pair_cost(x: GeometricGraph) -> None:
    x0, x1 = _pair(x, 5)
    a = align(x0, x1)
    tol = 1e-4 if x.dtype == torch.float32 else 1e-9
    assert bool((a.cost_after <= a.cost_before * (1 + tol) + tol).all())
    det = torch.linalg.det(a.rotation.double())
    torch.testing.assert_close(det, torch.ones_like(det), atol=1e-5, rtol=0)
    # the permutation permutes real slots and fixes padding
    for i, k in enumerate(x.num_nodes.tolist()):
        assert sorted(a.perm[i, :k].tolist()) == list(range(k))
        assert a.perm[i, k:].tolist() == list(range(k, x.max_nodes))
    c = AlignedCoupling().couple(x0, x1)
    torch.testing.assert_close(pair_cost(c.x0, c.x1), a.cost_after)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_alignment_undoes_a_relabelling_and_small_rotation(dtype: torch.dtype) -> None:
    x = make_graph([6, 8, 5], max_nodes=8, dtype=dtype, seed=4)
    _, x1 = _pair(x, 0)
    S = SymmetricGroup()
    moved = S.act(S.sample(x1, generator=_gen(2)), x1)
    R = axis_angle_to_matrix(
        torch.tensor([0.3, -1.0, 0.5], dtype=dtype), torch.tensor(0.25, dtype=dtype)
    )
    moved = moved.replace(pos=torch.where(x1.mask[..., None], moved.pos @ R.T, moved.pos))
    a = align(moved, x1)
    assert float(a.cost_before.min()) > 1.0
    assert (
        float(a.cost_after.max()) < 1e-6
        if dtype == torch.float64
        else float(a.cost_after.max()) < 1e-3
    )


def test_aligned_ot_is_no_worse_than_aligned_independent() -> None:
    x = make_graph([5] * 8 + [4] * 4, max_nodes=5, dtype=torch.float64, seed=7)
    x0, x1 = _pair(x, 11)
    aligned = AlignedCoupling().couple(x0, x1)
    both = AlignedOTCoupling().couple(x0, x1)
    assert _is_permutation_within_sizes(both.source_index, x1.num_nodes)
    assert (
        float(pair_cost(both.x0, both.x1).sum())
        <= float(pair_cost(aligned.x0, aligned.x1).sum()) + 1e-8
    )
    # aligned prior samples are permuted and rotated copies: per-graph norms are unchanged
    torch.testing.assert_close(
        (both.x0.pos**2).sum((1, 2)), (x0.pos[both.source_index] ** 2).sum((1, 2))
    )


def test_aligned_noise_keeps_the_prior_features_multiset() -> None:
    x = make_graph([6, 6], num_types=3, seed=3)
    x0 = CenteredGaussianPrior().sample(x, generator=_gen(0))
    c = AlignedCoupling(feature_weight=0.5).couple(
        x0, x.replace(pos=x.pos - x.pos.mean(1, keepdim=True))
    )
    for i in range(2):
        a = torch.sort(c.x0.node[i].flatten()).values
        b = torch.sort(x0.node[i].flatten()).values
        torch.testing.assert_close(a, b)
