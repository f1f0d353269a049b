"""Pictures of an LJ13 comparison run: energy histograms, pair-distance densities, loss curves.

Reads ``report.json`` and ``samples.npz`` written by ``run.py`` and writes
``lj13_energy.png``, ``lj13_pair_distance.png`` and ``lj13_training.png`` (the tutorial's
pictures come from ``python examples/lj13/plots.py runs/lj13 --out docs/img``). Needs matplotlib
(``pip install matplotlib``); it is imported only here.
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lj import LJParams, lj_energy  # noqa: E402

SERIES = (  # key in samples.npz, legend label, colour, line style
    ("reference", "MCMC reference", "black", "-"),
    ("floor", "MCMC (2nd set)", "grey", ":"),
    ("canonical", "canonical", "tab:blue", "-"),
    ("equivariant", "equivariant (EGNN)", "tab:orange", "-"),
    ("canonical-shortcut", "canonical + shortcut", "tab:purple", "-."),
    ("prior", "prior", "tab:green", "--"),
)


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ModuleNotFoundError as err:
        raise SystemExit(
            "plots.py needs matplotlib, which is not installed: run `pip install matplotlib`"
        ) from err
    return plt


def _save(fig: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def make_plots(run_dir: Path, out_dir: Path) -> list[Path]:
    """Write the three pictures of the run in ``run_dir`` to ``out_dir``; return their paths."""
    plt = _pyplot()
    report_path, samples_path = run_dir / "report.json", run_dir / "samples.npz"
    for p in (report_path, samples_path):
        if not p.is_file():
            raise FileNotFoundError(
                f"{p} not found: run examples/lj13/run.py --out {run_dir} first"
            )
    report = json.loads(report_path.read_text())
    samples = np.load(samples_path)
    params = LJParams()
    machine = report["machine"]
    budget = report["config"]["budget_seconds"]
    subtitle = (
        f"{budget:.0f} s training each, {machine['torch_threads']} thread(s), "
        f"{machine['cpu_count']}-core CPU"
    )
    written = []

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    bins = np.linspace(-40, 60, 81)
    for key, label, colour, style in SERIES:
        if key not in samples:
            continue
        pos = torch.from_numpy(samples[key])
        ok = torch.isfinite(pos).all(-1).all(-1)
        e = lj_energy(pos[ok], params).numpy()
        clash = 1.0 - float(np.mean(e < 60)) * ok.float().mean().item()
        ax.hist(
            np.clip(e, bins[0], bins[-1]),
            bins=bins,
            density=True,
            histtype="step",
            color=colour,
            linestyle=style,
            linewidth=1.6,
            label=f"{label} ({clash:.0%} above 60)",
        )
    ax.set_xlabel("energy E (ε); values beyond the axis are piled at its ends")
    ax.set_ylabel("density")
    ax.set_title(f"LJ13 energies: {subtitle}", fontsize=9)
    ax.legend(fontsize=8)
    path = out_dir / "lj13_energy.png"
    _save(fig, path)
    plt.close(fig)
    written.append(path)

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    bins = np.linspace(0.0, 4.5, 91)
    for key, label, colour, style in SERIES:
        if key not in samples:
            continue
        pos = torch.from_numpy(samples[key])
        pos = pos[torch.isfinite(pos).all(-1).all(-1)]
        iu = torch.triu_indices(pos.shape[1], pos.shape[1], 1)
        d = torch.cdist(pos, pos)[:, iu[0], iu[1]].reshape(-1).numpy()
        ax.hist(
            d,
            bins=bins,
            density=True,
            histtype="step",
            color=colour,
            linestyle=style,
            linewidth=1.6,
            label=label,
        )
    ax.set_xlabel("interparticle distance r (r_m)")
    ax.set_ylabel("density")
    ax.set_title(f"LJ13 pair distances: {subtitle}", fontsize=9)
    ax.legend(fontsize=8)
    path = out_dir / "lj13_pair_distance.png"
    _save(fig, path)
    plt.close(fig)
    written.append(path)

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for key, label, colour, _ in SERIES:
        curve = report.get("curves", {}).get(key)
        if not curve:
            continue
        arr = np.asarray(curve, dtype=float)
        ax.plot(arr[:, 1], arr[:, 2], color=colour, label=f"{label} ({int(arr[-1, 0])} steps)")
    ax.set_xlabel("training wall-clock time (s)")
    ax.set_ylabel("flow-matching loss (positions, 25-step mean)")
    ax.set_yscale("log")
    ax.set_title(
        "Training loss against time (each method on its own target: not comparable in level)",
        fontsize=8,
    )
    ax.legend(fontsize=8)
    path = out_dir / "lj13_training.png"
    _save(fig, path)
    plt.close(fig)
    written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Draw the pictures of an LJ13 comparison run.")
    p.add_argument(
        "run_dir",
        type=Path,
        nargs="?",
        default=Path("runs/lj13"),
        help="folder with report.json and samples.npz (run.py --out)",
    )
    p.add_argument("--out", type=Path, default=Path("docs/img"), help="folder for the PNG files")
    a = p.parse_args(argv)
    for path in make_plots(a.run_dir, a.out):
        print(path)


if __name__ == "__main__":
    main()
