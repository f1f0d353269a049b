"""Same quality at equal steps: the README main job's recipe in float32 and in bfloat16.

Trains the ``quick`` preset once per precision and seed for the same number of optimizer steps
(a step-clock learning-rate schedule, so both precisions see the same schedule, batches and
noise draws), samples 1,000 molecules at the end (in the precision the run trained in) and
evaluates them. Along the way every ``--eval-every`` steps a small sample-and-evaluate round
records a learning curve (``evaluation.csv``) and the EMA validation loss (``validation.csv``).

Prints two Markdown tables, mean ± standard error over seeds: the final metrics per precision
with their difference, and the learning curve (EDM-protocol molecule stability and median MMFF
strain against steps). Runs that already finished (their ``metrics.json`` exists) are reused,
so an interrupted benchmark continues where it stopped.

    python benchmarks/precision_quality.py --steps 3000 --seeds 0 1 2
    python benchmarks/precision_quality.py --steps 200 --seeds 0 --final-samples 100   # smoke
"""

import argparse
import csv
import json
import math
import subprocess
import sys
import time
from pathlib import Path

from _common import EX, ROOT, mean_se

TRAIN = EX / "train.py"
FINAL = [
    ("edm/molecule_stability", "mol. stability (`edm`)"),
    ("edm/atom_stability", "atom stability (`edm`)"),
    ("edm/validity", "validity (`edm`)"),
    ("midi/molecule_stability", "mol. stability (`midi`)"),
    ("midi/validity", "validity (`midi`)"),
    ("midi/uniqueness", "uniqueness (`midi`)"),
    ("symgen-geometry-w1/bond_length_w1", "bond-length W1 (`symgen-geometry-w1`, Å)"),
    ("symgen-geometry-w1/bond_angle_w1", "bond-angle W1 (`symgen-geometry-w1`, °)"),
    ("mmff94-strain/mmff_strain_median", "median MMFF strain (`mmff94-strain`, kcal/mol)"),
]
CURVE = [
    ("edm/molecule_stability", "mol. stability (`edm`)"),
    ("midi/molecule_stability", "mol. stability (`midi`)"),
    ("mmff94-strain/mmff_strain_median", "median strain (`mmff94-strain`)"),
    ("val_loss", "validation loss (EMA)"),
]
PERCENT = ("stability", "validity", "uniqueness")


def fmt(values: list[float], scale: float = 1.0, digits: int = 3) -> str:
    mean, se = mean_se([v * scale for v in values])
    return f"{mean:.{digits}f}" if math.isnan(se) else f"{mean:.{digits}f} ± {se:.{digits}f}"


