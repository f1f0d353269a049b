"""Benchmark the molecular evaluator and score QM9 itself under every protocol (data rows).

Prints, measured in the same run on the same molecules:

1. the ``edm`` protocol (stability, validity, uniqueness) on ``--num-molecules`` QM9
   validation molecules (geometry only): :func:`symgen.molecules.evaluate.evaluate` versus a
   straightforward per-molecule implementation of EDM's procedure written below as EDM's code
   does it (a Python loop over atom pairs for the bonds, a second one to build the RDKit
   molecule, then sanitization and the largest fragment), with the speed-up and a check that
   both give the same numbers;
2. the whole suite without GFN2-xTB (every protocol whose extra is installed, QM9 training
   split as reference, each protocol at its default molecule cap) on the same molecules with
   their own bonds, in seconds, with the time per protocol;
3. GFN2-xTB relaxation (``geom-revisited``) on ``--xtb-molecules`` molecules, seconds each;
4. with ``--data-row``: the QM9 *test split* scored as if it were a model's output under every
   protocol (``edm`` on geometry only, next to EDM's published data row and to the
   per-molecule implementation of EDM's procedure on the same molecules; the others on the
   dataset's own bonds and charges).

Usage::

    python benchmarks/evaluate.py --help
    python benchmarks/evaluate.py --num-molecules 10000 --data-row --json bench.json
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from symgen.files import atomic_write_json
from symgen.molecules.bonds import EDM_ALLOWED_VALENCES, EDM_BONDS1, EDM_BONDS2, EDM_BONDS3
from symgen.molecules.elements import SYMBOLS
from symgen.molecules.evaluate import available_protocols, evaluate
from symgen.molecules.molecule import Molecule
from symgen.molecules.qm9 import load_qm9_split
from symgen.provenance import git_commit, machine_name

#: EDM's published QM9 data row (Hoogeboom et al. 2022, Table 1 and 2; ``edm`` protocol).
PUBLISHED_EDM_DATA_ROW = {"atom_stability": 0.990, "molecule_stability": 0.952, "validity": 0.977}


def _order(a: str, b: str, d_pm: float) -> int:
    """EDM's ``get_bond_order`` for one pair (tables looked up with ``a`` first)."""
    if d_pm >= EDM_BONDS1[a][b] + 10:
        return 0
    if b in EDM_BONDS2.get(a, {}) and d_pm < EDM_BONDS2[a][b] + 5:
        if b in EDM_BONDS3.get(a, {}) and d_pm < EDM_BONDS3[a][b] + 3:
            return 3
        return 2
    return 1


def edm_per_molecule(molecules: list[Molecule]) -> dict[str, float]:
    """EDM's procedure molecule by molecule, pair by pair (the straightforward baseline)."""
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    kinds = [None, Chem.BondType.SINGLE, Chem.BondType.DOUBLE, Chem.BondType.TRIPLE]
    stable_atoms = stable_mols = n_atoms = 0
    valid = []
    for m in molecules:
        syms = [SYMBOLS[int(z)] for z in m.atomic_numbers]
        x = np.asarray(m.positions, dtype=np.float32)
        n = len(syms)
        nr_bonds = [0] * n
        for i in range(n):  # check_stability
            for j in range(i + 1, n):
                d = np.sqrt(np.sum((x[i] - x[j]) ** 2))
                order = _order(syms[i], syms[j], 100.0 * float(d))
                nr_bonds[i] += order
                nr_bonds[j] += order
        ok = sum(int(nb in EDM_ALLOWED_VALENCES[s]) for s, nb in zip(syms, nr_bonds, strict=True))
        stable_atoms += ok
        n_atoms += n
        stable_mols += int(ok == n)
        mol = Chem.RWMol()  # build_molecule: a second pass over the pairs
        for s in syms:
            mol.AddAtom(Chem.Atom(s))
        for i in range(n):
            for j in range(i):
                d = np.sqrt(np.sum((x[i] - x[j]) ** 2))
                order = _order(syms[j], syms[i], 100.0 * float(d))
                if order:
                    mol.AddBond(j, i, kinds[order])
        try:  # mol2smiles, then the largest fragment
            Chem.SanitizeMol(mol)
        except ValueError:
            continue
        frags = Chem.GetMolFrags(mol, asMols=True)
        largest = max(frags, key=lambda f: f.GetNumAtoms())
        Chem.SanitizeMol(largest)
        valid.append(Chem.MolToSmiles(largest))
    return {
        "atom_stability": stable_atoms / n_atoms,
        "molecule_stability": stable_mols / len(molecules),
        "validity": len(valid) / len(molecules),
        "uniqueness": len(set(valid)) / len(valid),
    }


def _geometry_only(molecules: list[Molecule]) -> list[Molecule]:
    """Atoms and coordinates only, as a model's XYZ output would be."""
    return [Molecule(m.atomic_numbers, m.positions, name=m.name) for m in molecules]


def _commit() -> str:
    return git_commit(Path(__file__).resolve().parents[1]) or "unknown"


