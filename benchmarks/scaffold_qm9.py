"""Scaffold completion on QM9: given a test molecule's ring scaffold, generate the rest.

Protocol (symgen's; no published protocol exists for QM9 scaffold completion):

1. A completion model is trained with the README main job's recipe (``--preset quick``) plus
   ``--fixed-parts fragments --prior gaussian``: each training molecule gets a random fixed
   part (its ring scaffold or a connected heavy-atom fragment), expressed in that part's
   canonical frame and order (docs/concepts/conditioning.md). One thread, ``--train-min``
   minutes.
2. Test scaffolds: the first ``--scaffolds`` distinct ring scaffolds (ring systems and their
   linkers, heavy atoms, with at least 3 atoms and not the whole molecule;
   :func:`~symgen.molecules.fragments.scaffold_molecule`) of QM9's test split, in its stored
   order, each with the coordinates it has in its test molecule.
3. ``--per-scaffold`` completions of each, sizes drawn from the model's ``p(n | k)``.
4. Scores: the share of completions that are valid molecules containing the scaffold
   (RDKit substructure match after sanitization,
   :func:`~symgen.molecules.fragments.contains_substructure`), the same check on the test
   molecules themselves (the "Data" row: what the check gives real molecules), validity and
   molecule stability under the ``midi`` and ``edm`` protocols, and uniqueness of the valid
   completions of each scaffold (distinct SMILES / valid completions, averaged over
   scaffolds). The fixed atoms are checked to be unchanged in every sample.

    python benchmarks/scaffold_qm9.py --out runs/scaffold_qm9                 # ~40 CPU-min
    python benchmarks/scaffold_qm9.py --out runs/scaffold_smoke --qm9-limit 3000 \\
        --train-min 0.3 --scaffolds 5 --per-scaffold 2 --steps 4              # smoke

Each stage is skipped when its result exists (rerun the same command to resume); the commands
run, the table (table.md) and every number (results.json) go to ``--out``.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _common import ROOT, machine, one_commit, quick_train_command

from symgen.molecules import canonflow as cf
from symgen.molecules import io as mio
from symgen.molecules.bonds import molecule_bond_orders
from symgen.molecules.featurize import FeatureLayout, MolecularFeaturizer
from symgen.molecules.fragments import contains_substructure, scaffold_molecule
from symgen.molecules.metrics import rdkit_validity
from symgen.molecules.molecule import Molecule
from symgen.molecules.qm9 import load_qm9_split


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", default="runs/scaffold_qm9", help="output folder")
    p.add_argument("--train-min", type=float, default=30.0, help="training minutes (one thread)")
    p.add_argument("--scaffolds", type=int, default=200, help="test scaffolds")
    p.add_argument("--per-scaffold", type=int, default=10, help="completions of each scaffold")
    p.add_argument("--steps", type=int, default=50, help="sampling steps")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--qm9-limit", type=int, default=0, help="parse only the first N QM9 molecules")
    p.add_argument("--device", default="cpu", help="torch device for training and sampling")
    p.add_argument("--threads", type=int, default=1, help="torch threads for sampling")
    p.add_argument(
        "--train-args", default="", help="extra flags for train.py (quoted), e.g. '--lr 1e-3'"
    )
    return p.parse_args(argv)


def stage_train(args: argparse.Namespace, out: Path, record: list[str]) -> None:
    folder = out / "generator"
    if (folder / "done").exists():
        return
    extra = ["--fixed-parts", "fragments", "--prior", "gaussian"]
    cmd = quick_train_command(
        folder, args.train_min, device=args.device, qm9_limit=args.qm9_limit, extra=extra
    )
    cmd += shlex.split(args.train_args)
    folder.mkdir(parents=True, exist_ok=True)
    record.append(shlex.join(cmd))
    print(f"training the completion model ({args.train_min:g} min) ...", flush=True)
    with (out / "train.log").open("w") as log:
        env = dict(os.environ, OMP_NUM_THREADS="1")
        code = subprocess.run(
            cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env
        ).returncode
    if code != 0:
        raise SystemExit(f"training failed ({code}); see {out / 'train.log'}")
    (folder / "done").write_text("trained\n")


def test_scaffolds(args: argparse.Namespace) -> tuple[list[Molecule], list[Molecule]]:
    """The first ``--scaffolds`` distinct ring scaffolds of the test split, and their
    molecules."""
    from rdkit import Chem

    test = load_qm9_split("test", progress=False, limit=args.qm9_limit or None)
    seen: set[str] = set()
    scaffolds, sources = [], []
    for i in range(len(test)):
        mol = test[i]
        scaffold = scaffold_molecule(mol)
        if scaffold is None:
            continue
        key = Chem.MolToSmiles(mio.to_rdkit(scaffold, conformer=False))
        if key in seen:
            continue
        seen.add(key)
        scaffolds.append(scaffold)
        sources.append(mol)
        if len(scaffolds) == args.scaffolds:
            break
    if len(scaffolds) < args.scaffolds:
        raise SystemExit(f"only {len(scaffolds)} distinct scaffolds in the test split")
    return scaffolds, sources


def stage_sample(args: argparse.Namespace, out: Path, scaffolds: list[Molecule]) -> dict:
    path = out / "samples.sdf"
    done = out / "sampling.json"
    if done.exists():
        return json.loads(done.read_text())
    gen, _, state = cf.load_generator(out / "generator" / "checkpoint.pt", device=args.device)
    fixed = [s for s in scaffolds for _ in range(args.per_scaffold)]
    t0 = time.perf_counter()
    mols, rate = cf.sample_molecules(
        gen, len(fixed), seed=args.seed, fixed=fixed, steps=args.steps, progress=True
    )
    for m, s in zip(mols, fixed):  # the fixed atoms come first, unchanged
        k = s.num_atoms
        if not (
            np.array_equal(m.atomic_numbers[:k], s.atomic_numbers)
            and np.allclose(m.positions[:k], s.positions, atol=1e-4)
        ):
            raise SystemExit("a sample does not start with its scaffold's atoms: a bug")
    layout = FeatureLayout(**{k: tuple(v) for k, v in gen.metadata["layout"].items()})
    canon = gen.canonicalizer
    assert canon is not None
    flagged = canon.canonicalize(MolecularFeaturizer(layout).batch(scaffolds)).flagged
    mio.write_sdf(mols, path)
    info = {
        "mol_per_s": rate,
        "seconds": time.perf_counter() - t0,
        "training_steps": int(state["step"]),
        "flagged_scaffolds": float(flagged.float().mean()),
    }
    done.write_text(json.dumps(info, indent=2))
    return info


def _uniqueness(smiles: list[str], valid: np.ndarray, per: int) -> float:
    shares = []
    for lo in range(0, len(smiles), per):
        ok = [s for s, v in zip(smiles[lo : lo + per], valid[lo : lo + per]) if v]
        if ok:
            shares.append(len(set(ok)) / len(ok))
    return float(np.mean(shares)) if shares else float("nan")


def evaluate(
    args: argparse.Namespace, out: Path, scaffolds: list[Molecule], sources: list[Molecule]
) -> dict:
    mols = mio.read_sdf(out / "samples.sdf")
    fixed = [s for s in scaffolds for _ in range(args.per_scaffold)]
    contained = np.array([contains_substructure(m, s) for m, s in zip(mols, fixed)])
    data = np.array([contains_substructure(m, s) for m, s in zip(sources, scaffolds)])
    check = rdkit_validity(mols, [molecule_bond_orders(m) for m in mols], rule="midi")
    _, cfg, _ = cf.load_generator(out / "generator" / "checkpoint.pt")
    report = cf.evaluate_molecules(
        mols, cf.load_reference(cfg), strain_molecules=0, protocols=["edm", "midi"]
    )
    n = len(mols)
    return {
        "completions": n,
        "contains_scaffold": float(contained.mean()),
        "contains_scaffold_se": float(np.sqrt(contained.mean() * (1 - contained.mean()) / n)),
        "data_contains_scaffold": float(data.mean()),
        "midi_validity": float(report.get("midi/validity")),
        "midi_molecule_stability": float(report.get("midi/molecule_stability")),
        "edm_molecule_stability": float(report.get("edm/molecule_stability")),
        "unique_of_valid_per_scaffold": _uniqueness(
            list(check.smiles), np.asarray(check.valid), args.per_scaffold
        ),
    }


def table(results: dict, args: argparse.Namespace) -> str:
    r = results
    se = 100 * r["contains_scaffold_se"]
    return "\n".join(
        [
            f"{r['scaffolds']} QM9 test scaffolds × {args.per_scaffold} completions, "
            f"{args.steps} steps; model: {r['training_steps']} training steps "
            f"({args.train_min:g} min, one thread)",
            "",
            "| | share |",
            "|---|---|",
            f"| valid and containing the scaffold | "
            f"{100 * r['contains_scaffold']:.1f} ± {se:.1f} % |",
            f"| the same check on the test molecules (Data) | "
            f"{100 * r['data_contains_scaffold']:.1f} % |",
            f"| validity (`midi`) | {100 * r['midi_validity']:.1f} % |",
            f"| molecule stability (`midi`) | {100 * r['midi_molecule_stability']:.1f} % |",
            f"| molecule stability (`edm`) | {100 * r['edm_molecule_stability']:.1f} % |",
            f"| unique among a scaffold's valid completions | "
            f"{100 * r['unique_of_valid_per_scaffold']:.1f} % |",
            f"| scaffolds flagged by the canonicalizer | {100 * r['flagged_scaffolds']:.1f} % |",
            "",
            f"sampling: {r['mol_per_s']:.1f} molecules/s",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for name in ("scaffolds", "per_scaffold", "steps", "threads"):
        if getattr(args, name) < 1:
            print(f"error: --{name.replace('_', '-')} must be >= 1", file=sys.stderr)
            return 2
    if not args.train_min > 0:
        print("error: --train-min must be positive", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    here = one_commit(out)
    record = [shlex.join([sys.executable, *sys.argv])]
    stage_train(args, out, record)
    torch.set_num_threads(args.threads)
    scaffolds, sources = test_scaffolds(args)
    mio.write_sdf(scaffolds, out / "scaffolds.sdf")
    info = stage_sample(args, out, scaffolds)
    results = {**info, **evaluate(args, out, scaffolds, sources), "scaffolds": len(scaffolds)}
    results.update(commit=here, machine=machine(), args={k: str(v) for k, v in vars(args).items()})
    text = table(results, args)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "table.md").write_text(
        f"QM9 scaffold completion, commit {here}, {machine()}\n\n{text}\n"
    )
    (out / "commands.txt").write_text("\n".join(record) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
