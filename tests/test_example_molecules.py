"""The molecule example end to end at tiny sizes: exact resume after a crash, DDP on CPU, CLI."""

import argparse
import csv
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("rdkit")

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "examples" / "molecules" / "train.py"
SAMPLE = ROOT / "examples" / "molecules" / "sample.py"

TINY = [
    "--qm9-limit",
    "400",
    "--val-limit",
    "16",
    "--width",
    "16",
    "--depth",
    "1",
    "--heads",
    "2",
    "--batch-size",
    "8",
    "--val-every",
    "0",
    "--log-every",
    "1",
    "--warmup-steps",
    "2",
    "--final-samples",
    "0",
    "--progress",
    "false",
    "--tensorboard",
    "false",
    "--threads",
    "1",
]


#: The same tiny run for the in-process tests (CanonFlowConfig fields).
TINY_CONFIG = dict(
    qm9_limit=400,
    val_limit=8,
    width=16,
    depth=1,
    heads=2,
    batch_size=8,
    warmup_steps=1,
    val_every=0,
    progress=False,
    tensorboard=False,
)


def _run(args: list[str], cache: Path, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, SYMGEN_CACHE=str(cache), OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
        **kw,
    )


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("symgen_cache")


def _steps(log: Path) -> list[int]:
    with log.open() as f:
        return [int(r["step"]) for r in csv.DictReader(f)]


def test_resume_after_crash_is_exact(tmp_path, cache):
    """Kill the run abruptly mid-way, resume: same final weights as an uninterrupted run, no
    step lost or repeated in the log."""
    common = [
        str(TRAIN),
        *TINY,
        "--max-steps",
        "10",
        "--ckpt-every",
        "4",
        "--cache-dir",
        str(cache),
    ]
    full = _run([*common, "--out-dir", str(tmp_path / "full")], cache)
    assert full.returncode == 0, full.stderr[-3000:]

    crashed = _run(
        [*common, "--out-dir", str(tmp_path / "crash"), "--simulate-crash-at", "6"], cache
    )
    assert crashed.returncode == 17, crashed.stderr[-3000:]
    assert torch.load(tmp_path / "crash" / "checkpoint.pt", weights_only=False)["step"] == 4
    resumed = _run([*common, "--out-dir", str(tmp_path / "crash"), "--resume"], cache)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr

    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "crash" / "checkpoint.pt", weights_only=False)
    assert a["step"] == b["step"] == 10
    for key, value in a["generator"].items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, b["generator"][key]), f"weights differ after resume: {key}"
    for key, value in a["ema"]["shadow"].items():
        assert torch.equal(value, b["ema"]["shadow"][key]), f"EMA differs after resume: {key}"
    assert _steps(tmp_path / "crash" / "log.csv") == list(range(1, 11))