def train(args: argparse.Namespace, precision: str, seed: int, run_dir: Path) -> None:
    cmd = [
        sys.executable,
        str(TRAIN),
        "--preset",
        "quick",
        "--out-dir",
        str(run_dir),
        "--seed",
        str(seed),
        "--precision",
        precision,
        "--compile",
        "true" if args.compile else "false",
        "--schedule-clock",
        "steps",
        "--max-steps",
        str(args.steps),
        "--time-budget-min",
        "0",
        "--val-every",
        str(args.eval_every),
        "--eval-every",
        str(args.eval_every),
        "--eval-samples",
        str(args.eval_samples),
        "--final-samples",
        str(args.final_samples),
        "--threads",
        str(args.threads),
        "--tensorboard",
        "false",
        "--progress",
        "false",
    ]
    log = run_dir.parent / f"{run_dir.name}.log"
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with log.open("w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"training failed ({proc.returncode}), see {log}: {' '.join(cmd)}")
    print(f"  {run_dir.name}: {(time.perf_counter() - t0) / 60:.1f} min", flush=True)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def final_metrics(run_dir: Path) -> dict[str, float]:
    """The run's final evaluation (``metrics.json``), final training and validation loss."""
    report = json.loads((run_dir / "metrics.json").read_text())
    out = {k: float(v["value"]) for k, v in report["metrics"].items() if v["value"] is not None}
    out["train_loss"] = float(read_csv(run_dir / "log.csv")[-1]["loss_window"])
    out["val_loss"] = float(read_csv(run_dir / "validation.csv")[-1]["loss"])
    return out


def curve(run_dir: Path) -> dict[int, dict[str, float]]:
    """Per step: the sample-and-evaluate round and the validation loss."""
    points: dict[int, dict[str, float]] = {}
    for row in read_csv(run_dir / "evaluation.csv"):
        step = int(row["step"])
        points[step] = {k: float(v) for k, v in row.items() if k not in ("step", "") and v != ""}
    for row in read_csv(run_dir / "validation.csv"):
        points.setdefault(int(row["step"]), {})["val_loss"] = float(row["loss"])
    return points


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--steps", type=int, default=3000, help="optimizer steps of every run")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument(
        "--precisions", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"]
    )
    p.add_argument("--eval-every", type=int, default=1000, help="steps between curve points")
    p.add_argument("--eval-samples", type=int, default=200, help="molecules per curve point")
    p.add_argument("--final-samples", type=int, default=1000, help="molecules sampled at the end")
    p.add_argument(
        "--compile", action=argparse.BooleanOptionalAction, default=True, help="torch.compile"
    )
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--out", default="runs/precision_quality", help="output folder")
    p.add_argument("--json", default="", help="also write the per-run results to this file")
    args = p.parse_args()
    if args.steps < 1 or args.eval_every < 1 or args.final_samples < 1:
        p.error("--steps, --eval-every and --final-samples must be positive")
    out = ROOT / args.out
    results: dict[str, dict[int, dict]] = {prec: {} for prec in args.precisions}
    for seed in args.seeds:
        for prec in args.precisions:
            run_dir = out / f"{prec}_seed{seed}"
            if (run_dir / "metrics.json").exists():
                print(f"  {run_dir.name}: reusing the finished run", flush=True)
            else:
                print(f"training {run_dir.name} for {args.steps} steps ...", flush=True)
                train(args, prec, seed, run_dir)
            results[prec][seed] = {"final": final_metrics(run_dir), "curve": curve(run_dir)}

    precs = args.precisions
    print(
        f"\n{args.steps} steps, seeds {args.seeds}, {args.final_samples} molecules per run, "
        f"mean ± standard error over seeds\n"
    )
    print("| metric | " + " | ".join(precs) + (" | difference |" if len(precs) == 2 else " |"))
    print("|---|" + "---:|" * (len(precs) + (len(precs) == 2)))
    rows = [("train_loss", "training loss (last window)"), ("val_loss", "validation loss (EMA)")]
    for key, label in rows + FINAL:
        per = [[results[pr][s]["final"].get(key, math.nan) for s in args.seeds] for pr in precs]
        scale, digits = (100.0, 1) if key.endswith(PERCENT) else (1.0, 3)
        if key.endswith(("mmff_strain_median", "bond_angle_w1")):
            digits = 1 if key.endswith("mmff_strain_median") else 2
        cells = [fmt(v, scale, digits) for v in per]
        if len(precs) == 2:  # paired by seed: same batches and draws
            cells.append(fmt([b - a for a, b in zip(*per)], scale, digits))
        print(f"| {label} | " + " | ".join(cells) + " |")

    steps = sorted({st for pr in precs for s in args.seeds for st in results[pr][s]["curve"]})
    print("\nlearning curve (curve points: " + f"{args.eval_samples} molecules each)\n")
    head = [f"{label}, {pr}" for key, label in CURVE for pr in precs]
    print("| step | " + " | ".join(head) + " |")
    print("|---:|" + "---:|" * len(head))
    for step in steps:
        cells = []
        for key, _ in CURVE:
            for pr in precs:
                vals = [results[pr][s]["curve"].get(step, {}).get(key) for s in args.seeds]
                vals = [v for v in vals if v is not None]
                pct = key.endswith("molecule_stability")
                digits = 1 if pct or key.endswith("mmff_strain_median") else 3
                cells.append(fmt(vals, 100.0 if pct else 1.0, digits) if vals else "")
        print(f"| {step} | " + " | ".join(cells) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
