"""``posebusters``: the PoseBusters checks for generated molecules (the ``posebusters`` package).

Source: Buttenschoen, Morris & Deane 2024, *PoseBusters: AI-based docking methods fail to
generate physically valid poses or generalise to novel sequences* (Chemical Science 15,
3130); the package's ``mol`` configuration, the one its authors provide for molecules
generated without a protein: loading, RDKit sanitization, InChI conversion, all atoms
connected, no radicals, bond lengths, bond angles and internal steric clashes within
distance-geometry bounds, aromatic ring flatness, non-aromatic ring non-flatness, double bond
flatness and internal energy (against an ensemble of force-field conformers).

Each of the first ``max_posebusters_molecules`` scorable molecules is built in RDKit with its
own bonds and charges (or EDM distance-table bonds when it has none) and checked. Metrics:
``pb_valid`` (share passing every check) and ``<check>`` (each check's pass rate), over the
checked molecules. The package version is recorded in the notes. The internal-energy check
embeds an ensemble of 50 conformers per molecule and dominates the cost (about a second per
QM9-sized molecule on one CPU core), hence the default cap of 100 molecules. Install with
``pip install "symgen[posebusters]"``.
"""

import logging
import math
import sys

import numpy as np

from symgen.molecules.protocols.base import EvaluationContext, Scores

__all__ = ["NAME", "VERSION", "score"]

NAME = "posebusters"
VERSION = "1"


def _mol_config() -> dict:
    """The package's ``mol`` configuration, each module once.

    Some versions list the internal-energy module twice (same parameters, same output
    column); running it once gives the same table in half the time.
    """
    from importlib.resources import files

    import yaml

    config = yaml.safe_load(files("posebusters").joinpath("config", "mol.yml").read_text())
    unique: list[dict] = []
    for module in config["modules"]:
        if module not in unique:
            unique.append(module)
    return {**config, "modules": unique}


def score(context: EvaluationContext) -> Scores:
    """PB-valid share and each PoseBusters check's pass rate (``mol`` configuration).

    Examples:
        >>> from rdkit import Chem
        >>> from rdkit.Chem import AllChem
        >>> from symgen.molecules.io import from_rdkit
        >>> m = Chem.AddHs(Chem.MolFromSmiles("CCO")); _ = AllChem.EmbedMolecule(m, randomSeed=1)
        >>> _ = AllChem.MMFFOptimizeMolecule(m)
        >>> s = score(EvaluationContext((from_rdkit(m),), num_molecules=1, num_atoms=9))
        >>> s.metrics["pb_valid"]
        (1.0, 1)
    """
    import posebusters
    from posebusters import PoseBusters
    from rdkit import RDLogger

    from symgen.molecules.io import to_rdkit

    picked = list(range(len(context.molecules)))[: context.max_posebusters_molecules]
    if not picked:
        return Scores(notes=[f"{NAME}: skipped (no molecules or max_posebusters_molecules=0)"])
    mols = []
    for j in picked:
        bonds = context.given_bonds[j]
        bonds = context.edm_bonds[j] if bonds is None else bonds
        mols.append(to_rdkit(context.molecules[j], bonds))
    import rdkit

    # importing posebusters sends RDKit's log to a Python handler bound to the sys.stderr of
    # that moment; rebind it to the current one (a replaced, closed stream fails the checks)
    handler = getattr(rdkit, "log_handler", None)
    if handler is not None:
        handler.stream = sys.stderr  # not setStream(): it flushes the old, maybe closed, stream
    quiet = [logging.getLogger(name) for name in ("rdkit", "posebusters")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:  # the failed checks are reported per molecule; their log is noise
        lg.setLevel(logging.CRITICAL)
    RDLogger.DisableLog("rdApp.*")
    try:
        table = PoseBusters(config=_mol_config(), max_workers=0).bust(mols, None, None)
    finally:
        RDLogger.EnableLog("rdApp.*")
        for lg, level in zip(quiet, levels, strict=True):
            lg.setLevel(level)
    if len(table) != len(picked):
        raise RuntimeError(f"posebusters returned {len(table)} rows for {len(picked)} molecules")
    checks = [
        c
        for c in table.columns
        if table[c].dtype == bool or set(table[c].dropna()) <= {True, False}
    ]
    passed = table[checks].fillna(False).astype(bool).to_numpy()
    n = len(picked)
    metrics = {"pb_valid": (float(passed.all(1).mean()) if n else math.nan, n)}
    for c, col in zip(checks, passed.T, strict=True):
        metrics[c] = (float(np.mean(col)), n)
    reasons = {}
    for row, j in enumerate(picked):
        failed = [c for c, ok in zip(checks, passed[row], strict=True) if not ok]
        if failed:
            reasons[j] = [f"{NAME}: failed " + ", ".join(failed)]
    return Scores(
        metrics=metrics,
        reasons=reasons,
        notes=[f"{NAME}: package version {posebusters.__version__}, configuration 'mol'"],
    )
