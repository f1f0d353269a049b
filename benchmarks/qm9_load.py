"""Benchmark QM9 loading: first parse + bond perception, cached load, splits and batching.

Prints measured times and ratios against baselines measured in the same run:

* cached load vs. first build (parse + perception + atomic cache write);
* SMILES-template bond perception (symgen) vs. RDKit ``DetermineBonds`` (xyz2mol, charge 0) on
  the same random sample of molecules;
* padding fraction of size-bucketed batches vs. plain random batches.

Usage:
    python benchmarks/qm9_load.py                 # full QM9 into a fresh temporary cache
    python benchmarks/qm9_load.py --limit 5000    # quicker
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout


def _to_rdkit(m):  # noqa: ANN001, ANN202 - Molecule -> RDKit Mol (bonds and charges as stored)
    from rdkit import Chem

    rw = Chem.RWMol()
    for z, q in zip(m.atomic_numbers.tolist(), m.charges.tolist(), strict=True):
        atom = Chem.Atom(int(z))
        atom.SetFormalCharge(int(q))
        atom.SetNoImplicit(True)
        rw.AddAtom(atom)
    types = {1: Chem.BondType.SINGLE, 2: Chem.BondType.DOUBLE, 3: Chem.BondType.TRIPLE}
    for (i, j), o in zip(m.bonds.tolist(), m.bond_orders.tolist(), strict=True):
        rw.AddBond(int(i), int(j), types[int(o)])
    mol = rw.GetMol()
    Chem.SanitizeMol(mol)
    return mol


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="cache folder (default: a fresh temporary folder, so the first parse is measured)",
    )
    parser.add_argument("--limit", type=int, default=None, help="only the first N molecules")
    parser.add_argument(
        "--baseline-sample",
        type=int,
        default=300,
        help="molecules timed with RDKit DetermineBonds as the perception baseline",
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from symgen.data import SizeBucketBatcher, padding_fraction
    from symgen.molecules.loader import MoleculeLoader
    from symgen.molecules.qm9 import load_qm9, perceive_bonds, qm9_splits, read_qm9_csv

    tmp = None
    if args.cache_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="symgen-bench-")
        cache_dir = Path(tmp.name)
    else:
        cache_dir = args.cache_dir

    t0 = time.perf_counter()
    raw = read_qm9_csv(limit=args.limit)
    t_csv = time.perf_counter() - t0
    t0 = time.perf_counter()
    ds = load_qm9(cache_dir, limit=args.limit, rebuild=True, progress=True)
    t_build = time.perf_counter() - t0
    loads = []
    for _ in range(5):
        t0 = time.perf_counter()
        ds2 = load_qm9(cache_dir, limit=args.limit, progress=False)
        loads.append(time.perf_counter() - t0)
    assert len(ds2) == len(ds)
    t_load = statistics.median(loads)
    t0 = time.perf_counter()
    load_qm9(cache_dir, limit=args.limit, progress=False, remove_h=True)
    t_noh = time.perf_counter() - t0
    t0 = time.perf_counter()
    splits = qm9_splits(len(ds))
    t_split = time.perf_counter() - t0

    print(f"molecules: {len(ds)}   atoms: {len(ds.atomic_numbers)}   bonds: {len(ds.bonds)}")
    print(f"status counts: {ds.status_counts()}")
    print(f"CSV parse only:                 {t_csv:8.2f} s")
    print(f"first build (parse+perceive+write): {t_build:8.2f} s")
    print(
        f"cached load (median of 5):      {t_load:8.3f} s   "
        f"-> {t_build / t_load:,.0f}x faster than first build"
    )
    print(f"cached load + remove_h:         {t_noh:8.3f} s")
    print(f"splits: { {k: len(v) for k, v in splits.items()} } in {t_split * 1e3:.1f} ms")

    # perception baseline: RDKit DetermineBonds (xyz2mol) on the same molecules
    from rdkit import Chem, RDLogger
    from rdkit.Chem import rdDetermineBonds

    RDLogger.DisableLog("rdApp.*")
    rng = np.random.default_rng(args.seed)
    sample = rng.choice(len(ds), size=min(args.baseline_sample, len(ds)), replace=False)
    off = raw["atom_offsets"]
    t0 = time.perf_counter()
    for i in sample:
        perceive_bonds(
            raw["atomic_numbers"][off[i] : off[i + 1]],
            raw["positions"][off[i] : off[i + 1]],
            raw["smiles"][i],
        )
    t_ours = time.perf_counter() - t0
    symbols = {1: "H", 6: "C", 7: "N", 8: "O", 9: "F"}
    blocks = []
    for i in sample:
        z, p = raw["atomic_numbers"][off[i] : off[i + 1]], raw["positions"][off[i] : off[i + 1]]
        rows = zip(z, p, strict=True)
        lines = [f"{symbols[int(a)]} {x:.8f} {y:.8f} {w:.8f}" for a, (x, y, w) in rows]
        blocks.append(f"{len(z)}\n\n" + "\n".join(lines) + "\n")
    fails = 0
    mols = []
    t0 = time.perf_counter()
    for block in blocks:
        mol = Chem.MolFromXYZBlock(block)
        try:
            rdDetermineBonds.DetermineBonds(mol, charge=0)
            mols.append(mol)
        except Exception:
            fails += 1
            mols.append(None)
    t_rd = time.perf_counter() - t0

    def canon(m: "Chem.Mol | None") -> str:
        if m is None:
            return "?"
        try:
            return Chem.MolToSmiles(Chem.RemoveHs(m), isomericSmiles=False)
        except Exception:
            return "?"

    agree_rd = agree_ours = 0
    for i, mol in zip(sample.tolist(), mols, strict=True):
        ref = canon(Chem.MolFromSmiles(raw["smiles"][i]))
        agree_rd += canon(mol) == ref
        agree_ours += canon(_to_rdkit(ds[i])) == ref
    print(
        f"perception on {len(sample)} molecules: symgen {t_ours * 1e3 / len(sample):.2f} ms/mol, "
        f"RDKit DetermineBonds {t_rd * 1e3 / len(sample):.2f} ms/mol ({fails} exceptions) "
        f"-> time ratio RDKit/symgen {t_rd / t_ours:.2f}"
    )
    print(
        f"agreement with reference SMILES (canonical, no stereo): "
        f"symgen {agree_ours}/{len(sample)}, "
        f"RDKit DetermineBonds {agree_rd}/{len(sample)}"
    )

    sizes = ds.num_atoms
    gen = lambda: torch.Generator().manual_seed(args.seed)  # noqa: E731
    rand = padding_fraction(
        sizes, SizeBucketBatcher(sizes, args.batch_size, bucket_batches=1).epoch(gen())
    )
    buck = padding_fraction(
        sizes, SizeBucketBatcher(sizes, args.batch_size, bucket_batches=50).epoch(gen())
    )
    print(
        f"padding fraction (batch {args.batch_size}): random {rand:.3f}, size-bucketed {buck:.3f} "
        f"-> {rand / max(buck, 1e-12):.1f}x less padding"
    )
    loader = MoleculeLoader(ds.subset(splits["train"]), args.batch_size, generator=gen())
    t0 = time.perf_counter()
    nb = 0
    for _ in loader:
        nb += 1
        if nb == 200:
            break
    t_b = (time.perf_counter() - t0) / nb
    print(f"loader: {t_b * 1e3:.2f} ms per featurized batch of {args.batch_size} (with edges)")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
