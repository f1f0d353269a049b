"""One Markdown table of the evaluator's metrics from several runs, side by side.

Each argument is ``LABEL=PATH``, where PATH is a ``metrics.json`` written by
``examples/molecules/train.py`` / ``sample.py`` / ``python -m symgen.molecules.evaluate``, or
the run folder holding it. Rows name each metric's protocol; rates are printed in percent.
With ``--train-log``, the steps and final training loss come from each run folder's
``log.csv`` as well.

    python benchmarks/compare_runs.py before=runs/old/quick after=runs/quick
    python benchmarks/compare_runs.py --train-log f32=runs/f32 bf16=runs/bf16 \\
        "bf16, 100 steps=runs/bf16/s100/metrics.json"
"""

import argparse
import csv
import json
import sys
from pathlib import Path

# (metric, label, percent?) in the order the table shows them
ROWS = [
    ("molecule_stability", "molecule stability", True),
    ("atom_stability", "atom stability", True),
    ("validity", "validity", True),
    ("connected_validity", "connected validity", True),
    ("molecule_stability_given_bonds", "molecule stability", True),
    ("atom_stability_given_bonds", "atom stability", True),
    ("validity_given_bonds", "validity", True),
    ("connected_validity_given_bonds", "connected validity", True),
    ("uniqueness_given_bonds", "uniqueness (of valid)", True),
    ("novelty_given_bonds", "novelty (of valid and unique)", True),
    ("novelty", "novelty (of valid and unique)", True),
    ("bond_length_w1", "bond-length W1 (Å)", False),
    ("bond_angle_w1", "bond-angle W1 (°)", False),
    ("atom_type_tv", "atom-type total variation", False),
    ("mmff_strain_median", "median MMFF94 strain (kcal/mol)", False),
]


def load(path: Path) -> dict:
    """The ``metrics`` mapping of a metrics.json (or of the one inside a run folder)."""
    file = path / "metrics.json" if path.is_dir() else path
    if not file.exists():
        raise SystemExit(f"no metrics.json at {path}")
    report = json.loads(file.read_text())
    if "metrics" not in report:
        raise SystemExit(f"{file} is not an evaluator report (no 'metrics')")
    return report["metrics"]


def training(path: Path) -> tuple[str, str]:
    """Steps and last-window training loss from the run folder's ``log.csv`` (blank if none)."""
    log = (path if path.is_dir() else path.parent) / "log.csv"
    if not log.exists():
        return "", ""
    with log.open() as f:
        last = list(csv.DictReader(f))[-1]
    loss = last.get("loss_window") or last["loss"]  # older logs have no window mean
    return f"{int(last['step']):,}", f"{float(loss):.3f}"


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("runs", nargs="+", metavar="LABEL=PATH")
    p.add_argument("--train-log", action="store_true", help="add steps and final training loss")
    args = p.parse_args()
    labels, reports, paths = [], [], []
    for item in args.runs:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            p.error(f"expected LABEL=PATH, got {item!r}")
        labels.append(label)
        paths.append(Path(path))
        reports.append(load(Path(path)))
    print("| metric | protocol | " + " | ".join(labels) + " |")
    print("|---|---|" + "---:|" * len(labels))
    if args.train_log:
        logs = [training(path) for path in paths]
        print("| training steps | | " + " | ".join(s for s, _ in logs) + " |")
        print("| training loss (last window) | | " + " | ".join(x for _, x in logs) + " |")
    for key, label, percent in ROWS:
        entries = [r.get(key) for r in reports]
        if all(e is None for e in entries):
            continue
        protocol = next(e["protocol"] for e in entries if e is not None)
        cells = []
        for e in entries:
            value = None if e is None else e["value"]
            if value is None:
                cells.append("–")
            else:
                cells.append(f"{100 * value:.1f} %" if percent else f"{value:.3g}")
        print(f"| {label} | `{protocol}` | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
