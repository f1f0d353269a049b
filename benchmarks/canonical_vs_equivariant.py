"""Head-to-head at equal wall-clock: CanonFlow vs augmentation-only vs EGNN (vs e3nn).

Each method is trained by ``examples/molecules/train.py`` with the ``quick`` preset and its own
method config, for the same wall-clock budget on this machine; then 1,000 molecules are sampled
at 10, 20, 50 and 100 steps by ``examples/molecules/sample.py`` and evaluated. One table:
steps taken, final training loss, atom/molecule stability (``edm`` protocol, bonds from geometry,
and ``midi`` protocol, generated bonds and charges), validity, uniqueness, MMFF strain,
molecules per second.

    python benchmarks/canonical_vs_equivariant.py --budget-min 8 --samples 1000
    # smoke test:
    python benchmarks/canonical_vs_equivariant.py --budget-min 1 --samples 50 --steps 10 20

On a 2-core machine two methods can train side by side, one thread each (equal CPU per method):

    python benchmarks/canonical_vs_equivariant.py --threads 1 --methods canonflow augment &
    python benchmarks/canonical_vs_equivariant.py --threads 1 --methods egnn --results egnn.json
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EX = ROOT / "examples" / "molecules"
METHODS = {
    "canonflow": [],
    "augment": ["--config", "augment_only"],
    "egnn": ["--config", "egnn_baseline"],
    "e3nn": ["--config", "e3nn_baseline"],
}
COLUMNS = [
    ("steps", "train steps"),
    ("loss", "loss"),
    ("edm/atom_stability", "atom st. (`edm`)"),
    ("edm/molecule_stability", "mol st. (`edm`)"),
    ("midi/molecule_stability", "mol st. (`midi`)"),
    ("edm/validity", "valid (`edm`)"),
    ("midi/validity", "valid (`midi`)"),
    ("midi/uniqueness", "unique (`midi`)"),
    ("mmff94-strain/mmff_strain_median", "strain median (`mmff94-strain`)"),
    ("mol_per_s", "mol/s"),
]


def train_command(name: str, args: argparse.Namespace, run_dir: Path, *extra: str) -> list[str]:
    """``train.py`` with the quick preset and the method's config, no final sampling.

    Every method trains in float32, eagerly, with AdamW's default kernel, on a step-clock
    schedule calibrated to the budget and without periodic evaluations: the settings of the
    published head-to-head (the preset's bfloat16, compile, fused AdamW, time clock and
    learning curve came later and are not tuned for the baselines).
    """
    return [
        sys.executable,
        str(EX / "train.py"),
        "--preset",
        "quick",
        *METHODS[name],
        "--precision",
        "float32",
        "--compile",
        "false",
        "--schedule-clock",
        "steps",
        "--fused-optimizer",
        "false",
        "--eval-every",
        "0",
        "--out-dir",
        str(run_dir),
        "--final-samples",
        "0",
        "--device",
        args.device,
        "--threads",
        str(args.threads),
        "--progress",
        "false",
        *extra,
    ]


def calibrated_steps(name: str, args: argparse.Namespace, out: Path) -> int:
    """Schedule length that fits the budget: measured steps/s of a short run × budget × 0.95."""
    cal = out / f"{name}_calibration"
    run(
        train_command(
            name,
            args,
            cal,
            "--max-steps",
            str(args.calibration_steps),
            "--log-every",
            "25",
            "--val-every",
            "0",
            "--tensorboard",
            "false",
        ),
        out / f"{name}_calibration.log",
    )
    with (cal / "log.csv").open() as f:
        rows = list(csv.DictReader(f))[1:]  # the first window includes warm-up
    rates = sorted(float(r["graphs_per_s"]) for r in rows)
    batch = json.loads((cal / "config.json").read_text())["batch_size"]
    steps_per_s = rates[len(rates) // 2] / batch
    return max(1, int(0.95 * steps_per_s * args.budget_min * 60))


def run(cmd: list[str], log: Path) -> None:
    with log.open("w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}), see {log}: {' '.join(cmd)}")


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--budget-min", type=float, default=8.0, help="training wall-clock minutes per method"
    )
    p.add_argument("--samples", type=int, default=1000, help="molecules sampled per step count")
    p.add_argument(
        "--steps", type=int, nargs="+", default=[10, 20, 50, 100], help="sampling step counts"
    )
    p.add_argument(
        "--methods", nargs="+", default=["canonflow", "augment", "egnn"], choices=sorted(METHODS)
    )
    p.add_argument("--out", default="runs/head_to_head", help="output folder")
    p.add_argument(
        "--results",
        default="results.json",
        help="results file name inside --out (separate names let methods run in parallel)",
    )
    p.add_argument(
        "--max-steps",
        type=int,
        default=0,
        help="learning-rate schedule length in steps, the same for every method (0: each "
        "method's own length, calibrated so that its schedule completes within the budget)",
    )
    p.add_argument(
        "--calibration-steps",
        type=int,
        default=100,
        help="steps of the short run that measures each method's throughput (default 100)",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2, help="torch threads per process")
    p.add_argument(
        "--skip-training", action="store_true", help="reuse the checkpoints already in --out"
    )
    p.add_argument(
        "--reuse-finished",
        action="store_true",
        help="skip training for methods whose run folder already has a finished training",
    )
    p.add_argument(
        "--reuse-samples",
        action="store_true",
        help="skip sampling for step counts whose sample folder already has metrics",
    )
    args = p.parse_args()
    out = ROOT / args.out
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.methods:
        run_dir = out / name
        finished = (run_dir / "checkpoint.pt").exists() and (out / f"{name}_train.done").exists()
        if not args.skip_training and not (args.reuse_finished and finished):
            max_steps = args.max_steps or calibrated_steps(name, args, out)
            t0 = time.perf_counter()
            print(
                f"[{name}] training for {args.budget_min} min, schedule {max_steps} steps ...",
                flush=True,
            )
            run(
                train_command(
                    name,
                    args,
                    run_dir,
                    "--time-budget-min",
                    str(args.budget_min),
                    "--max-steps",
                    str(max_steps),
                ),
                out / f"{name}_train.log",
            )
            print(f"[{name}] trained in {(time.perf_counter() - t0) / 60:.1f} min", flush=True)
            (out / f"{name}_train.done").write_text("ok\n")
        with (run_dir / "log.csv").open() as f:
            last = list(csv.DictReader(f))[-1]
        for steps in args.steps:
            sdir = run_dir / f"samples_{steps}"
            done = (sdir / "metrics.json").exists() and (sdir / "sampling.json").exists()
            if args.reuse_samples and done:
                print(f"[{name}] reusing the samples in {sdir}", flush=True)
            else:
                print(f"[{name}] sampling {args.samples} molecules with {steps} steps", flush=True)
                run(
                    [
                        sys.executable,
                        str(EX / "sample.py"),
                        "--checkpoint",
                        str(run_dir / "checkpoint.pt"),
                        "--num",
                        str(args.samples),
                        "--steps",
                        str(steps),
                        "--out",
                        str(sdir),
                        "--device",
                        args.device,
                        "--no-progress",
                        "--threads",
                        str(args.threads),
                        "--protocol",
                        "edm",
                        "midi",
                        "symgen-geometry-w1",
                        "mmff94-strain",
                    ],
                    out / f"{name}_sample_{steps}.log",
                )
            metrics = json.loads((sdir / "metrics.json").read_text())["metrics"]
            rate = json.loads((sdir / "sampling.json").read_text())["molecules_per_second"]
            row = {
                "method": name,
                "sample_steps": steps,
                "steps": int(last["step"]),
                "loss": float(last["loss"]),
                "mol_per_s": rate,
            }
            for key, _ in COLUMNS:
                if key in metrics:
                    row[key] = metrics[key]["value"]
            rows.append(row)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    machine = f"{os.cpu_count()} CPUs, {args.threads} torch threads per process, {args.device}"
    (out / args.results).write_text(
        json.dumps(
            {
                "budget_min": args.budget_min,
                "samples": args.samples,
                "commit": commit,
                "machine": machine,
                "rows": rows,
            },
            indent=2,
        )
    )
    header = ["method", "sample steps"] + [label for _, label in COLUMNS]
    print("\n| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        cells = [r["method"], str(r["sample_steps"])]
        for key, _ in COLUMNS:
            v = r.get(key)
            cells.append("n/a" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v)))
        print("| " + " | ".join(cells) + " |")
    print(
        f"\nbudget {args.budget_min} min per method; {args.samples} samples per row; "
        f"commit {commit}; {machine}; results in {out / args.results}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
