"""QM9 property-conditional generation under EDM's protocol (Hoogeboom et al. 2022, Sec. 5.2).

Protocol:

1. QM9's training split (the Cormorant/EDM split) is cut in two halves in its stored order.
2. A property predictor (:mod:`symgen.molecules.property_predictor`, an invariant EGNN on atom
   types and coordinates; one network with six outputs and 4 layers, where EDM trained one
   7-layer network per property) is trained on the **first** half for α, Δε, HOMO, LUMO, μ and
   Cv (EDM's units).
3. A conditional CanonFlow (the README main job's recipe with ``--condition`` on all six
   properties) is trained on the **second** half. Single targets are masked at random during
   training (``--target-dropout``), so that the one model can be asked for one property at a
   time as EDM's six models were.
4. For each property, ``--samples`` (size, target) pairs are drawn jointly from the second half;
   the model generates one molecule per pair conditioned on that property alone; the
   predictor's mean absolute error between its prediction on the generated molecule and the
   target is reported.
5. Reference rows from the same predictor: "Data" (its error on the second half's real
   molecules, which it never saw: the lower bound) and "U-bound" (the same molecules with the
   targets shuffled: no information about the property). The target of the issue is an error
   at most half-way from "Data" to "U-bound"; the table prints that fraction.
6. Molecule stability (``edm`` and ``midi`` protocols) of the conditional samples, and of the
   same network's unconditional samples (context masked) at the same budget.
7. A guidance-scale sweep on one property: its error against molecule stability.

EDM's published errors are printed beside ours, labelled as measured with their predictor:
numbers from two different predictors are not comparable beyond their order of magnitude.

    python benchmarks/conditional_qm9.py --out runs/conditional_qm9             # ~90 CPU-min
    python benchmarks/conditional_qm9.py --out runs/cqm9_smoke --qm9-limit 3000 \\
        --predictor-min 0.3 --generator-min 0.3 --samples 20 --steps 4             # smoke

Each stage is skipped when its result exists (rerun the same command to resume); the commands
run, the table (table.md) and every number (results.json) go to ``--out``.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _common import ROOT, machine, one_commit, quick_train_command

from symgen.molecules import canonflow as cf
from symgen.molecules.featurize import FeatureLayout
from symgen.molecules.property_predictor import (
    PredictorConfig,
    load_predictor,
    predict_molecules,
    train_predictor,
)
from symgen.molecules.qm9 import load_qm9_split
from symgen.molecules.qm9_properties import QM9_PROPERTIES, QM9_PROPERTY_NAMES, qm9_properties_for
from symgen.training import TrainingConfig

#: EDM's Table 3 row "EDM" (their predictor; α Bohr³, Δε/HOMO/LUMO meV, μ D, Cv cal/(mol K)).
EDM_PUBLISHED = {"alpha": 2.76, "gap": 655, "homo": 356, "lumo": 584, "mu": 1.111, "Cv": 1.101}


def halves(args: argparse.Namespace) -> tuple:
    """QM9 train split, its two halves (indices) and the validation molecules."""
    kw = {"progress": False, "limit": args.qm9_limit or None}
    train = load_qm9_split("train", **kw)
    valid = load_qm9_split("valid", **kw)
    first = cf.train_half_indices(len(train), "first")
    second = cf.train_half_indices(len(train), "second")
    return train, first, second, valid.subset(np.arange(min(len(valid), 2000)))


def stage_predictor(args: argparse.Namespace, out: Path, data: tuple) -> None:
    folder = out / "predictor"
    if (folder / "done").exists():
        return
    train, first, _, valid = data
    names = list(QM9_PROPERTY_NAMES)
    limit = {"limit": args.qm9_limit or None}
    values = qm9_properties_for(train.ids[first], names, **limit)
    val_values = qm9_properties_for(valid.ids, names, **limit)
    training = TrainingConfig(
        max_steps=10**9,
        batch_size=64,
        lr=args.predictor_lr,
        warmup_steps=100,
        time_budget_s=args.predictor_min * 60,
        schedule_clock="time",
        ema_decay=0.999,
        val_every=1000,
        ckpt_every=500,
        seed=0,
        device=args.device,
        progress=not args.no_progress,
    )
    t0 = time.perf_counter()
    _, trainer = train_predictor(
        train.subset(first),
        values,
        names,
        config=PredictorConfig(
            node_in=FeatureLayout.qm9().node_dim,
            width=args.predictor_width,
            depth=args.predictor_depth,
        ),
        training=training,
        out_dir=folder,
        val=valid,
        val_values=val_values,
        resume=(folder / "checkpoint.pt").exists(),
    )
    (folder / "done").write_text(
        f"{trainer.step} steps, {trainer.train_seconds / 60:.1f} min of training, "
        f"{(time.perf_counter() - t0) / 60:.1f} min wall\n"
    )


def start_generator(
    args: argparse.Namespace, out: Path, record: list[str]
) -> tuple[subprocess.Popen, object] | None:
    """Start the conditional CanonFlow training in the background (one thread), unless done."""
    folder = out / "generator"
    if (folder / "done").exists():
        return None
    extra = [
        "--condition",
        ",".join(QM9_PROPERTY_NAMES),
        "--train-half",
        "second",
        "--target-dropout",
        str(args.target_dropout),
        "--context-dropout",
        str(args.context_dropout),
    ]
    cmd = quick_train_command(
        folder, args.generator_min, device=args.device, qm9_limit=args.qm9_limit, extra=extra
    )
    cmd += shlex.split(args.generator_args)
    folder.mkdir(parents=True, exist_ok=True)
    record.append(shlex.join(cmd))
    log = (out / "generator.log").open("w")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    return proc, log


def finish_generator(out: Path, started: tuple[subprocess.Popen, object] | None) -> None:
    if started is None:
        return
    proc, log = started
    code = proc.wait()
    log.close()  # type: ignore[attr-defined]
    if code != 0:
        raise SystemExit(f"the generator's training failed ({code}); see {out / 'generator.log'}")
    (out / "generator" / "done").write_text("trained\n")


def _stability(mols: list, reference: cf.Reference) -> dict[str, float]:
    rep = cf.evaluate_molecules(mols, reference, strain_molecules=0, protocols=["edm", "midi"])
    return {
        "edm_molecule_stability": float(rep.get("edm/molecule_stability")),
        "midi_molecule_stability": float(rep.get("midi/molecule_stability")),
        "midi_validity": float(rep.get("midi/validity")),
    }


def stage_evaluate(args: argparse.Namespace, out: Path, data: tuple) -> dict:
    train, _, second, _ = data
    names = list(QM9_PROPERTY_NAMES)
    limit = {"limit": args.qm9_limit or None}
    predictor = load_predictor(out / "predictor" / "checkpoint.pt").to(args.device)
    gen, cfg, state = cf.load_generator(out / "generator" / "checkpoint.pt", device=args.device)
    held = train.subset(second)
    truth = qm9_properties_for(held.ids, names, **limit)
    rng = np.random.default_rng(args.seed)
    k = min(len(held), args.data_molecules)
    pick = rng.choice(len(held), size=k, replace=False)
    pred = predict_molecules(predictor, held.subset(pick))
    data_mae = np.abs(pred - truth[pick]).mean(0)
    shuffled = truth[pick][rng.permutation(k)]
    ubound_mae = np.abs(pred - shuffled).mean(0)
    reference = cf.load_reference(cfg)
    results: dict = {
        "data_mae": dict(zip(names, data_mae.tolist())),
        "ubound_mae": dict(zip(names, ubound_mae.tolist())),
        "generator_step": int(state["step"]),
        "generator_train_min": float(state.get("train_seconds", float("nan"))) / 60,
        "conditional": {},
        "sweep": {},
    }
    sizes_all = held.num_atoms
    for i, name in enumerate(names):
        idx = rng.choice(len(held), size=args.samples, replace=True)
        targets = np.full((args.samples, len(names)), np.nan)
        targets[:, i] = truth[idx, i]
        mols, rate = cf.sample_molecules(
            gen,
            args.samples,
            seed=args.seed + i,
            targets=targets,
            sizes=sizes_all[idx].tolist(),
            guidance=args.guidance,
            steps=args.steps,
            progress=not args.no_progress,
        )
        mae = _mae(predict_molecules(predictor, mols)[:, i], targets[:, i])
        results["conditional"][name] = {
            **mae,
            "mol_per_s": rate,
            **_stability(mols, reference),
        }
        print(f"{name}: MAE {mae['mae']:.4g} {QM9_PROPERTIES[name].unit}", flush=True)
    mols, rate = cf.sample_molecules(
        gen, args.samples, seed=args.seed + 100, steps=args.steps, progress=not args.no_progress
    )
    results["unconditional"] = {"mol_per_s": rate, **_stability(mols, reference)}
    j = names.index(args.sweep_property)
    idx = rng.choice(len(held), size=args.samples, replace=True)
    targets = np.full((args.samples, len(names)), np.nan)
    targets[:, j] = truth[idx, j]
    for w in args.guidance_sweep:
        mols, rate = cf.sample_molecules(
            gen,
            args.samples,
            seed=args.seed + 200,
            targets=targets,
            sizes=sizes_all[idx].tolist(),
            guidance=w,
            steps=args.steps,
            progress=not args.no_progress,
        )
        mae = _mae(predict_molecules(predictor, mols)[:, j], targets[:, j])
        results["sweep"][f"{w:g}"] = {**mae, "mol_per_s": rate, **_stability(mols, reference)}
    return results


def _mae(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Mean absolute error and its standard error over the molecules."""
    err = np.abs(np.asarray(pred) - np.asarray(target))
    return {"mae": float(err.mean()), "mae_se": float(err.std(ddof=1) / np.sqrt(len(err)))}


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"


