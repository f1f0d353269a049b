"""Make the documentation's pictures (needs matplotlib: ``pip install matplotlib``).

    python examples/figures.py pose                     # docs/img/canonical_pose.png
    python examples/figures.py curves runs/head_to_head # docs/img/training_curves.png
    python examples/figures.py grid runs/quick          # docs/img/generated_molecules.png

``pose`` draws a QM9 molecule as stored (random-looking pose and atom order) next to its
canonical representative (principal axes along x, y, z; atoms numbered in canonical order).
``curves`` plots training loss against wall-clock time for every run folder with a ``log.csv``.
``grid`` copies the PNG grid of generated molecules written by ``train.py``/``sample.py``.
"""

import argparse
import csv
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
IMG = ROOT / "docs" / "img"
COLORS = {1: "#d9d9d9", 6: "#404040", 7: "#3050f8", 8: "#ff0d0d", 9: "#90e050"}


def _plt():  # noqa: ANN202
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise SystemExit("these figures need matplotlib: pip install matplotlib") from err
    return plt


def _draw(ax, z: np.ndarray, pos: np.ndarray, bonds: np.ndarray, title: str) -> None:  # noqa: ANN001
    for i, j in bonds:
        ax.plot(*zip(pos[i], pos[j]), color="#888888", lw=1.5)
    ax.scatter(
        *pos.T,
        c=[COLORS.get(int(a), "#ff00ff") for a in z],
        s=[60 if a == 1 else 160 for a in z],
        edgecolors="black",
        depthshade=False,
    )
    for k, p in enumerate(pos):
        ax.text(*p, f" {k}", fontsize=7)
    lim = np.abs(pos).max() * 1.1
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), zlim=(-lim, lim), xlabel="x", ylabel="y", zlabel="z")
    ax.set_title(title, fontsize=10)


def pose(index: int) -> Path:
    """Raw vs canonical pose of QM9 molecule ``index`` (a position in the dataset)."""
    from symgen.canon import geometric_spectral_canonicalizer
    from symgen.molecules.featurize import MolecularFeaturizer
    from symgen.molecules.qm9 import load_qm9

    plt = _plt()
    ds = load_qm9()
    m = ds[index]
    featurizer = MolecularFeaturizer(dtype=torch.float64)
    batch = featurizer.batch_from_dataset(ds, np.array([index]))
    result = geometric_spectral_canonicalizer().canonicalize(batch)
    rep = featurizer.decode(result.representative)[0]
    fig = plt.figure(figsize=(9, 4.5))
    _draw(
        fig.add_subplot(1, 2, 1, projection="3d"),
        m.atomic_numbers,
        m.positions - m.positions.mean(0),
        m.bonds,
        f"QM9 as stored ({m.name or index})",
    )
    _draw(
        fig.add_subplot(1, 2, 2, projection="3d"),
        rep.atomic_numbers,
        rep.positions,
        rep.bonds,
        f"canonical representative (margin {float(result.margin[0]):.2g})",
    )
    IMG.mkdir(parents=True, exist_ok=True)
    out = IMG / "canonical_pose.png"
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    return out


def curves(run_root: Path) -> Path:
    """Training loss vs wall-clock minutes for each ``<run_root>/*/log.csv``."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    found = False
    for log in sorted(run_root.glob("*/log.csv")):
        if log.parent.name.endswith("_calibration"):  # the head-to-head's throughput probes
            continue
        with log.open() as f:
            rows = list(csv.DictReader(f))
        if not rows:
            continue
        # training seconds (library loop); logs of older runs have the elapsed wall-clock
        t = np.array([float(r.get("train_seconds") or r["elapsed_s"]) for r in rows]) / 60
        loss = np.array([float(r["loss"]) for r in rows])
        k = max(1, len(loss) // 50)
        smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
        ax.plot(t[k - 1 :], smooth, label=log.parent.name)
        found = True
    if not found:
        raise SystemExit(f"no */log.csv under {run_root}")
    ax.set(
        xlabel="wall-clock minutes (2-core CPU)",
        ylabel="training loss (moving average)",
        yscale="log",
    )
    ax.legend()
    ax.grid(alpha=0.3)
    IMG.mkdir(parents=True, exist_ok=True)
    out = IMG / "training_curves.png"
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    return out


def grid(run_dir: Path) -> Path:
    """Copy ``<run_dir>/samples.png`` into the docs."""
    src = run_dir / "samples.png"
    if not src.exists():
        raise SystemExit(f"{src} does not exist: run train.py or sample.py first")
    IMG.mkdir(parents=True, exist_ok=True)
    out = IMG / "generated_molecules.png"
    shutil.copyfile(src, out)
    return out


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="what", required=True)
    sp = sub.add_parser("pose", help="raw vs canonical pose of a QM9 molecule")
    sp.add_argument("--index", type=int, default=1000, help="molecule position in QM9")
    sc = sub.add_parser("curves", help="training curves of runs")
    sc.add_argument("run_root", type=Path)
    sg = sub.add_parser("grid", help="PNG grid of generated molecules")
    sg.add_argument("run_dir", type=Path)
    args = p.parse_args()
    out = {
        "pose": lambda: pose(args.index),
        "curves": lambda: curves(args.run_root),
        "grid": lambda: grid(args.run_dir),
    }[args.what]()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
