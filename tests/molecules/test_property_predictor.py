"""The property predictor of the conditional protocol, and QM9's property table."""

import numpy as np
import pytest
import torch

from symgen.conditioning import Context
from symgen.data import GraphsWithContext
from symgen.groups import permutation_rigid_group
from symgen.molecules.property_context import PropertyContext, parse_targets
from symgen.molecules.property_predictor import PredictorConfig, PropertyPredictor
from symgen.state import GeometricGraph
from symgen.testing import assert_invariant, make_graph
from symgen.training import Trainer, TrainingConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def _predictor(width: int = 16, depth: int = 2) -> PropertyPredictor:
    torch.manual_seed(0)  # test-only: parameter init
    return PropertyPredictor(
        PredictorConfig(node_in=3, width=width, depth=depth),
        ["count0", "spread"],
        [2.0, 1.0],
        [1.0, 0.5],
    )


def _targets(x: GeometricGraph) -> torch.Tensor:
    """Two invariant properties: the number of type-0 atoms and the mean squared distance
    to the centroid."""
    m = x.mask[..., None].to(x.dtype)
    count0 = (x.node[..., :1] * m).sum((1, 2))
    centroid = (x.pos * m).sum(1) / m.sum(1)
    spread = (((x.pos - centroid[:, None]) ** 2).sum(-1) * x.mask).sum(1) / x.mask.sum(1)
    return torch.stack([count0, spread], -1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_predictions_are_invariant(dtype: torch.dtype) -> None:
    net = _predictor().to(dtype)
    x = make_graph([5, 3, 7], max_nodes=8, num_types=3, dtype=dtype, seed=1)
    G = permutation_rigid_group(translation_scale=3.0)
    report = assert_invariant(
        lambda y: net(y),
        G,
        x,
        num_random=4,
        generator=torch.Generator().manual_seed(0),
        float64=dtype == torch.float64,
    )
    assert report.max_error < (1e-4 if dtype == torch.float32 else 1e-9)


def test_loss_is_the_masked_l1_of_normalized_targets() -> None:
    net = _predictor()
    x = make_graph([5, 3, 7], num_types=3, seed=2)
    y = torch.randn(3, 2, generator=torch.Generator().manual_seed(3))
    mask = torch.tensor([[True, False], [True, True], [False, True]])
    out = net.loss(x, context=Context(y, mask))
    with torch.no_grad():
        err = (net(x) - y).abs()
    expect = err[mask].mean()
    torch.testing.assert_close(out.total.detach(), expect)
    torch.testing.assert_close(out.terms["count0"].detach(), err[mask[:, 0], 0].mean())
    with pytest.raises(ValueError, match="pass context="):
        net.loss(x)
    with pytest.raises(ValueError, match="std positive"):
        PropertyPredictor(PredictorConfig(node_in=3), ["a"], [0.0], [0.0])


def test_predictor_learns_invariant_properties_with_the_training_loop(tmp_path) -> None:
    """Trained by the library loop on 512 random graphs, the predictor's error on 256 new ones
    falls well below that of predicting the mean (a predictor that ignored the geometry or the
    atom types could not do this for both properties)."""
    sizes = np.random.default_rng(0).integers(3, 10, size=768).tolist()
    data = make_graph(sizes, num_types=3, seed=4)
    y = _targets(data)
    net = _predictor(width=32, depth=2)
    mean, std = y[:512].mean(0), y[:512].std(0)
    net.mean.copy_(mean)
    net.std.copy_(std)
    train = GraphsWithContext(data.index(torch.arange(512)), net.normalize(y[:512]))
    cfg = TrainingConfig(
        max_steps=400, batch_size=32, lr=2e-3, warmup_steps=20, progress=False, ema_decay=0.99
    )
    Trainer(net, train, cfg).fit()
    test = data.index(torch.arange(512, 768))
    net.eval()
    mae = (net.predict(test) - y[512:]).abs().mean(0)
    baseline = (y[512:] - mean).abs().mean(0)
    assert bool((mae < 0.35 * baseline).all()), (mae, baseline)


def test_property_context_normalizes_and_conditions_sizes() -> None:
    """Sizes given a target follow the per-size statistics: a target typical of large
    molecules draws large sizes; a missing target leaves the size histogram as it is."""
    rng = np.random.default_rng(0)
    sizes = rng.integers(5, 20, size=4000)
    values = np.stack([3.0 * sizes + rng.normal(0, 2, 4000), rng.normal(0, 1, 4000)], -1)
    ctx = PropertyContext.from_data(["alpha", "mu"], ["Bohr^3", "D"], values, sizes)
    again = PropertyContext.from_dict(ctx.to_dict())
    np.testing.assert_allclose(again.size_mean, ctx.size_mean)
    c = ctx.context(np.array([[45.0, np.nan]]))
    assert c.mask.tolist() == [[True, False]]
    assert abs(float(c.values[0, 0]) - (45.0 - values[:, 0].mean()) / values[:, 0].std()) < 1e-5
    p = ctx.size_probabilities(np.array([[45.0, np.nan], [np.nan, np.nan]]))
    assert abs(float((p[0] * np.arange(p.shape[1])).sum()) - 15.0) < 0.5  # 45 / 3
    np.testing.assert_allclose(p[1], np.bincount(sizes, minlength=20) / 4000)
    row = parse_targets("mu=1.5", ctx.names)
    assert np.isnan(row[0]) and row[1] == 1.5
    for bad, msg in (("", "no target"), ("mu=1,mu=2", "twice"), ("mu=inf", "finite")):
        with pytest.raises(ValueError, match=msg):
            parse_targets(bad, ctx.names)


def test_train_load_and_predict_molecules(tmp_path) -> None:
    """train_predictor writes a checkpoint that load_predictor restores (EMA weights), and
    predict_molecules gives the same values from molecules as from the dataset."""
    from symgen.molecules.dataset import MoleculeDataset
    from symgen.molecules.molecule import Molecule
    from symgen.molecules.property_predictor import (
        load_predictor,
        predict_molecules,
        train_predictor,
    )

    rng = np.random.default_rng(0)
    mols = []
    for k in range(24):
        z = np.array([8, 1, 1]) if k % 2 else np.array([7, 1, 1, 1])
        pos = rng.normal(size=(len(z), 3))
        bonds = np.array([[0, i] for i in range(1, len(z))])
        mols.append(Molecule(z, pos, np.zeros(len(z), int), bonds, np.ones(len(bonds), int)))
    ds = MoleculeDataset.from_molecules(mols)
    values = np.stack([ds.num_atoms.astype(float), rng.normal(size=24)], -1)
    cfg = TrainingConfig(max_steps=4, batch_size=8, warmup_steps=1, progress=False, val_every=2)
    net, trainer = train_predictor(
        ds,
        values,
        ["n", "noise"],
        config=PredictorConfig(node_in=8, width=8, depth=1),
        training=cfg,
        out_dir=tmp_path,
        val=ds,
        val_values=values,
    )
    assert trainer.step == 4 and (tmp_path / "validation.csv").exists()
    loaded = load_predictor(tmp_path / "checkpoint.pt")
    assert loaded.names == ("n", "noise")
    a = predict_molecules(net, mols)
    np.testing.assert_allclose(predict_molecules(loaded, ds), a, rtol=1e-5, atol=1e-5)
    assert a.shape == (24, 2)
    torch.save({"run": {"recipe": "canonflow"}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a property predictor checkpoint"):
        load_predictor(tmp_path / "other.pt")
