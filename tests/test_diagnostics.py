"""Tests for symgen.diagnostics: the conditional flow-matching variance and the toy domain."""

import pytest
import torch

from symgen.canon import geometric_spectral_canonicalizer
from symgen.couplings import IndependentCoupling, MinibatchOTCoupling
from symgen.diagnostics import TOY_SHAPES, conditional_variance, toy_shapes
from symgen.priors import CenteredGaussianPrior, GaussianPrior
from symgen.state import GeometricGraph
from symgen.testing import make_graph

pytestmark = pytest.mark.usefixtures("one_thread")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _gaussian_data(n: int, s: float, seed: int) -> GeometricGraph:
    pos = s * torch.randn(n, 1, 3, generator=_gen(seed), dtype=torch.float64)
    return GeometricGraph(
        pos, torch.zeros(n, 1, 1, dtype=torch.float64), torch.ones(n, 1, dtype=torch.bool)
    )


@pytest.mark.parametrize("estimator", ["gaussian", "knn"])
def test_variance_matches_the_gaussian_closed_form(estimator: str) -> None:
    """Data N(0, s²), prior N(0, 1), independent coupling: V(t) = s² / ((1-t)² + t² s²)."""
    s = 0.5
    times = [0.2, 0.5, 0.8]
    cv = conditional_variance(
        _gaussian_data(3000, s, 0),
        GaussianPrior(features=False),
        times=times,
        estimator=estimator,
        neighbours=16,
        generator=_gen(1),
    )
    t = torch.tensor(times, dtype=torch.float64)
    exact = s**2 / ((1 - t) ** 2 + t**2 * s**2)
    tol = 0.1 if estimator == "gaussian" else 0.2
    torch.testing.assert_close(cv.variance, exact, rtol=tol, atol=0)
    # without conditioning the variance would be E|u|² = 1 + s² per coordinate: V is clearly below
    torch.testing.assert_close(
        cv.velocity_second_moment,
        torch.full((3,), 1 + s**2, dtype=torch.float64),
        rtol=0.08,
        atol=0,
    )
    assert cv.estimator == estimator and cv.loss_floor == pytest.approx(float(cv.variance.mean()))


def test_a_single_data_point_has_zero_variance() -> None:
    x = _gaussian_data(1, 1.0, 0)
    data = x.index([0] * 200)
    cv = conditional_variance(
        data,
        GaussianPrior(features=False),
        times=[0.1, 0.6],
        estimator="gaussian",
        generator=_gen(0),
    )
    assert float(cv.variance.max()) < 1e-12


def test_canonicalization_and_ot_lower_the_conditional_variance() -> None:
    raw = toy_shapes(768, generator=_gen(0), dtype=torch.float64)
    canon = geometric_spectral_canonicalizer().canonicalize(raw).representative
    prior = CenteredGaussianPrior(features=False)
    times = [0.25, 0.5, 0.75]
    v = {}
    for name, data in (("raw", raw), ("canon", canon)):
        for cname, coupling in (("ind", IndependentCoupling()), ("ot", MinibatchOTCoupling())):
            v[name, cname] = conditional_variance(
                data, prior, coupling, times=times, batch_size=256, generator=_gen(2)
            ).variance
    assert bool((v["canon", "ind"] < 0.6 * v["raw", "ind"]).all()), v
    assert bool((v["raw", "ot"] < 0.8 * v["raw", "ind"]).all()), v
    assert bool((v["canon", "ot"] < v["canon", "ind"]).all()), v


def test_conditional_variance_validates_input() -> None:
    mixed = make_graph([3, 4])
    with pytest.raises(ValueError, match="one size"):
        conditional_variance(mixed, CenteredGaussianPrior(features=False))
    x = make_graph([4, 4])
    with pytest.raises(ValueError, match="independent coupling"):
        conditional_variance(
            x, CenteredGaussianPrior(features=False), MinibatchOTCoupling(), estimator="gaussian"
        )
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        conditional_variance(x, CenteredGaussianPrior(features=False), times=[1.0])
    with pytest.raises((ValueError, TypeError), match="estimator"):  # a Literal option
        conditional_variance(x, CenteredGaussianPrior(features=False), estimator="kde")


def test_toy_shapes_are_the_fixed_shapes_up_to_symmetry_and_noise() -> None:
    x = toy_shapes(500, noise=0.0, generator=_gen(3), dtype=torch.float64)
    assert bool((x.pos.mean(1).abs() < 1e-12).all())
    d = torch.cdist(x.pos, x.pos)
    iu = torch.triu_indices(6, 6, 1)
    got = d[:, iu[0], iu[1]].sort(-1).values
    shapes = torch.tensor(TOY_SHAPES, dtype=torch.float64)
    ref = torch.cdist(shapes, shapes)[:, iu[0], iu[1]].sort(-1).values
    err = (got[:, None] - ref[None]).abs().amax(-1).amin(-1)
    assert float(err.max()) < 1e-9
    assert float(ref.diff(dim=-1).min()) > 1e-3  # distinct pairwise distances
    with pytest.raises(ValueError, match="weights"):
        toy_shapes(3, weights=(1.0,))
