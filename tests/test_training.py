"""Training utilities: per-step seeds, EMA, atomic checkpoints, CSV logs that resume cleanly."""

import csv

import pytest
import torch
from torch import nn

from symgen.training import (
    CSVLogger,
    ExponentialMovingAverage,
    epoch_permutation,
    load_checkpoint,
    save_checkpoint,
    step_generator,
)


def test_step_generators_are_reproducible_and_distinct():
    a = torch.rand(4, generator=step_generator(3, 10))
    torch.testing.assert_close(a, torch.rand(4, generator=step_generator(3, 10)))
    assert not torch.allclose(a, torch.rand(4, generator=step_generator(3, 11)))
    assert not torch.allclose(a, torch.rand(4, generator=step_generator(4, 10)))


def test_epoch_permutation_is_a_permutation_and_changes_per_epoch():
    p0, p1 = epoch_permutation(0, 0, 50), epoch_permutation(0, 1, 50)
    assert sorted(p0.tolist()) == list(range(50))
    assert not torch.equal(p0, p1)
    assert torch.equal(p0, epoch_permutation(0, 0, 50))


def test_ema_matches_the_formula():
    net = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(0.0)
    ema = ExponentialMovingAverage(net, decay=0.5, warmup=False)
    with torch.no_grad():
        net.weight.fill_(4.0)
    ema.update(net)  # 0.5 * 0 + 0.5 * 4
    ema.update(net)  # 0.5 * 2 + 0.5 * 4
    assert ema.shadow["weight"].item() == pytest.approx(3.0)
    with ema.averaged(net):
        assert net.weight.item() == pytest.approx(3.0)
    assert net.weight.item() == pytest.approx(4.0)
    with pytest.raises(ValueError, match="decay"):
        ExponentialMovingAverage(net, decay=1.0)


def test_ema_warmup_forgets_the_initial_weights():
    """Share of the initial weights left in the average = product of the decays used."""
    net = nn.Linear(1, 1, bias=False).double()
    with torch.no_grad():
        net.weight.fill_(0.0)
    warm = ExponentialMovingAverage(net, decay=0.999)
    plain = ExponentialMovingAverage(net, decay=0.999, warmup=False)
    with torch.no_grad():
        net.weight.fill_(1.0)
    share = 1.0
    for k in range(1, 1201):
        warm.update(net)
        plain.update(net)
        share *= min(0.999, (1 + k) / (10 + k))
    assert warm.current_decay() == pytest.approx(1201 / 1210)  # reaches 0.999 after ~9,000 steps
    assert 1.0 - warm.shadow["weight"].item() == pytest.approx(share, abs=1e-12)
    assert 1.0 - warm.shadow["weight"].item() < 0.01  # init forgotten
    assert 1.0 - plain.shadow["weight"].item() == pytest.approx(0.999**1200, rel=1e-4)  # ~0.30
    restored = ExponentialMovingAverage(net, decay=0.5, warmup=False)
    restored.load_state_dict(warm.state_dict())
    assert (restored.num_updates, restored.warmup, restored.decay) == (1200, True, 0.999)


def test_checkpoint_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"step": 1})
    assert load_checkpoint(path)["step"] == 1

    def broken_save(obj, f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1  # the old checkpoint survived intact
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temp files left behind
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_csv_logger_drops_rows_after_resume_step(tmp_path):
    path = tmp_path / "log.csv"
    log = CSVLogger(path)
    for step in range(1, 6):
        log.log({"step": step, "loss": 1.0 / step})
    resumed = CSVLogger(path, resume_step=3)
    resumed.log({"step": 4, "loss": 0.0})
    with path.open() as f:
        steps = [int(r["step"]) for r in csv.DictReader(f)]
    assert steps == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="step"):
        resumed.log({"loss": 1.0})
