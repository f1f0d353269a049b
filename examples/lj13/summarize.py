"""Mean ± standard error over seeds of several LJ13 runs (``run.py --seed S --out DIR``).

Reads each run's ``report.json`` and prints one Markdown table: every row of the runs' tables
with the mean over seeds and, for two seeds or more, the standard error of the mean; then each
seed's row for the three headline energy W1 columns, so that seed-to-seed spread stays visible.

    python examples/lj13/run.py --seed 0 --threads 1 --out runs/lj13_seed0 &
    python examples/lj13/run.py --seed 1 --threads 1 --out runs/lj13_seed1
    python examples/lj13/summarize.py runs/lj13_seed0 runs/lj13_seed1
"""

import argparse
import json
import math
import sys
from pathlib import Path

COLUMNS = [  # (key, header, format)
    ("steps", "train steps", "{:.0f}"),
    ("w1_energy", "W1 energy, 50 steps", "{:.2f}"),
    ("w1_energy_steps1", "W1 energy, 1 step", "{:.2f}"),
    ("w1_energy_steps4", "W1 energy, 4 steps", "{:.2f}"),
    ("w1_distance", "W1 pair dist.", "{:.4f}"),
    ("median_energy", "median E", "{:.2f}"),
    ("clash_free", "E < 50", "{:.3f}"),
]
PER_SEED = ("w1_energy", "w1_energy_steps1", "w1_energy_steps4")


def mean_se(values: list[float]) -> tuple[float, float]:
    n = len(values)
    m = sum(values) / n
    if n < 2:
        return m, math.nan
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1) / n)


def summarize(folders: list[Path]) -> str:
    reports = [json.loads((f / "report.json").read_text()) for f in folders]
    seeds = [r["config"]["seed"] for r in reports]
    names = list(dict.fromkeys(n for r in reports for n in r["rows"]))
    lines = [
        f"LJ13, seeds {seeds}, mean ± standard error over seeds "
        f"({reports[0]['config']['budget_seconds']:g} s of training per method, "
        f"{reports[0]['config']['samples']} samples per row)",
        "",
        "| method | " + " | ".join(h for _, h, _ in COLUMNS) + " |",
        "|---|" + "---:|" * len(COLUMNS),
    ]
    for name in names:
        cells = []
        for key, _, fmt in COLUMNS:
            vals = [float(r["rows"][name][key]) for r in reports if key in r["rows"].get(name, {})]
            if not vals:
                cells.append("–")
                continue
            m, se = mean_se(vals)
            cells.append(fmt.format(m) + ("" if math.isnan(se) else " ± " + fmt.format(se)))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "| method | seed | " + " | ".join(h for k, h, _ in COLUMNS if k in PER_SEED)]
    lines[-1] += " |"
    lines.append("|---|---:|" + "---:|" * len(PER_SEED))
    for name in names:
        for r in reports:
            row = r["rows"].get(name, {})
            if "steps" not in row:
                continue
            cells = [f"{row[k]:.2f}" for k in PER_SEED if k in row]
            lines.append(f"| {name} | {r['config']['seed']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("runs", nargs="+", type=Path, help="output folders of run.py")
    args = p.parse_args(argv)
    missing = [str(f) for f in args.runs if not (f / "report.json").is_file()]
    if missing:
        p.error(f"no report.json in {', '.join(missing)}")
    print(summarize(args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
