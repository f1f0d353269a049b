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


# ---------------------------------------------------------------------------- the training loop
import math  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402
from pathlib import Path  # noqa: E402

from symgen.generators import CanonicalGenerator, FlowMatching  # noqa: E402
from symgen.models import build_network  # noqa: E402
from symgen.priors import CenteredGaussianPrior  # noqa: E402
from symgen.state import strict_validation  # noqa: E402
from symgen.testing import make_graph  # noqa: E402
from symgen.training import Trainer, TrainingConfig, learning_rate  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

#: A child process that trains a tiny generator; ``kill-in-write`` kills itself in the middle of
#: writing its second checkpoint (step 8): some bytes of the new file are on disk, no rename.
CHILD = textwrap.dedent(
    """
    import os, sys, torch
    from symgen.generators import CanonicalGenerator, FlowMatching
    from symgen.models import build_network
    from symgen.priors import CenteredGaussianPrior
    from symgen.testing import make_graph
    from symgen.training import Trainer, TrainingConfig
    import symgen.training.checkpoint as ck

    out, mode = sys.argv[1], sys.argv[2]
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = make_graph([4, 5, 3, 6] * 8, num_types=2, seed=0)
    net = build_network("canon_transformer", node_in=2, node_out=2, width=8, depth=1, heads=2,
                        pair_width=4, num_rbf=4, rank_dim=4)
    gen = CanonicalGenerator(None, CenteredGaussianPrior(features=False), None,
                             FlowMatching(weights={"node": 0.0}), net, node_dim=2)
    cfg = TrainingConfig(max_steps=12, batch_size=8, warmup_steps=2, ckpt_every=4,
                         log_every=1, progress=False)
    if mode == "kill-in-write":
        original, calls = ck._serialize, []
        def dying(payload, handle):
            calls.append(1)
            if len(calls) == 2:
                handle.write(b"half a checkpoint" * 512)
                handle.flush()
                os._exit(9)
            original(payload, handle)
        ck._serialize = dying
    Trainer(gen, data, cfg, out_dir=out).fit(resume=mode == "resume")
    """
)


def _child(tmp_path: Path, out: Path, mode: str) -> subprocess.CompletedProcess:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return subprocess.run(
        [sys.executable, str(script), str(out), mode],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


def test_kill_during_a_checkpoint_write_then_resume_is_exact(tmp_path):
    """A process killed while writing a checkpoint leaves the previous one loadable; resuming
    from it gives the same weights, EMA and log as a run that was never interrupted."""
    full = _child(tmp_path, tmp_path / "full", "fresh")
    assert full.returncode == 0, full.stderr[-3000:]
    crash_dir = tmp_path / "crash"
    crashed = _child(tmp_path, crash_dir, "kill-in-write")
    assert crashed.returncode == 9, crashed.stderr[-3000:]
    assert list(crash_dir.glob(".checkpoint.pt.*.tmp")), "the killed write left its temp file"
    assert load_checkpoint(crash_dir / "checkpoint.pt")["step"] == 4  # the previous one
    resumed = _child(tmp_path, crash_dir, "resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr
    assert not list(crash_dir.glob(".checkpoint.pt.*.tmp"))
    a = load_checkpoint(tmp_path / "full" / "checkpoint.pt")
    b = load_checkpoint(crash_dir / "checkpoint.pt")
    assert a["step"] == b["step"] == 12
    for key, value in a["generator"].items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, b["generator"][key]), f"weights differ after resume: {key}"
    for key, value in a["ema"]["shadow"].items():
        assert torch.equal(value, b["ema"]["shadow"][key]), f"EMA differs after resume: {key}"
    with (crash_dir / "log.csv").open() as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == list(range(1, 13))


def _tiny(seed: int = 0) -> tuple[CanonicalGenerator, object]:
    torch.manual_seed(seed)
    data = make_graph([4, 5, 3, 6] * 8, num_types=2, seed=seed)
    net = build_network("egnn", node_in=2, node_out=2, width=16, depth=2)
    gen = CanonicalGenerator(
        None,
        CenteredGaussianPrior(features=False),
        None,
        FlowMatching(weights={"node": 0.0}),
        net,
        node_dim=2,
    )
    return gen, data


def test_trainer_logs_validates_runs_hooks_and_learns(tmp_path):
    gen, data = _tiny()
    calls = []

    class Record:
        every = 5

        def __call__(self, trainer, step):  # noqa: ANN001, ANN204
            with trainer.averaged() as model:
                assert not model.training
                calls.append(step)
            return {"seen": float(step)}

    cfg = TrainingConfig(
        max_steps=60,
        batch_size=8,
        lr=3e-3,
        warmup_steps=5,
        log_every=10,
        ckpt_every=25,
        val_every=20,
        progress=False,
    )
    messages = []
    result = Trainer(
        gen, data, cfg, out_dir=tmp_path, val_data=data, hooks=[Record()], log=messages.append
    ).fit()
    assert result.step == 60 and result.stopped_by == "max_steps" and gen.training
    assert calls == list(range(5, 61, 5))
    assert sum("validation loss" in m for m in messages) == 3
    with (tmp_path / "log.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [10, 20, 30, 40, 50, 60]
    assert {"loss", "loss_pos", "grad_norm", "lr", "graphs_per_s"} <= set(rows[0])
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["format"] == "symgen-checkpoint/1" and state["training"]["max_steps"] == 60
    with (tmp_path / "Record.csv").open() as f:  # the hook's metrics, one row per call
        hook_rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in hook_rows] == calls
    assert [float(r["seen"]) for r in hook_rows] == [float(c) for c in calls]
    with (tmp_path / "validation.csv").open() as f:  # the EMA validation losses
        val_rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in val_rows] == [20, 40, 60]
    assert all(math.isfinite(float(r["loss"])) for r in val_rows)