def test_ddp_two_processes_gloo(tmp_path, cache):
    """torchrun with 2 CPU processes (gloo): trains, checkpoints once, ranks stay in sync."""
    out = tmp_path / "ddp"
    proc = _run(
        [
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29533",
            str(TRAIN),
            *TINY,
            "--max-steps",
            "4",
            "--ckpt-every",
            "2",
            "--cache-dir",
            str(cache),
            "--out-dir",
            str(out),
        ],
        cache,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    assert state["step"] == 4
    assert _steps(out / "log.csv") == [1, 2, 3, 4]


def test_sample_script_writes_outputs(tmp_path, cache):
    run_dir = tmp_path / "run"
    proc = _run(
        [
            str(TRAIN),
            *TINY,
            "--max-steps",
            "2",
            "--ckpt-every",
            "2",
            "--cache-dir",
            str(cache),
            "--out-dir",
            str(run_dir),
        ],
        cache,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "samples"
    proc = _run(
        [
            str(SAMPLE),
            "--checkpoint",
            str(run_dir / "checkpoint.pt"),
            "--num",
            "6",
            "--steps",
            "3",
            "--out",
            str(out),
            "--no-progress",
            "--strain-molecules",
            "2",
            "--solver",
            "midpoint",
            "--time-grid",
            "0.5",
            "--temperature",
            "0.7",
            "--precision",
            "bfloat16",
        ],
        cache,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("samples.sdf", "samples.xyz", "metrics.json", "sampling.json"):
        assert (out / name).stat().st_size > 0, name
    assert "molecules/s" in proc.stdout
    record = json.loads((out / "sampling.json").read_text())
    assert (record["solver"], record["time_grid"], record["temperature"]) == ("midpoint", 0.5, 0.7)
    assert record["steps"] == 3
    assert record["precision"] == "bfloat16"  # --precision overrides the trained float32

    # the checkpoint alone restores the sampler: no QM9 parse, no canonical cache, before or
    # while sampling (an empty cache folder stays empty with --no-eval)
    empty = tmp_path / "empty_cache"
    empty.mkdir()
    proc = _run(
        [
            str(SAMPLE),
            "--checkpoint",
            str(run_dir / "checkpoint.pt"),
            "--num",
            "4",
            "--steps",
            "2",
            "--out",
            str(tmp_path / "bare"),
            "--no-progress",
            "--no-eval",
        ],
        empty,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "bare" / "samples.sdf").stat().st_size > 0
    assert json.loads((tmp_path / "bare" / "sampling.json").read_text())["precision"] == "float32"
    assert list(empty.iterdir()) == []
    proc = _run([str(SAMPLE), "--checkpoint", str(tmp_path / "missing.pt")], cache)
    assert proc.returncode == 2 and "no checkpoint" in proc.stderr


DRUGLIKE = [
    "CC(=O)Nc1ccc(O)cc1",
    "c1ccc2[nH]ccc2c1",
    "CCS(=O)(=O)N",
    "C[N+](C)(C)CC(=O)[O-]",
    "Clc1ccccc1Br",
    "OC(=O)c1ccccc1F",
    "CCOC(=O)C",
    "N#Cc1ccncc1",
]


def _druglike_sdf(path: Path, copies: int = 3) -> None:
    from rdkit import Chem
    from rdkit.Chem import AllChem

    with Chem.SDWriter(str(path)) as w:
        for k in range(copies):
            for i, smi in enumerate(DRUGLIKE):
                mol = Chem.AddHs(Chem.MolFromSmiles(smi))
                assert AllChem.EmbedMolecule(mol, randomSeed=10 * i + k) == 0
                w.write(mol)
    with path.open("a") as f:  # one record RDKit cannot read
        f.write("garbage\n\n\n  2  1  0  0  0  0  0  0  0  0999 V2000\n$$$$\n")


def test_train_and_sample_on_a_users_sdf(tmp_path, cache):
    """train.py --data file.sdf: the bad record is skipped and counted, the layout follows the
    file (Br, Cl, S, charges), the final evaluation uses the drug protocols, and sample.py
    restores the file's layout from the checkpoint alone."""
    sdf = tmp_path / "mine.sdf"
    _druglike_sdf(sdf)
    run_dir = tmp_path / "run"
    tiny = [a for a in TINY if a not in ("--qm9-limit", "400")]
    proc = _run(
        [
            str(TRAIN),
            *tiny,
            "--data",
            str(sdf),
            "--max-steps",
            "3",
            "--ckpt-every",
            "3",
            "--final-samples",
            "4",
            "--sample-steps",
            "2",
            "--strain-molecules",
            "0",
            "--posebusters-molecules",
            "0",
            "--out-dir",
            str(run_dir),
        ],
        cache,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "mine.sdf: train" in proc.stderr
    assert '"skipped": {"unreadable record": 1}' in proc.stderr
    assert "geom-revisited" in proc.stdout.split("side by side")[1]
    state = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    assert state["run"]["layout"]["elements"] == ["H", "C", "N", "O", "F", "S", "Cl", "Br"]
    assert state["run"]["layout"]["charges"] == [-1, 0, 1]
    assert (cache / "canonical").is_dir()  # its own canonical cache, beside QM9's
    # a checkpoint whose run record lacks the layout (written outside the recipe) falls back
    # to the generator's own metadata, not to QM9's layout
    from symgen.molecules import canonflow as cf

    del state["run"]["layout"]
    torch.save(state, tmp_path / "old.pt")
    assert cf.load_generator(tmp_path / "old.pt")[0].metadata["layout"]["elements"][-1] == "Br"
    proc = _run(
        [
            str(SAMPLE),
            "--checkpoint",
            str(run_dir / "checkpoint.pt"),
            "--num",
            "3",
            "--steps",
            "2",
            "--out",
            str(tmp_path / "s"),
            "--no-progress",
            "--no-eval",
        ],
        cache,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    bad = _run(
        [
            str(TRAIN),
            *tiny,
            "--data",
            str(sdf),
            "--bad-records",
            "error",
            "--out-dir",
            str(tmp_path / "strict"),
        ],
        cache,
    )
    assert bad.returncode == 2 and "record 24: unreadable record" in bad.stderr
    unknown = _run(
        [str(TRAIN), *tiny, "--data", "mols.xyz", "--out-dir", str(tmp_path / "u")], cache
    )
    assert unknown.returncode == 2 and "unknown data 'mols.xyz'" in unknown.stderr


def test_sampling_checkpoint_is_small_and_samples_like_the_ema(tmp_path, cache, monkeypatch):
    """export_sampling_checkpoint keeps the EMA weights once (no optimizer, no duplicate of a
    module registered twice) and load_generator samples from it exactly as the trainer's
    averaged generator does."""
    from symgen.molecules import canonflow as cf

    monkeypatch.setenv("SYMGEN_CACHE", str(cache))
    cfg = cf.CanonFlowConfig(
        **TINY_CONFIG,
        max_steps=3,
        ckpt_every=3,
        out_dir=str(tmp_path / "run"),
        cache_dir=str(cache),
    )
    gen, trainer, _ = cf.train(cfg)
    path = tmp_path / "sampling.pt"
    cf.export_sampling_checkpoint(trainer, path)
    params = sum(p.numel() for p in gen.parameters())
    assert path.stat().st_size < 4 * params * 1.3 + 200_000
    assert path.stat().st_size < (tmp_path / "run" / "checkpoint.pt").stat().st_size / 2.5
    with trainer.averaged():
        ref, _ = cf.sample_molecules(gen, 5, seed=3, steps=3, progress=False)
    loaded, _, state = cf.load_generator(path)
    assert state["weights"] == "ema" and state["step"] == 3
    got, _ = cf.sample_molecules(loaded, 5, seed=3, steps=3, progress=False)
    for a, b in zip(ref, got):
        np.testing.assert_array_equal(a.atomic_numbers, b.atomic_numbers)
        np.testing.assert_allclose(a.positions, b.positions, atol=1e-5)
    sizes = [9, 3, 7, 3, 12, 5, 4]  # batches are formed from sorted sizes, then put back
    mols, _ = cf.sample_molecules(loaded, 7, seed=0, sizes=sizes, batch_size=2, steps=2)
    assert [len(m.atomic_numbers) for m in mols] == sizes
    half = tmp_path / "half.pt"
    cf.export_sampling_checkpoint(trainer, half, dtype=torch.float16)
    assert path.stat().st_size - half.stat().st_size >= 2 * params * 0.9  # 2 bytes per weight
    from_half = cf.load_generator(half)[0]
    assert from_half.sampler == loaded.sampler
    assert torch.equal(from_half.size_probs, loaded.size_probs)  # counts kept in float64
    assert len(cf.sample_molecules(from_half, 3, seed=1, steps=2, progress=False)[0]) == 3


def test_evaluation_rounds_keep_their_snapshots(tmp_path, cache, monkeypatch):
    """With eval_snapshots, each sample-and-evaluate round writes the EMA sampling checkpoint
    it sampled from (the weights of that step, loadable without the run), next to its row of
    evaluation.csv; without it, no snapshot is written."""
    from symgen.molecules import canonflow as cf

    monkeypatch.setenv("SYMGEN_CACHE", str(cache))
    common = dict(
        TINY_CONFIG,
        max_steps=4,
        ckpt_every=4,
        eval_every=2,
        eval_samples=3,
        sample_steps=2,
        cache_dir=str(cache),
    )
    run = tmp_path / "run"
    gen, trainer, _ = cf.train(cf.CanonFlowConfig(**common, out_dir=str(run), eval_snapshots=True))
    with (run / "evaluation.csv").open() as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [2, 4]
    snaps = sorted(p.name for p in (run / "snapshots").iterdir())
    assert snaps == ["step_0000002.pt", "step_0000004.pt"]
    first, _, state = cf.load_generator(run / "snapshots" / snaps[0])
    assert state["weights"] == "ema" and state["step"] == 2
    last, _, state = cf.load_generator(run / "snapshots" / snaps[1])
    assert state["step"] == 4
    with trainer.averaged():
        final = {k: v.clone() for k, v in gen.state_dict().items() if torch.is_tensor(v)}
    differs = False
    for key, value in last.state_dict().items():
        if torch.is_tensor(value) and value.is_floating_point():
            assert torch.equal(value, final[key]), f"the last snapshot is not the EMA: {key}"
            differs |= not torch.equal(value, first.state_dict()[key])
    assert differs, "the two rounds' snapshots hold the same weights"

    plain = tmp_path / "plain"
    cf.train(cf.CanonFlowConfig(**common, out_dir=str(plain)))
    assert (plain / "evaluation.csv").exists() and not (plain / "snapshots").exists()


def test_snapshots_of_rounds_a_run_redoes_are_dropped(tmp_path):
    """A new run deletes an old run's snapshots; a resumed run deletes those after its
    checkpoint's step (it will redo those rounds), and keeps the others."""
    from symgen.molecules import canonflow as cf
    from symgen.training import save_checkpoint

    folder = cf.snapshot_folder(tmp_path)
    folder.mkdir()
    for step in (2, 4, 6):
        (folder / f"step_{step:07d}.pt").write_bytes(b"x")
    save_checkpoint(tmp_path / "checkpoint.pt", {"step": 4})
    dropped = cf.drop_later_snapshots(tmp_path, resume=True)
    assert [p.name for p in dropped] == ["step_0000006.pt"]
    assert sorted(p.name for p in folder.iterdir()) == ["step_0000002.pt", "step_0000004.pt"]
    cf.drop_later_snapshots(tmp_path, resume=False)
    assert list(folder.iterdir()) == []
    assert cf.drop_later_snapshots(tmp_path / "nowhere", resume=False) == []


def test_snapshots_need_evaluation_rounds():
    from symgen.molecules import canonflow as cf

    with pytest.raises(ValueError, match="eval_snapshots"):
        cf.validate_config(cf.CanonFlowConfig(eval_snapshots=True, eval_every=0))
    with pytest.raises(ValueError, match="eval_samples"):
        cf.validate_config(cf.CanonFlowConfig(eval_every=5, eval_samples=0))


def test_long_overlay_continues_the_quick_recipe():
    """--config qm9_long on --preset quick changes the schedule, evaluation and output folder
    only: the method, network and sampler stay the quick preset's."""
    from symgen.molecules import canonflow as cf

    parser = argparse.ArgumentParser()
    cf.add_config_arguments(parser)
    quick = cf.resolve_config(parser.parse_args(["--preset", "quick"]))
    long = cf.resolve_config(parser.parse_args(["--preset", "quick", "--config", "qm9_long"]))
    changed = {
        f.name
        for f in dataclasses.fields(cf.CanonFlowConfig)
        if getattr(quick, f.name) != getattr(long, f.name)
    }
    assert changed == {
        "out_dir",
        "schedule_clock",
        "max_steps",
        "time_budget_min",
        "val_every",
        "eval_every",
        "eval_samples",
        "eval_snapshots",
    }
    assert long.schedule_clock == "steps" and long.time_budget_min == 0  # exact resume
    assert long.eval_snapshots and long.max_steps > 5 * 16_000


def test_recipe_cache_key_covers_the_canonicalizer(tmp_path, cache, monkeypatch):
    """Changing a canonicalizer setting rebuilds the canonical cache instead of reusing it."""
    from symgen.canon import geometric_spectral_canonicalizer
    from symgen.molecules import canonflow as cf

    monkeypatch.setenv("SYMGEN_CACHE", str(cache))
    cfg = cf.CanonFlowConfig(qm9_limit=400, val_limit=8, cache_dir=str(cache), progress=False)
    first = cf.prepare_data(cfg, progress=False)
    # the key of QM9's canonical cache is the one the first caches were written under
    assert (cache / "qm9" / "canonical_train-739be644356c6426.pt").is_file()
    again = cf.prepare_data(cfg, progress=False)
    assert not again.cache_built and torch.equal(again.train.pos, first.train.pos)
    monkeypatch.setattr(
        cf,
        "geometric_spectral_canonicalizer",
        lambda: geometric_spectral_canonicalizer(order_threshold=1e-3),
    )
    changed = cf.prepare_data(cfg, progress=False)
    assert changed.cache_built
    assert changed.flagged_share >= first.flagged_share  # a higher threshold flags more


@pytest.mark.parametrize(
    "script",
    [
        TRAIN,
        SAMPLE,
        ROOT / "examples" / "molecules" / "package_pretrained.py",
        *(
            ROOT / "benchmarks" / f"{name}.py"
            for name in (
                "canonical_vs_equivariant",
                "few_step",
                "drugs_canonical_vs_augment",
                "precision_quality",
                "compare_runs",
                "learning_curve",
            )
        ),
    ],
)
def test_help(script, cache):
    proc = _run([str(script), "--help"], cache)
    assert proc.returncode == 0 and "usage" in proc.stdout


def test_contradictory_config_is_rejected(tmp_path, cache):
    proc = _run(
        [str(TRAIN), "--canonicalize", "true", "--augment", "true", "--out-dir", str(tmp_path)],
        cache,
    )
    assert proc.returncode == 2
    assert "canonicalize and augment" in proc.stderr
    proc = _run([str(SAMPLE), "--checkpoint", str(tmp_path / "missing.pt")], cache)
    assert proc.returncode == 2 and "no checkpoint" in proc.stderr


def test_config_file_values_are_checked_like_flags(tmp_path, cache):
    """A TOML file bypasses argparse's choices; the recipe still names the bad value."""
    bad = tmp_path / "bad.toml"
    bad.write_text('precision = "half"\n')
    proc = _run([str(TRAIN), "--config", str(bad), "--out-dir", str(tmp_path / "o")], cache)
    assert proc.returncode == 2
    assert "precision must be one of" in proc.stderr and "'half'" in proc.stderr


def test_checkpoint_configs_old_and_unknown(tmp_path):
    """`amp` of older checkpoints becomes `precision`; fields this version lacks are named."""
    from symgen.molecules import canonflow as cf
    from symgen.training.checkpoint import save_checkpoint

    cfg = cf.CanonFlowConfig(qm9_limit=50, width=16, depth=1, heads=2, progress=False)
    config = dataclasses.asdict(cfg)
    del config["precision"]
    gen = cf.build_generator(cf.CanonFlowConfig(**{**config, "precision": "float32"}))
    ema = cf.ExponentialMovingAverage(gen)

    def checkpoint(name: str, **extra: object) -> Path:
        path = tmp_path / f"{name}.pt"
        run = {"recipe": "canonflow", "config": {**config, **extra}}
        state = {"format": "symgen-checkpoint/1", "step": 1, "run": run}
        save_checkpoint(path, {**state, "generator": gen.state_dict(), "ema": ema.state_dict()})
        return path

    for amp, expect in [(True, "bfloat16"), (False, "float32")]:
        _, loaded, _ = cf.load_generator(checkpoint(f"old_{expect}", amp=amp))
        assert loaded.precision == expect
    path = checkpoint("future", warp_drive=1)
    with pytest.raises(ValueError, match="warp_drive"):
        cf.load_generator(path)


def test_conditional_run_samples_with_a_condition(tmp_path, cache):
    """A run with --condition alpha,gap trains on the second half with the targets, stores
    their statistics in the checkpoint, and sample.py conditions on values in physical units;
    bad conditions fail with exit status 2 and a message naming the model's properties."""
    from symgen.molecules import canonflow as cf

    run_dir = tmp_path / "cond"
    proc = _run(
        [
            str(TRAIN),
            *TINY,
            "--max-steps",
            "3",
            "--ckpt-every",
            "3",
            "--condition",
            "alpha,gap",
            "--train-half",
            "second",
            "--cache-dir",
            str(cache),
            "--out-dir",
            str(run_dir),
        ],
        cache,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    gen, cfg, _ = cf.load_generator(run_dir / "checkpoint.pt")
    context = cf.property_context(gen)
    assert context is not None and context.names == ("alpha", "gap")
    assert gen.context_dim == 2 and cfg.train_half == "second"
    # the statistics and the size histogram describe the same molecules: the second half
    assert int(context.size_counts.sum()) == int(gen.size_probs.sum()) < 200
    out = tmp_path / "cond_samples"
    args = [
        str(SAMPLE),
        "--checkpoint",
        str(run_dir / "checkpoint.pt"),
        "--num",
        "4",
        "--steps",
        "2",
        "--no-progress",
        "--no-eval",
        "--out",
        str(out),
    ]
    proc = _run([*args, "--condition", "alpha=70,gap=6000", "--guidance", "2"], cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "conditioning on alpha = 70 Bohr^3, gap = 6000 meV" in proc.stderr
    record = json.loads((out / "sampling.json").read_text())
    assert record["condition"] == "alpha=70,gap=6000" and record["guidance"] == 2.0
    for bad, message in (
        ("mu=1", "not conditioned on 'mu'; its properties: alpha, gap"),
        ("alpha=x", "'x' is not a number"),
        ("alpha", "is not name=value"),
    ):
        proc = _run([*args, "--condition", bad], cache)
        assert proc.returncode == 2 and message in proc.stderr, (bad, proc.stderr[-500:])
    proc = _run([*args, "--guidance", "2"], cache)
    assert proc.returncode == 2 and "--guidance needs --condition" in proc.stderr
    # a property predictor scores the conditioned molecules: one error per given target
    from symgen.molecules.property_predictor import PredictorConfig, train_predictor
    from symgen.molecules.qm9 import load_qm9
    from symgen.training import TrainingConfig

    mols = load_qm9(cache, limit=400, progress=False).subset(np.arange(32))
    values = np.random.default_rng(0).normal(size=(32, 2)) + [70.0, 6000.0]
    train_predictor(
        mols,
        values,
        ["alpha", "gap"],
        config=PredictorConfig(node_in=8, width=8, depth=1),
        training=TrainingConfig(max_steps=1, batch_size=8, warmup_steps=1, progress=False),
        out_dir=tmp_path / "predictor",
    )
    predictor = ["--predictor", str(tmp_path / "predictor" / "checkpoint.pt")]
    proc = _run([*args, "--condition", "alpha=70", *predictor], cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "property alpha: target 70 Bohr^3, predictor's MAE" in proc.stdout
    record = json.loads((out / "sampling.json").read_text())
    assert list(record["property_mae"]) == ["alpha"]
    proc = _run([*args, *predictor], cache)
    assert proc.returncode == 2 and "--predictor needs --condition" in proc.stderr
    proc = _run([str(TRAIN), *TINY, "--condition", "beta", "--out-dir", str(tmp_path / "x")], cache)
    assert proc.returncode == 2 and "unknown QM9 properties ['beta']" in proc.stderr


def test_completion_run_samples_around_a_scaffold(tmp_path, cache):
    """A run with --fixed-parts fragments trains a completion model whose checkpoint carries
    p(n | k); sample.py --scaffold completes the first record of an SD file: every molecule
    starts with the scaffold's atoms where the file puts them, and the containment share is
    recorded. A scaffold for an ordinary model, a completion model without a scaffold, and a
    clashing scaffold fail with exit status 2 and say why."""
    from symgen.molecules import canonflow as cf
    from symgen.molecules import io as mio
    from symgen.molecules.fragments import scaffold_molecule
    from symgen.molecules.qm9 import load_qm9

    run_dir = tmp_path / "complete"
    base = [str(TRAIN), *TINY, "--max-steps", "3", "--ckpt-every", "3", "--cache-dir", str(cache)]
    proc = _run([*base, "--fixed-parts", "fragments", "--out-dir", str(run_dir)], cache)
    assert proc.returncode == 2 and "prior='gaussian'" in proc.stderr
    proc = _run(
        [*base, "--fixed-parts", "fragments", "--prior", "gaussian", "--out-dir", str(run_dir)],
        cache,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    gen, cfg, _ = cf.load_generator(run_dir / "checkpoint.pt")
    assert gen.fixed_parts is not None and cfg.fixed_parts == "fragments"
    assert gen.fixed_sizes is not None and float(gen.fixed_sizes.sum()) > 0
    mols = load_qm9(cache, limit=400, progress=False)
    scaffold = next(s for s in (scaffold_molecule(m) for m in mols) if s is not None)
    mio.write_sdf([scaffold], tmp_path / "scaffold.sdf")
    out = tmp_path / "completions"
    args = [
        str(SAMPLE),
        "--checkpoint",
        str(run_dir / "checkpoint.pt"),
        "--num",
        "3",
        "--steps",
        "2",
        "--no-progress",
        "--no-eval",
        "--out",
        str(out),
    ]
    proc = _run([*args, "--scaffold", str(tmp_path / "scaffold.sdf")], cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((out / "sampling.json").read_text())
    assert 0.0 <= record["scaffold"]["contains_scaffold"] <= 1.0
    k = scaffold.num_atoms
    for m in mio.read_sdf(out / "samples.sdf"):
        assert m.atomic_numbers[:k].tolist() == scaffold.atomic_numbers.tolist()
        np.testing.assert_allclose(m.positions[:k], scaffold.positions, atol=1e-3)
    proc = _run(args, cache)
    assert proc.returncode == 2 and "pass --scaffold" in proc.stderr
    clash = scaffold.positions.copy()
    clash[1] = clash[0] + 0.1
    mio.write_sdf([dataclasses.replace(scaffold, positions=clash)], tmp_path / "clash.sdf")
    proc = _run([*args, "--scaffold", str(tmp_path / "clash.sdf")], cache)
    assert proc.returncode == 2 and "clash" in proc.stderr, proc.stderr[-500:]
    plain = tmp_path / "plain"
    proc = _run([*base, "--out-dir", str(plain)], cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = _run(
        [
            *args[:2],
            str(plain / "checkpoint.pt"),
            *args[3:],
            "--scaffold",
            str(tmp_path / "scaffold.sdf"),
        ],
        cache,
    )
    assert proc.returncode == 2 and "--fixed-parts fragments" in proc.stderr