def table(results: dict, args: argparse.Namespace) -> str:
    names = list(QM9_PROPERTY_NAMES)
    units = [QM9_PROPERTIES[n].unit for n in names]
    head = "| row | " + " | ".join(f"{n} ({u})" for n, u in zip(names, units)) + " |"
    lines = [head, "|---" * (len(names) + 1) + "|"]
    cond = results["conditional"]
    lines.append(
        "| Data (our predictor, real molecules: lower bound) | "
        + " | ".join(_fmt(results["data_mae"][n]) for n in names)
        + " |"
    )
    lines.append(
        f"| CanonFlow conditional, w = {args.guidance:g} (our predictor) | "
        + " | ".join(f"{_fmt(cond[n]['mae'])} ± {_fmt(cond[n]['mae_se'])}" for n in names)
        + " |"
    )
    lines.append(
        "| U-bound (our predictor, shuffled targets) | "
        + " | ".join(_fmt(results["ubound_mae"][n]) for n in names)
        + " |"
    )
    frac = [
        (cond[n]["mae"] - results["data_mae"][n])
        / max(results["ubound_mae"][n] - results["data_mae"][n], 1e-12)
        for n in names
    ]
    lines.append(
        "| fraction of the way from Data to U-bound (target ≤ 0.5) | "
        + " | ".join(f"{f:.2f}" for f in frac)
        + " |"
    )
    lines.append(
        "| EDM, published (their predictor: not comparable row by row) | "
        + " | ".join(_fmt(EDM_PUBLISHED[n]) for n in names)
        + " |"
    )
    lines += [
        "",
        "| samples | mol. stability (`edm`) | mol. stability (`midi`) | validity (`midi`) |",
        "|---|---|---|---|",
    ]
    for n in names:
        c = cond[n]
        lines.append(
            f"| conditioned on {n} | {100 * c['edm_molecule_stability']:.1f} % | "
            f"{100 * c['midi_molecule_stability']:.1f} % | {100 * c['midi_validity']:.1f} % |"
        )
    u = results["unconditional"]
    lines.append(
        f"| same network, unconditional | {100 * u['edm_molecule_stability']:.1f} % | "
        f"{100 * u['midi_molecule_stability']:.1f} % | {100 * u['midi_validity']:.1f} % |"
    )
    lines += [
        "",
        f"| guidance w ({args.sweep_property}) | MAE ({QM9_PROPERTIES[args.sweep_property].unit}) "
        "| mol. stability (`midi`) | mol. stability (`edm`) |",
        "|---|---|---|---|",
    ]
    for w, r in results["sweep"].items():
        lines.append(
            f"| {w} | {_fmt(r['mae'])} ± {_fmt(r['mae_se'])} | "
            f"{100 * r['midi_molecule_stability']:.1f} % | "
            f"{100 * r['edm_molecule_stability']:.1f} % |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", type=Path, default=Path("runs/conditional_qm9"), help="output folder")
    p.add_argument("--predictor-min", type=float, default=30.0, help="predictor training minutes")
    p.add_argument("--predictor-width", type=int, default=128, help="predictor EGNN width")
    p.add_argument(
        "--predictor-depth",
        type=int,
        default=4,
        help="predictor EGNN layers (EDM's has 7; 4 take more steps in 30 CPU-minutes)",
    )
    p.add_argument("--predictor-lr", type=float, default=5e-4, help="predictor learning rate")
    p.add_argument("--generator-min", type=float, default=30.0, help="generator training minutes")
    p.add_argument("--generator-args", default="", help="extra train.py flags for the generator")
    p.add_argument(
        "--target-dropout", type=float, default=0.8, help="share of single targets masked"
    )
    p.add_argument(
        "--context-dropout", type=float, default=0.1, help="share of whole contexts masked"
    )
    p.add_argument("--samples", type=int, default=1000, help="generated molecules per property")
    p.add_argument("--steps", type=int, default=50, help="sampling steps")
    p.add_argument("--guidance", type=float, default=1.0, help="guidance scale of the main table")
    p.add_argument("--sweep-property", default="alpha", choices=QM9_PROPERTY_NAMES)
    p.add_argument("--guidance-sweep", type=float, nargs="+", default=[0.0, 1.0, 2.0, 4.0])
    p.add_argument("--data-molecules", type=int, default=10000, help="molecules of the Data row")
    p.add_argument("--qm9-limit", type=int, default=0, help="parse only N QM9 molecules (smoke)")
    p.add_argument("--seed", type=int, default=0, help="seed of the target draws and sampling")
    p.add_argument("--eval-threads", type=int, default=2, help="torch threads of the evaluation")
    p.add_argument("--device", default="cpu", help="torch device of training and sampling")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    args = p.parse_args(argv)
    if min(args.predictor_min, args.generator_min) <= 0 or args.samples < 1 or args.steps < 1:
        p.error("--predictor-min, --generator-min, --samples and --steps must be positive")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    here = one_commit(out)
    record: list[str] = [shlex.join([sys.executable, *sys.argv])]
    data = halves(args)
    # the two trainings run side by side, one thread each (30 CPU-minutes each by default)
    torch.set_num_threads(1)
    started = start_generator(args, out, record)
    try:
        stage_predictor(args, out, data)
    except BaseException:
        if started is not None:
            started[0].terminate()
        raise
    finish_generator(out, started)
    torch.set_num_threads(args.eval_threads)
    results = stage_evaluate(args, out, data)
    results.update(commit=here, machine=machine(), args={k: str(v) for k, v in vars(args).items()})
    text = table(results, args)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "table.md").write_text(
        f"QM9 conditional generation (EDM protocol), commit {here}, {machine()}\n\n{text}"
    )
    (out / "commands.txt").write_text("\n".join(record) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
