"""Quality against sampling steps for trained checkpoints (few-step generation).

Samples ``--samples`` molecules from each checkpoint at each step count with
``examples/molecules/sample.py`` (the run's own sampler settings: Euler, its time grid, token
temperature and re-noising; a shortcut-trained run asks for the average velocity over each step)
and scores them under ``midi`` (generated bonds and charges), ``edm`` (bonds from geometry),
``symgen-geometry-w1`` and ``mmff94-strain``. Rows run one after another with the same thread
count, so the molecules-per-second column compares like with like. Proportions carry their
binomial standard error over the samples (sampling noise only: one training run per row).

    python benchmarks/few_step.py --run plain=runs/quick/checkpoint.pt \\
        --run shortcut=runs/quick_shortcut/checkpoint.pt --steps 1 2 4 8 10 20 50 100
    # the ordinary many-step path of a shortcut-trained network (d = 0), at 100 steps:
    python benchmarks/few_step.py --run shortcut=runs/quick_shortcut/checkpoint.pt \\
        --steps 100 --instantaneous
    python benchmarks/few_step.py --run q=runs/quick/checkpoint.pt --samples 20 --steps 2  # smoke

The table, the JSON results and the exact commands go to ``--out`` (table.md, results.json,
commands.txt).
"""

import argparse
import json
import math
import sys
from pathlib import Path

from _common import ROOT, commit, machine, read_scores, run_logged, sample_command, sampled

PROTOCOLS = ["midi", "edm", "symgen-geometry-w1", "mmff94-strain"]
COLUMNS = [  # (metric, header, is a proportion)
    ("midi/molecule_stability", "mol st. (`midi`)", True),
    ("midi/validity", "valid (`midi`)", True),
    ("midi/valid_and_unique", "V&U (`midi`)", True),
    ("midi/connectivity", "connected (`midi`)", True),
    ("edm/molecule_stability", "mol st. (`edm`)", True),
    ("mmff94-strain/mmff_strain_median", "strain median kcal/mol (`mmff94-strain`)", False),
    ("symgen-geometry-w1/bond_length_w1", "bond length W1 Å (`symgen-geometry-w1`)", False),
    ("mol_per_s", "mol/s", False),
]


def parse_run(text: str) -> tuple[str, Path]:
    label, sep, path = text.partition("=")
    if not sep or not label or not path:
        raise argparse.ArgumentTypeError(f"--run takes LABEL=CHECKPOINT, got {text!r}")
    p = Path(path)
    if not p.is_absolute():
        p = Path.cwd() / p
    if not p.is_file():
        raise argparse.ArgumentTypeError(f"no checkpoint at {p}")
    return label, p


def cell(value: float | None, proportion: bool, n: int) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    if proportion:
        se = math.sqrt(max(value * (1 - value), 0.0) / n)
        return f"{100 * value:.1f} ± {100 * se:.1f} %"
    return f"{value:.3g}"


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--run",
        type=parse_run,
        action="append",
        required=True,
        metavar="LABEL=CHECKPOINT",
        help="a checkpoint to sample, with its row label (repeat for several)",
    )
    p.add_argument(
        "--steps",
        type=int,
        nargs="+",
        default=[1, 2, 4, 8, 10, 20, 50, 100],
        help="sampling step counts (default: 1 2 4 8 10 20 50 100)",
    )
    p.add_argument("--samples", type=int, default=1000, help="molecules per row (default 1000)")
    p.add_argument(
        "--instantaneous",
        action="store_true",
        help="shortcut-trained runs take the ordinary path: every step asks for the "
        "instantaneous velocity (sample.py --no-shortcut)",
    )
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--out", default="runs/few_step", help="output folder")
    p.add_argument(
        "--reuse", action="store_true", help="keep rows whose sample folder is already scored"
    )
    args = p.parse_args()
    if any(s < 1 for s in args.steps) or args.samples < 1:
        p.error("--steps and --samples must be positive")
    out = Path(args.out)
    out = out if out.is_absolute() else ROOT / out
    out.mkdir(parents=True, exist_ok=True)
    extra = ["--seed", str(args.seed)] + (["--no-shortcut"] if args.instantaneous else [])
    suffix = "_d0" if args.instantaneous else ""
    commands: list[str] = []
    rows = []
    for label, ckpt in args.run:
        for steps in args.steps:
            folder = out / f"{label}{suffix}_steps{steps}"
            if not (args.reuse and sampled(folder)):
                print(f"[{label}] {args.samples} molecules at {steps} steps", flush=True)
                cmd = sample_command(
                    ckpt,
                    folder,
                    num=args.samples,
                    steps=steps,
                    threads=args.threads,
                    protocols=PROTOCOLS,
                    extra=extra,
                )
                run_logged(cmd, out / f"{label}{suffix}_steps{steps}.log", commands)
            scores = read_scores(folder)
            rows.append(
                {
                    "label": label + (" (d = 0)" if args.instantaneous else ""),
                    "checkpoint": str(ckpt),
                    "steps": steps,
                    **scores,
                }
            )
    rev, where = commit(), machine()
    header = ["run", "steps"] + [h for _, h, _ in COLUMNS]
    lines = [
        f"{args.samples} samples per row, sampling seed {args.seed}, {args.threads} threads; "
        f"± is the binomial standard error over the samples; commit {rev}; {where}",
        "",
        "| " + " | ".join(header) + " |",
        "|---|---:|" + "---:|" * len(COLUMNS),
    ]
    for r in rows:
        cells = [cell(r.get(k), prop, args.samples) for k, _, prop in COLUMNS]
        lines.append(f"| {r['label']} | {r['steps']} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print("\n" + table)
    name = "table_d0" if args.instantaneous else "table"
    (out / f"{name}.md").write_text(table + "\n")
    (out / f"results{suffix}.json").write_text(
        json.dumps(
            {
                "commit": rev,
                "machine": where,
                "args": vars(args) | {"run": [[lbl, str(c)] for lbl, c in args.run]},
                "rows": rows,
            },
            indent=1,
        )
    )
    if commands:
        with (out / "commands.txt").open("a") as f:
            f.write("\n".join(commands) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
