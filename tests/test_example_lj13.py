"""The LJ13 example: energy by hand, Metropolis against known answers, the pipeline end to end."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "lj13"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"lj13_{name}", EXAMPLE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(EXAMPLE))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(EXAMPLE))
    return module


lj = _load("lj")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dimer_energy_by_hand(dtype):
    """Two particles at r: ε[(r_m/r)^12 - 2(r_m/r)^6] + (c/2)·2·(r/2)²."""
    p = lj.LJParams(num_particles=2, epsilon=1.5, r_min=1.2, confinement=0.5)
    r = torch.tensor([1.2, 1.2 * 2 ** (-1 / 6), 2.0], dtype=dtype)
    pos = torch.zeros(3, 2, 3, dtype=dtype)
    pos[:, 1, 0] = r
    pos = pos + torch.tensor([0.3, -1.0, 2.0], dtype=dtype)  # translation changes nothing
    conf = 0.5 * 0.5 * 2 * (r / 2) ** 2
    expected = (
        torch.stack(
            [
                torch.tensor(-1.5, dtype=dtype),  # at r = r_m the pair energy is -ε
                torch.tensor(0.0, dtype=dtype),  # at r = 2^(-1/6) r_m it crosses zero
                torch.tensor(1.5 * ((1.2 / 2.0) ** 12 - 2 * (1.2 / 2.0) ** 6), dtype=dtype),
            ]
        )
        + conf
    )
    torch.testing.assert_close(lj.lj_energy(pos, p), expected)


def test_energy_is_invariant():
    from symgen.groups import permutation_rigid_group
    from symgen.state import GeometricGraph

    g = torch.Generator().manual_seed(0)
    pos = torch.randn(4, 13, 3, generator=g, dtype=torch.float64) * 1.5
    x = GeometricGraph(
        pos, torch.zeros(4, 13, 1, dtype=torch.float64), torch.ones(4, 13, dtype=torch.bool)
    )
    G = permutation_rigid_group(translation_scale=2.0)
    y = G.act(G.sample(x, generator=g), x)
    torch.testing.assert_close(lj.lj_energy(y.pos), lj.lj_energy(pos))


def test_metropolis_harmonic_equipartition():
    """ε = 0 leaves the harmonic confinement: ⟨E⟩ = 3(n - 1) kT / 2 (equipartition)."""
    p = lj.LJParams(epsilon=0.0, temperature=1.0)
    x = lj.metropolis_samples(
        2048,
        p,
        chains=512,
        burn_in=600,
        thin=5,
        progress=False,
        generator=torch.Generator().manual_seed(1),
    )
    assert x.shape == (2048, 13, 3)
    torch.testing.assert_close(
        x.mean(1), torch.zeros(2048, 3, dtype=torch.float64), atol=1e-12, rtol=0
    )
    mean = float(lj.lj_energy(x, p).mean())
    assert abs(mean - 18.0) < 0.8, mean


def test_metropolis_dimer_matches_quadrature():
    """Two LJ particles: p(r) ∝ r² exp(-(φ(r) + c r²/4) / kT); compare ⟨r⟩ and std(r)."""
    p = lj.LJParams(num_particles=2)
    r = np.linspace(0.3, 10.0, 200001)
    w = r**2 * np.exp(-((r**-12 - 2 * r**-6) + p.confinement * r**2 / 4) / p.temperature)
    w /= np.trapezoid(w, r)
    mean_q = np.trapezoid(r * w, r)
    std_q = math.sqrt(np.trapezoid((r - mean_q) ** 2 * w, r))
    x = lj.metropolis_samples(
        4096,
        p,
        chains=1024,
        burn_in=1500,
        thin=20,
        progress=False,
        generator=torch.Generator().manual_seed(2),
    )
    d = (x[:, 0] - x[:, 1]).norm(dim=-1)
    assert abs(float(d.mean()) - mean_q) < 0.1, (float(d.mean()), mean_q)
    assert abs(float(d.std()) - std_q) < 0.1, (float(d.std()), std_q)


def test_metropolis_rejects_bad_arguments():
    with pytest.raises(ValueError, match="moves"):
        lj.metropolis_samples(4, moves="swap", progress=False)
    with pytest.raises(ValueError, match="chains"):
        lj.metropolis_samples(4, chains=0, progress=False)


def test_wasserstein_and_pair_distances():
    a = torch.tensor([0.0, 1.0, 2.0])
    assert lj.wasserstein1(a, a + 0.5) == pytest.approx(0.5)
    pos = torch.tensor([[[0.0, 0, 0], [3, 0, 0], [0, 4, 0]]])
    assert sorted(lj.pair_distances(pos).tolist()) == pytest.approx([3.0, 4.0, 5.0])


def test_run_help(capsys):
    run = _load("run")
    with pytest.raises(SystemExit) as exc:
        run.main(["--help"])
    assert exc.value.code == 0
    assert "--budget-seconds" in capsys.readouterr().out


def test_run_quick_end_to_end(tmp_path, capsys):
    """A tiny run of the whole comparison: finite samples of the right shape and a report."""
    run = _load("run")
    out = tmp_path / "run"
    report = run.main(
        [
            "--quick",
            "--budget-seconds",
            "2",
            "--samples",
            "48",
            "--out",
            str(out),
            "--no-progress",
            "--mcmc-cache",
            "none",
        ]
    )
    printed = capsys.readouterr().out
    assert "| method |" in printed and "canonical" in printed and "equivariant" in printed
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["table"] == report["table"]
    rows = on_disk["rows"]
    assert len(rows) == 5
    for name, row in rows.items():
        for key in ("w1_energy", "w1_distance", "mean_energy", "clash_free"):
            assert math.isfinite(row[key]), (name, key, row[key])
        assert 0.0 <= row["clash_free"] <= 1.0
    trained = [r for n, r in rows.items() if n.startswith(("canonical", "equivariant"))]
    assert len(trained) == 3 and all(r["steps"] >= 1 for r in trained)
    assert all(r["train_wall_seconds"] >= 2.0 for r in trained)
    # every trained row also reports the energy W1 at --quick's few step count (1)
    assert all(math.isfinite(r["w1_energy_steps1"]) for r in trained)
    assert "W1 energy, 1 step" in printed
    # the noise floor is far below the prior in every metric
    floor, prior = rows["MCMC (2nd independent set)"], rows["prior (Gaussian)"]
    assert floor["w1_distance"] < prior["w1_distance"]
    canon = on_disk["canonicalization"]
    assert 0.0 <= canon["train"]["flagged"] <= 1.0
    assert canon["icosahedron"]["flagged_by_jitter"]["0.0"] == 1.0  # the symmetric minimum is a tie
    assert canon["icosahedron"]["energy"] < -40.0
    samples = np.load(out / "samples.npz")
    for key in ("canonical", "equivariant", "canonical-shortcut", "reference", "floor", "prior"):
        assert samples[key].shape == (48, 13, 3), key
    for key in ("canonical", "equivariant", "canonical-shortcut"):
        assert np.isfinite(samples[key]).all()
        np.testing.assert_allclose(samples[key].mean(1), 0.0, atol=1e-4)

    summary = _load("summarize").summarize([out, out])  # the same run twice: zero spread
    assert "canonical + shortcut objective" in summary and "W1 energy, 1 step" in summary
    canon_w1 = rows[next(n for n in rows if n.startswith("canonical ("))]["w1_energy"]
    assert f"{canon_w1:.2f} ± 0.00" in summary

    if importlib.util.find_spec("matplotlib") is not None:
        plots = _load("plots")
        written = plots.make_plots(out, tmp_path / "img")
        assert [p.name for p in written] == [
            "lj13_energy.png",
            "lj13_pair_distance.png",
            "lj13_training.png",
        ]
        assert all(p.read_bytes()[:4] == b"\x89PNG" for p in written)


def test_run_rejects_unknown_method():
    run = _load("run")
    with pytest.raises(SystemExit):
        run.main(["--methods", "canonical,diffusion", "--no-progress"])