def _table(report, title: str) -> None:
    print(f"\n{title}")
    print(report.table())
    print("seconds per protocol: " + ", ".join(f"{k} {v:.1f}" for k, v in report.seconds.items()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--num-molecules", type=int, default=10_000, help="QM9 validation molecules (10000)"
    )
    parser.add_argument(
        "--baseline-molecules",
        type=int,
        default=None,
        help="molecules for the per-molecule baseline (default: all; fewer are extrapolated)",
    )
    parser.add_argument(
        "--xtb-molecules",
        type=int,
        default=20,
        help="molecules for the GFN2-xTB timing (default 20; 0 skips; needs tblite)",
    )
    parser.add_argument(
        "--data-row", action="store_true", help="also score the QM9 test split (every protocol)"
    )
    parser.add_argument(
        "--data-row-xtb",
        type=int,
        default=100,
        help="GFN2-xTB relaxations in the data row (default 100)",
    )
    parser.add_argument("--cache-dir", default=None, help="symgen cache folder for QM9")
    parser.add_argument("--seed", type=int, default=0, help="seed of the molecule subsample")
    parser.add_argument("--json", default=None, help="write the figures here (atomically)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    progress = not args.no_progress
    results: dict = {
        "commit": _commit(),
        "machine": machine_name(),
        "python": sys.version.split()[0],
        "protocols_installed": available_protocols(),
    }
    print(f"commit {results['commit']}, protocols installed: {', '.join(available_protocols())}")

    train = load_qm9_split("train", args.cache_dir, progress=progress)
    valid = load_qm9_split("valid", args.cache_dir, progress=progress)
    rng = np.random.default_rng(args.seed)
    idx = np.sort(rng.choice(len(valid), size=min(args.num_molecules, len(valid)), replace=False))
    bonded = [valid[int(i)] for i in idx]
    mols = _geometry_only(bonded)
    n = len(mols)
    print(f"samples: {n} QM9 validation-split molecules, {sum(m.num_atoms for m in mols)} atoms")

    # 1. edm protocol vs EDM's procedure molecule by molecule
    t0 = time.perf_counter()
    fast = evaluate(mols, protocols=["edm"], progress=progress)
    t_fast = time.perf_counter() - t0
    n_base = n if args.baseline_molecules is None else min(args.baseline_molecules, n)
    t0 = time.perf_counter()
    slow = edm_per_molecule(list(tqdm(mols[:n_base], desc="per-molecule", disable=not progress)))
    t_slow = (time.perf_counter() - t0) * n / n_base
    compare = mols if n_base == n else mols[:n_base]
    check = fast if n_base == n else evaluate(compare, protocols=["edm"])
    agree = all(abs(check[f"edm/{k}"] - v) < 1e-12 for k, v in slow.items())
    print(
        f"\n1. edm protocol on {n} molecules: evaluate() {t_fast:.2f} s, per-molecule "
        f"{t_slow:.2f} s{'' if n_base == n else ' (extrapolated)'}, speed-up "
        f"{t_slow / t_fast:.1f}x, same numbers: {agree}"
    )
    results["edm_speed"] = {
        "molecules": n,
        "evaluate_s": t_fast,
        "per_molecule_s": t_slow,
        "speedup": t_slow / t_fast,
        "agree": agree,
    }

    # 2. whole suite without xTB
    t0 = time.perf_counter()
    suite = evaluate(
        bonded,
        reference=train,
        reference_smiles=list(train.smiles),
        max_xtb_molecules=0,
        progress=progress,
    )
    t_suite = time.perf_counter() - t0
    _table(suite, f"2. whole suite without xTB on {n} molecules (own bonds): {t_suite:.1f} s")
    results["suite"] = {"molecules": n, "seconds": t_suite, "per_protocol": suite.seconds}

    # 3. xTB per molecule
    if args.xtb_molecules > 0:
        from symgen.molecules.xtb import xtb_available

        if xtb_available():
            k = min(args.xtb_molecules, n)
            t0 = time.perf_counter()
            x = evaluate(bonded[:k], protocols=["geom-revisited"], max_xtb_molecules=k)
            t_x = time.perf_counter() - t0
            print(
                f"\n3. GFN2-xTB relaxation: {k} molecules in {t_x:.1f} s "
                f"({t_x / k:.2f} s per molecule), converged "
                f"{x['geom-revisited/xtb_converged_rate']:.2f}"
            )
            results["xtb"] = {"molecules": k, "seconds": t_x, "per_molecule_s": t_x / k}
        else:
            print("\n3. GFN2-xTB: tblite not installed, skipped")

    # 4. data rows on the test split
    if args.data_row:
        test = load_qm9_split("test", args.cache_dir, progress=progress)
        tmols = [test[i] for i in range(len(test))]
        geo = evaluate(_geometry_only(tmols), protocols=["edm"], progress=progress)
        same = edm_per_molecule(_geometry_only(tmols))
        print(f"\n4. QM9 test split ({len(tmols)} molecules), protocol edm (geometry only):")
        print(f"{'metric':<20s} {'symgen':>8s} {'EDM proc.':>10s} {'EDM paper':>10s}")
        row: dict = {"molecules": len(tmols), "edm": {}, "edm_per_molecule": same}
        for key in ("atom_stability", "molecule_stability", "validity", "uniqueness"):
            v = geo[f"edm/{key}"]
            pub = PUBLISHED_EDM_DATA_ROW.get(key)
            pub_s = f"{100 * pub:9.1f}%" if pub is not None else f"{'':>10s}"
            print(f"{key:<20s} {100 * v:7.2f}% {100 * same[key]:9.2f}% {pub_s}")
            row["edm"][key] = v
        full = evaluate(
            tmols,
            reference=train,
            reference_smiles=list(train.smiles),
            max_xtb_molecules=args.data_row_xtb,
            progress=progress,
        )
        _table(full, "QM9 test split, every protocol (own bonds and charges, reference: train)")
        row["all"] = {k: m.value for k, m in full.metrics.items()}
        results["data_row"] = row
    if args.json:
        atomic_write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