def test_time_budget_stops_and_anneals():
    gen, data = _tiny()
    cfg = TrainingConfig(
        max_steps=10**6,
        batch_size=8,
        time_budget_s=0.5,
        schedule_clock="time",
        warmup_steps=1,
        progress=False,
    )
    result = Trainer(gen, data, cfg).fit()
    assert result.stopped_by == "time_budget" and 0 < result.step < 10**6
    assert 0.5 < result.train_seconds < 5.0
    assert learning_rate(50, 0.5, cfg) == pytest.approx(cfg.lr * 0.1)  # fully annealed


def test_learning_rate_schedule_is_the_formula():
    cfg = TrainingConfig(lr=2.0, warmup_steps=10, max_steps=210, final_lr_fraction=0.25)
    for k in (1, 5, 10, 60, 110, 210, 400):
        warm = min(1.0, k / 10)
        p = min(1.0, max(0.0, (k - 10) / 200))
        expected = 2.0 * warm * (0.25 + 0.75 * 0.5 * (1 + math.cos(math.pi * p)))
        assert learning_rate(k, 0.0, cfg) == pytest.approx(expected)
    with pytest.raises(ValueError, match="time_budget_s"):
        TrainingConfig(schedule_clock="time")
    with pytest.raises(ValueError, match="batch_size"):
        TrainingConfig(batch_size=0)


def test_trainer_errors_are_named(tmp_path):
    gen, data = _tiny()
    with pytest.raises(ValueError, match="smaller than one batch"):
        Trainer(gen, data, TrainingConfig(batch_size=1000, progress=False))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        Trainer(gen, data, TrainingConfig(batch_size=8, progress=False), out_dir=tmp_path).fit(
            resume=True
        )
    with torch.no_grad():
        for p in gen.parameters():
            p.fill_(float("nan"))
    # outside the test suite's strict validation, only the loss check sees the NaN
    with strict_validation(False), pytest.raises(FloatingPointError, match="step 1"):
        Trainer(gen, data, TrainingConfig(max_steps=3, batch_size=8, progress=False)).fit()


def test_ema_update_is_the_per_tensor_formula_bit_for_bit():
    """The fused update does exactly ``avg.mul_(β).add_(θ, alpha=1 - β)`` on every tensor."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))
    ema = ExponentialMovingAverage(net, decay=0.99)
    reference = {k: v.detach().clone() for k, v in net.state_dict().items()}
    for k in range(1, 6):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        ema.update(net)
        beta = min(0.99, (1 + k) / (10 + k))
        for name, value in net.state_dict().items():
            reference[name].mul_(beta).add_(value, alpha=1 - beta)
    for name, value in reference.items():
        assert torch.equal(ema.shadow[name], value), name


def test_fused_optimizer_takes_the_same_steps_up_to_rounding():
    """AdamW's fused kernel is the same update: after 5 steps the weights agree to ~1e-6."""
    runs = []
    for fused in (False, True):
        gen, data = _tiny()
        cfg = TrainingConfig(
            max_steps=5,
            batch_size=8,
            lr=1e-2,
            warmup_steps=1,
            fused_optimizer=fused,
            progress=False,
        )
        trainer = Trainer(gen, data, cfg)
        assert trainer.optimizer.defaults["fused"] is (True if fused else None)
        trainer.fit()
        runs.append([p.detach().clone() for p in gen.parameters()])
    initial = [p.detach() for p in _tiny()[0].parameters()]
    moved = max(float((a - b).abs().max()) for a, b in zip(runs[0], initial))
    assert moved > 1e-3  # the steps did change the weights
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_validation_and_hook_csvs_resume_without_duplicate_rows(tmp_path):
    """A crash after the last checkpoint: resuming drops the CSV rows written after it."""

    class Crash:
        every = 5
        name = "curve"
        crash_at: int | None = 35

        def __call__(self, trainer: Trainer, step: int) -> dict[str, float]:
            if step == self.crash_at:
                raise KeyboardInterrupt("simulated crash")
            return {"value": float(step)}

    cfg = TrainingConfig(
        max_steps=50, batch_size=8, warmup_steps=1, ckpt_every=25, val_every=5, progress=False
    )
    gen, data = _tiny()
    hook = Crash()
    with pytest.raises(KeyboardInterrupt):
        Trainer(gen, data, cfg, out_dir=tmp_path, val_data=data, hooks=[hook]).fit()
    hook.crash_at = None
    gen, data = _tiny()
    Trainer(gen, data, cfg, out_dir=tmp_path, val_data=data, hooks=[hook]).fit(resume=True)
    for name in ("validation", "curve"):
        with (tmp_path / f"{name}.csv").open() as f:
            steps = [int(r["step"]) for r in csv.DictReader(f)]
        assert steps == list(range(5, 51, 5)), (name, steps)
