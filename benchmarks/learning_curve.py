"""The learning curve a training run recorded, as one Markdown table.

Joins a run folder's ``evaluation.csv`` (the sample-and-evaluate rounds of
``examples/molecules/train.py --eval-every``; the quick preset writes one) with its
``validation.csv`` (EMA validation losses) by step. Column labels name each metric's protocol.

    python benchmarks/learning_curve.py runs/quick
    python benchmarks/learning_curve.py runs/qm9_long --plot docs/img/qm9_long_curve.png

``--plot`` also draws the curve against training time (needs matplotlib, the ``plots``
extra): stabilities and validity in one panel, the median strain in another.
"""

import argparse
import csv
import sys
from pathlib import Path

# (column of evaluation.csv, label, percent?)
COLUMNS = [
    ("edm/molecule_stability", "mol. stability (`edm`)", True),
    ("edm/validity", "validity (`edm`)", True),
    ("midi/molecule_stability", "mol. stability (`midi`)", True),
    ("midi/validity", "validity (`midi`)", True),
    ("symgen-geometry-w1/bond_length_w1", "bond-length W1 (`symgen-geometry-w1`, Å)", False),
    ("mmff94-strain/mmff_strain_median", "median strain (`mmff94-strain`, kcal/mol)", False),
]
#: The columns of runs recorded before the protocols issue (their own protocol names).
LEGACY_COLUMNS = [
    ("molecule_stability", "mol. stability (`edm-distance-table`)", True),
    ("validity", "validity (`rdkit-sanitize/edm-bonds`)", True),
    ("molecule_stability_given_bonds", "mol. stability (`charged-valence`)", True),
    ("validity_given_bonds", "validity (`rdkit-sanitize/given-bonds`)", True),
    ("bond_length_w1", "bond-length W1 (`w1-edm-bonds`, Å)", False),
    ("mmff_strain_median", "median strain (`mmff94-strain`, kcal/mol)", False),
]


def read(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV file (a clear error when it is missing)."""
    if not path.exists():
        raise SystemExit(f"no {path.name} in {path.parent} (train with --eval-every > 0)")
    with path.open() as f:
        return list(csv.DictReader(f))


def cell(value: str | None, percent: bool) -> str:
    if value in (None, "", "nan"):
        return "–"
    v = float(value)
    return f"{100 * v:.1f} %" if percent else f"{v:.4f}" if v < 1 else f"{v:.1f}"


def plot(curve: list[dict[str, str]], path: Path, title: str) -> None:
    """Quality (percent columns) and strain against training hours, written to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hours = [float(r["train_seconds"]) / 3600 for r in curve]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label, percent in COLUMNS:
        values = [float(r[key]) if r.get(key) not in (None, "", "nan") else None for r in curve]
        points = [(h, v) for h, v in zip(hours, values) if v is not None]
        if not points:
            continue
        xs, ys = zip(*points)
        if percent:
            left.plot(xs, [100 * y for y in ys], marker="o", label=label.replace("`", ""))
        elif key.startswith("mmff94-strain"):
            right.plot(xs, ys, marker="o", color="tab:red")
            right.set_ylabel(label.replace("`", ""))
    left.set_xlabel("training time (h)")
    left.set_ylabel("%")
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    right.set_xlabel("training time (h)")
    right.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", type=Path, help="a train.py output folder")
    p.add_argument("--plot", type=Path, help="also draw the curve into this image file")
    args = p.parse_args()
    curve = read(args.run / "evaluation.csv")
    if args.plot is not None:
        if not curve or COLUMNS[0][0] not in curve[0]:
            raise SystemExit("--plot needs an evaluation.csv with protocol-named columns")
        plot(curve, args.plot, f"learning curve of {args.run}")
    val_file = args.run / "validation.csv"
    losses = {r["step"]: r["loss"] for r in read(val_file)} if val_file.exists() else {}
    columns = COLUMNS if not curve or COLUMNS[0][0] in curve[0] else LEGACY_COLUMNS
    head = ["step", "training time", *(label for _, label, _ in columns)]
    if losses:
        head.append("validation loss (EMA)")
    print("| " + " | ".join(head) + " |")
    print("|" + "---:|" * len(head))
    for row in curve:
        cells = [f"{int(row['step']):,}", f"{float(row['train_seconds']) / 60:.1f} min"]
        cells += [cell(row.get(key), percent) for key, _, percent in columns]
        if losses:
            cells.append(f"{float(losses[row['step']]):.4f}" if row["step"] in losses else "–")
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
