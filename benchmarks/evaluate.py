"""Benchmark the molecular evaluator on QM9 and reproduce EDM's published QM9 data row.

Prints, measured in the same run on the same molecules:

1. EDM stability of ``--num-molecules`` QM9 molecules (geometry only), vectorized
   (:func:`symgen.molecules.bonds.stability_edm`) versus the straightforward per-molecule
   pure-Python double loop (:func:`symgen.molecules.bonds.stability_edm_reference`), with the
   speed-up ratio and a check that both agree molecule by molecule;
2. the full :func:`symgen.molecules.evaluate.evaluate` (stability, validity, uniqueness,
   novelty, geometry W1 against a training subsample) without MMFF, in seconds;
3. MMFF strain on ``--strain-molecules`` molecules, reported separately (seconds per molecule);
4. with ``--data-row``: the QM9 *test split* scored as if it were a model's output, next to
   EDM's published data row (atom stability 99.0 %, molecule stability 95.2 %, validity 97.7 %).

Usage::

    python benchmarks/evaluate.py --help
    python benchmarks/evaluate.py --num-molecules 10000 --data-row --json bench.json
"""

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from symgen.files import atomic_write_json
from symgen.molecules.bonds import stability_edm, stability_edm_reference
from symgen.molecules.evaluate import evaluate
from symgen.molecules.metrics import iter_chunks
from symgen.molecules.molecule import Molecule
from symgen.molecules.qm9 import load_qm9_split

PUBLISHED_EDM_DATA_ROW = {"atom_stability": 0.990, "molecule_stability": 0.952, "validity": 0.977}


def _geometry_only(ds, indices) -> list[Molecule]:
    """Molecules with atoms and coordinates only, as a model's XYZ output would be."""
    out = []
    for i in indices:
        m = ds[int(i)]
        out.append(Molecule(m.atomic_numbers, m.positions, name=m.name))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--num-molecules",
        type=int,
        default=10_000,
        help="QM9 training molecules to score (default 10000)",
    )
    parser.add_argument(
        "--baseline-molecules",
        type=int,
        default=None,
        help="molecules for the pure-Python baseline (default: all)",
    )
    parser.add_argument(
        "--strain-molecules",
        type=int,
        default=200,
        help="molecules for the separate MMFF timing (default 200; 0 skips)",
    )
    parser.add_argument(
        "--data-row",
        action="store_true",
        help="also score the full QM9 test split against EDM's published data row",
    )
    parser.add_argument("--cache-dir", default=None, help="symgen cache folder for QM9")
    parser.add_argument("--seed", type=int, default=0, help="seed of the molecule subsample")
    parser.add_argument("--json", default=None, help="write the figures here (atomically)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    progress = not args.no_progress
    results: dict = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": sys.version.split()[0],
    }

    train = load_qm9_split("train", args.cache_dir, progress=progress)
    valid = load_qm9_split("valid", args.cache_dir, progress=progress)
    rng = np.random.default_rng(args.seed)
    idx = np.sort(rng.choice(len(valid), size=min(args.num_molecules, len(valid)), replace=False))
    mols = _geometry_only(valid, idx)
    n = len(mols)
    print(
        f"samples: {n} QM9 validation-split molecules (geometry only), "
        f"{sum(m.num_atoms for m in mols)} atoms; reference: QM9 train"
    )

    # 1. vectorized vs pure-Python EDM stability
    t0 = time.perf_counter()
    vec_stable = np.zeros(n, dtype=bool)
    for idx_chunk, p in iter_chunks(mols):
        vec_stable[idx_chunk] = stability_edm(p.atomic_numbers, p.positions, p.mask).molecule_stable
    t_vec = time.perf_counter() - t0
    n_base = n if args.baseline_molecules is None else min(args.baseline_molecules, n)
    t0 = time.perf_counter()
    ref_stable = [
        stability_edm_reference(m.atomic_numbers.tolist(), m.positions.tolist())[0]
        for m in tqdm(mols[:n_base], desc="pure-Python baseline", disable=not progress)
    ]
    t_ref = (time.perf_counter() - t0) * n / n_base
    agree = vec_stable[:n_base].tolist() == ref_stable
    print(
        f"EDM stability  vectorized: {t_vec:7.2f} s   pure-Python loop: {t_ref:7.2f} s"
        f"{'' if n_base == n else ' (extrapolated)'}   speed-up: {t_ref / t_vec:6.1f}x   "
        f"agree on all {n_base}: {agree}"
    )
    results["stability"] = {
        "molecules": n,
        "vectorized_s": t_vec,
        "python_loop_s": t_ref,
        "speedup": t_ref / t_vec,
        "agree": agree,
    }

    # 2. full evaluation without MMFF
    t0 = time.perf_counter()
    report = evaluate(
        mols,
        reference=train,
        reference_smiles=list(train.smiles),
        max_strain_molecules=0,
        progress=progress,
    )
    t_eval = time.perf_counter() - t0
    print(
        f"full evaluate() of {n} molecules (no MMFF, incl. {len(train)} reference SMILES and "
        f"a 10,000-molecule geometry reference): {t_eval:.1f} s"
    )
    print(report.table())
    results["evaluate"] = {
        "molecules": n,
        "seconds": t_eval,
        "metrics": {k: m.value for k, m in report.metrics.items()},
    }

    # 3. MMFF strain, separately
    if args.strain_molecules > 0:
        k = min(args.strain_molecules, n)
        t0 = time.perf_counter()
        strain = evaluate(mols[:k], protocols=("edm",), max_strain_molecules=k, progress=progress)
        t_strain = time.perf_counter() - t0
        print(
            f"MMFF strain on {k} molecules: {t_strain:.1f} s "
            f"({1000 * t_strain / k:.1f} ms/molecule), "
            f"median {strain['mmff_strain_median']:.2f} kcal/mol, setup rate "
            f"{strain['mmff_setup_rate']:.3f}"
        )
        results["strain"] = {
            "molecules": k,
            "seconds": t_strain,
            "median_kcal_mol": strain["mmff_strain_median"],
            "mean_kcal_mol": strain["mmff_strain_mean"],
            "setup_rate": strain["mmff_setup_rate"],
        }

    # 4. EDM data row on the test split
    if args.data_row:
        test = load_qm9_split("test", args.cache_dir, progress=progress)
        tmols = _geometry_only(test, range(len(test)))
        t0 = time.perf_counter()
        row = evaluate(tmols, max_strain_molecules=0, progress=progress)
        t_row = time.perf_counter() - t0
        print(f"\nQM9 test split ({len(tmols)} molecules, geometry only), {t_row:.1f} s:")
        print(f"{'metric':<20s} {'symgen':>8s} {'EDM paper':>10s} {'diff (pp)':>10s}")
        results["data_row"] = {"molecules": len(tmols)}
        for key, pub in PUBLISHED_EDM_DATA_ROW.items():
            v = row[key]
            print(f"{key:<20s} {100 * v:7.2f}% {100 * pub:9.1f}% {100 * (v - pub):+10.2f}")
            results["data_row"][key] = v
        print(f"{'uniqueness':<20s} {100 * row['uniqueness']:7.2f}% {100.0:9.1f}%")
        results["data_row"]["uniqueness"] = row["uniqueness"]
        results["data_row"]["connected_validity"] = row["connected_validity"]
    if args.json:
        atomic_write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
