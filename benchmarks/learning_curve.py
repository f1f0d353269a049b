"""The learning curve a training run recorded, as one Markdown table.

Joins a run folder's ``evaluation.csv`` (the sample-and-evaluate rounds of
``examples/molecules/train.py --eval-every``; the quick preset writes one) with its
``validation.csv`` (EMA validation losses) by step. Column labels name each metric's protocol.

    python benchmarks/learning_curve.py runs/quick
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


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", type=Path, help="a train.py output folder")
    args = p.parse_args()
    curve = read(args.run / "evaluation.csv")
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
