"""Canonicalization vs augmentation on drug-sized molecules (moses3d), equal wall-clock, seeds.

Both methods train the ``drugs-quick`` preset's transformer on the same moses3d set with the
same prior (centred Gaussian), the same coupling (minibatch OT), the same learning rate and
schedule, for the same wall-clock budget; they differ in one thing: ``canonical`` trains on
canonical representatives (S_n × SE(3) canonicalizer), ``augment`` on the molecules as given
with a random S_n × SO(3) transform of every batch. For each seed the two methods train side
by side, one torch thread each (equal CPU per method), then sample ``--samples`` molecules at
``--sample-steps`` steps and score them under ``midi``, ``geom-revisited`` and
``symgen-composition``. The table gives mean ± standard error over seeds and the paired
difference; the exact commands are written next to it (``commands.txt``).

    python benchmarks/drugs_canonical_vs_augment.py --budget-min 10 --seeds 0 1 --samples 500
    python benchmarks/drugs_canonical_vs_augment.py --budget-min 0.5 --samples 8   # smoke
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

from _common import EX, ROOT, commit, last_value, machine, mean_se, side_by_side

METHODS = {
    "canonical": ["--canonicalize", "true", "--augment", "false"],
    "augment": ["--canonicalize", "false", "--augment", "true"],
}
SHARED = ["--prior", "centered", "--coupling", "ot"]
COLUMNS = [
    ("steps", "train steps"),
    ("val_loss", "val. loss"),
    ("midi/atom_stability", "atom st. (`midi`)"),
    ("midi/molecule_stability", "mol st. (`midi`)"),
    ("geom-revisited/molecule_stability", "mol st. (`geom-revisited`)"),
    ("midi/validity", "valid (`midi`)"),
    ("midi/connectivity", "connected (`midi`)"),
    ("geom-revisited/validity_and_connectivity", "V&C (`geom-revisited`)"),
    ("midi/uniqueness", "unique (`midi`)"),
]


def train_command(method: str, seed: int, args: argparse.Namespace, run_dir: Path) -> list[str]:
    return [
        sys.executable,
        str(EX / "train.py"),
        "--preset",
        "drugs-quick",
        *METHODS[method],
        *SHARED,
        "--seed",
        str(seed),
        "--data-molecules",
        str(args.data_molecules),
        "--time-budget-min",
        str(args.budget_min),
        "--threads",
        "1",
        "--eval-every",
        "0",
        "--val-every",
        str(args.val_every),
        "--final-samples",
        "0",
        "--progress",
        "false",
        "--tensorboard",
        "false",
        "--out-dir",
        str(run_dir),
    ]


def sample_command(run_dir: Path, args: argparse.Namespace) -> list[str]:
    return [
        sys.executable,
        str(EX / "sample.py"),
        "--checkpoint",
        str(run_dir / "checkpoint.pt"),
        "--num",
        str(args.samples),
        "--steps",
        str(args.sample_steps),
        "--out",
        str(run_dir / "samples"),
        "--threads",
        "1",
        "--no-progress",
        "--strain-molecules",
        "0",
        "--protocol",
        "midi",
        "geom-revisited",
        "symgen-composition",
    ]


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--budget-min", type=float, default=10.0, help="training minutes per run")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds (paired)")
    p.add_argument("--samples", type=int, default=500, help="molecules sampled per run")
    p.add_argument("--sample-steps", type=int, default=50, help="solver steps when sampling")
    p.add_argument("--data-molecules", type=int, default=20000, help="moses3d set size")
    p.add_argument("--val-every", type=int, default=500, help="steps between validation losses")
    p.add_argument("--out", default="runs/drugs_canonical_vs_augment", help="output folder")
    p.add_argument("--reuse", action="store_true", help="skip runs whose results exist")
    args = p.parse_args()
    out = ROOT / args.out
    out.mkdir(parents=True, exist_ok=True)
    commands: list[str] = []
    rows: dict[str, dict[int, dict[str, float]]] = {m: {} for m in METHODS}
    for seed in args.seeds:
        dirs = {m: out / f"{m}_seed{seed}" for m in METHODS}
        done = all((d / "samples" / "metrics.json").is_file() for d in dirs.values())
        if not (args.reuse and done):
            t0 = time.perf_counter()
            print(f"seed {seed}: training both methods for {args.budget_min} min ...", flush=True)
            side_by_side(
                [train_command(m, seed, args, d) for m, d in dirs.items()],
                [out / f"{m}_seed{seed}_train.log" for m in METHODS],
                commands,
            )
            print(f"seed {seed}: sampling {args.samples} molecules each ...", flush=True)
            side_by_side(
                [sample_command(d, args) for d in dirs.values()],
                [out / f"{m}_seed{seed}_sample.log" for m in METHODS],
                commands,
            )
            print(f"seed {seed}: done in {(time.perf_counter() - t0) / 60:.1f} min", flush=True)
        for m, d in dirs.items():
            metrics = json.loads((d / "samples" / "metrics.json").read_text())["metrics"]
            row = {k: metrics[k]["value"] for k, _ in COLUMNS if k in metrics}
            row["steps"] = last_value(d / "log.csv", "step")
            row["val_loss"] = last_value(d / "validation.csv", "loss")
            rows[m][seed] = row
    rev, where = commit(), machine()
    lines = [
        f"moses3d ({args.data_molecules} molecules), {args.budget_min} min of training per run, "
        f"two runs side by side with one thread each; {args.samples} samples at "
        f"{args.sample_steps} steps; seeds {args.seeds}; mean ± standard error over seeds; "
        f"commit {rev}; {where}",
        "",
        "| method | " + " | ".join(label for _, label in COLUMNS) + " |",
        "|---|" + "---:|" * len(COLUMNS),
    ]
    for m in METHODS:
        cells = []
        for key, _ in COLUMNS:
            vals = [rows[m][s].get(key, math.nan) for s in args.seeds]
            mu, se = mean_se(vals)
            cells.append(f"{mu:.3f} ± {se:.3f}" if key != "steps" else f"{mu:.0f} ± {se:.0f}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    cells = []
    for key, _ in COLUMNS:
        diffs = [
            rows["canonical"][s].get(key, math.nan) - rows["augment"][s].get(key, math.nan)
            for s in args.seeds
        ]
        mu, se = mean_se(diffs)
        cells.append(f"{mu:+.3f} ± {se:.3f}" if key != "steps" else f"{mu:+.0f} ± {se:.0f}")
    lines.append("| canonical − augment (paired) | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print("\n" + table)
    (out / "table.md").write_text(table + "\n")
    (out / "results.json").write_text(
        json.dumps({"commit": rev, "machine": where, "args": vars(args), "rows": rows}, indent=1)
    )
    if commands:
        (out / "commands.txt").write_text("\n".join(commands) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
