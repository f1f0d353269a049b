"""One Markdown table of the evaluator's metrics from several runs, side by side.

Each argument is ``LABEL=PATH``, where PATH is a ``metrics.json`` written by
``examples/molecules/train.py`` / ``sample.py`` / ``python -m symgen.molecules.evaluate``, or
the run folder holding it. One row per metric of any of the reports, in report order; each row
names the metric's protocol; rates are printed in percent.
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

#: Metric names (the part after ``protocol/``) that are rates, printed in percent.
RATES = ("stability", "validity", "unique", "novelty", "connectivity", "connected",
         "neutral", "rate", "pb_valid", "fragments", "close_pairs")  # fmt: skip


def is_rate(key: str, protocol: str) -> bool:
    """Whether a metric is a share of molecules (or atoms), printed in percent."""
    name = key.split("/", 1)[-1]
    if protocol == "posebusters":  # every posebusters metric is a pass rate
        return True
    if name.startswith(("mean_", "mmff_strain", "delta_e", "rmsd", "bond_", "torsion")):
        return False
    return any(r in name for r in RATES)


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
    keys = list(dict.fromkeys(k for r in reports for k in r))  # report order, all runs
    for key in keys:
        entries = [r.get(key) for r in reports]
        protocol = next(e["protocol"] for e in entries if e is not None)
        percent = is_rate(key, protocol)
        cells = []
        for e in entries:
            value = None if e is None else e["value"]
            if value is None:
                cells.append("–")
            else:
                cells.append(f"{100 * value:.1f} %" if percent else f"{value:.3g}")
        print(f"| {key.split('/', 1)[-1]} | `{protocol}` | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
