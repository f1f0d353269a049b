"""``geom-revisited``: the corrected protocol of "GEOM-Drugs Revisited".

Source: Nikitin, Dunn, Koes & Isayev 2025, *GEOM-Drugs Revisited: Toward More Chemically
Accurate Benchmarks for 3D Molecule Generation* (arXiv 2505.00169); procedure of
``isayevlab/geom-drugs-3dgen-evaluation``: ``geom_utils/molecule_stability.py`` (stability),
``geom_utils/geom_drugs_valency_table.py`` (the GEOM-Drugs table), ``scripts/`` (validity and
connectivity, xtb relaxation, energies, geometry changes).

Procedure, on each molecule's own bonds and formal charges:

* stability: an atom is stable when its ``(aromatic bonds, sum of the other bond orders)`` pair
  is listed for its element and charge, a charge the element does not list being unstable (no
  fallback, unlike MiDi). The table is built from the reference (training) molecules' own bonds
  when a reference with bonds is given, as the paper builds it from its training split
  (:func:`table_from_molecules`); otherwise it is the published GEOM-Drugs table
  (:data:`~symgen.molecules.bonds.GEOM_REVISITED_TUPLES`). symgen's molecules are kekulized,
  so every atom has 0 aromatic bonds and only the Kekulé entries apply
  (:data:`~symgen.molecules.bonds.GEOM_REVISITED_TABLE`); the report's notes say which table;
* ``validity_and_connectivity``: RDKit sanitizes the whole molecule (charges set) and it is a
  single fragment;
* relaxation (``tblite`` installed, ``max_xtb_molecules > 0``): the first valid and connected
  molecules are relaxed with GFN2-xTB (:func:`~symgen.molecules.xtb.relax_gfn2`, xtb's
  *normal* thresholds, total charge = sum of formal charges); over the converged ones:
  ``delta_e_relax_median`` / ``_mean`` (E_generated − E_relaxed, kcal/mol), ``rmsd_median`` /
  ``_mean`` (all atoms, optimal superposition, Å) and the mean absolute changes over every
  instance in the set of ``bond_length_change`` (Å; the paper prints it in 10⁻² Å),
  ``bond_angle_change`` (degrees) and ``torsion_change`` (degrees, periodic) on the generated
  molecule's bonds. Torsions are taken about every bond between two atoms with more than one
  neighbour, neither in a triple bond, over all neighbour pairs (i ≠ l);
  ``xtb_converged_rate`` is over the attempted molecules. The paper ran the ``xtb`` program;
  tblite computes the same GFN2-xTB energies, with SciPy's L-BFGS as the optimizer.

Molecules without usable own bonds count as unstable and invalid with a reason; the protocol is
skipped when no molecule carries bonds. Metrics: ``atom_stability``, ``molecule_stability``,
``validity_and_connectivity`` and the relaxation metrics above. Reasons prefixed
``geom-revisited:``.
"""

import math
import time
from collections.abc import Sequence

import numpy as np
from tqdm.auto import tqdm

from symgen.molecules.bonds import GEOM_REVISITED_TABLE, ValenceTable, molecule_bond_orders
from symgen.molecules.elements import SYMBOLS
from symgen.molecules.metrics import check_bonds, rdkit_validity
from symgen.molecules.molecule import Molecule
from symgen.molecules.protocols.base import (
    EvaluationContext,
    Scores,
    fraction,
    given_bond_rows,
    prefixed,
    process_cached,
    stability_scores,
)

__all__ = [
    "NAME",
    "VERSION",
    "score",
    "table_from_molecules",
    "bond_angle_torsion_changes",
    "kabsch_rmsd",
]

NAME = "geom-revisited"
VERSION = "1"


def table_from_molecules(molecules: Sequence[Molecule]) -> ValenceTable:
    """The valences seen per element and formal charge in molecules with own bonds.

    The paper's recipe (every ``(element, charge) -> valence`` that occurs in the training
    molecules), on kekulized bonds. Molecules without own bonds, or whose bonds
    :func:`~symgen.molecules.metrics.check_bonds` rejects, are skipped.

    Examples:
        >>> nh4 = Molecule(np.array([7, 1, 1, 1, 1]), np.zeros((5, 3)),
        ...                charges=np.array([1, 0, 0, 0, 0]),
        ...                bonds=np.array([[0, 1], [0, 2], [0, 3], [0, 4]]),
        ...                bond_orders=np.array([1, 1, 1, 1]))
        >>> table_from_molecules([nh4]).allowed
        {'H': {0: (1,)}, 'N': {1: (4,)}}
    """
    seen: set[tuple[int, int, int]] = set()
    for m in molecules:
        if m.bonds is None or check_bonds(m):
            continue
        v = molecule_bond_orders(m).sum(-1)
        q = np.zeros(m.num_atoms, np.int64) if m.charges is None else np.asarray(m.charges)
        z = np.asarray(m.atomic_numbers)
        seen.update(zip(z.tolist(), q.tolist(), v.tolist(), strict=True))
    allowed: dict[str, dict[int, tuple[int, ...]]] = {}
    for z, q, v in sorted(seen):
        by_q = allowed.setdefault(SYMBOLS.get(int(z), f"Z{z}"), {})
        by_q[int(q)] = (*by_q.get(int(q), ()), int(v))
    return ValenceTable("geom-revisited (from reference)", allowed)


def _dihedral(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, p3: np.ndarray) -> np.ndarray:
    """Dihedral angles (degrees, -180..180) of rows of points."""
    b0, b1, b2 = p0 - p1, p2 - p1, p3 - p2
    b1n = b1 / np.linalg.norm(b1, axis=-1, keepdims=True)
    v = b0 - np.sum(b0 * b1n, -1, keepdims=True) * b1n
    w = b2 - np.sum(b2 * b1n, -1, keepdims=True) * b1n
    x = np.sum(v * w, -1)
    y = np.sum(np.cross(b1n, v) * w, -1)
    return np.degrees(np.arctan2(y, x))


def _angle(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
    u, v = p0 - p1, p2 - p1
    c = np.sum(u * v, -1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1))
    return np.degrees(np.arccos(np.clip(c, -1.0, 1.0)))


def bond_angle_torsion_changes(
    bond_orders: np.ndarray, before: np.ndarray, after: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Absolute changes of every bond length (Å), bond angle and torsion (degrees) of a graph.

    Bonds: every pair with a bond. Angles: every pair of neighbours of every atom. Torsions:
    about every bond (j, k) whose atoms both have more than one neighbour and are in no
    triple bond, every i in N(j) \\ {k} and l in N(k) \\ {j} with i ≠ l; the change is
    periodic (at most 180°).

    Examples:
        >>> a = np.array([[0, 1], [1, 0]])
        >>> x = np.array([[0.0, 0, 0], [1.0, 0, 0]])
        >>> [c.tolist() for c in bond_angle_torsion_changes(a, x, 1.5 * x)]
        [[0.5], [], []]
    """
    a = np.asarray(bond_orders)
    nbrs = [np.nonzero(a[i])[0].tolist() for i in range(len(a))]
    ii, jj = np.nonzero(np.triu(a, 1))
    bl = np.abs(
        np.linalg.norm(after[ii] - after[jj], axis=-1)
        - np.linalg.norm(before[ii] - before[jj], axis=-1)
    )
    triples = [
        (i, j, k) for j in range(len(a)) for x, i in enumerate(nbrs[j]) for k in nbrs[j][x + 1 :]
    ]
    in_triple = (a == 3).any(-1)
    quads = [
        (i, j, k, l)
        for j, k in zip(ii.tolist(), jj.tolist(), strict=True)
        if len(nbrs[j]) > 1 and len(nbrs[k]) > 1 and not in_triple[j] and not in_triple[k]
        for i in nbrs[j]
        if i != k
        for l in nbrs[k]
        if l != j and l != i
    ]
    if triples:
        t = np.array(triples)
        ang = np.abs(
            _angle(*(after[t[:, c]] for c in range(3)))
            - _angle(*(before[t[:, c]] for c in range(3)))
        )
    else:
        ang = np.zeros(0)
    if quads:
        q = np.array(quads)
        d = np.abs(
            _dihedral(*(after[q[:, c]] for c in range(4)))
            - _dihedral(*(before[q[:, c]] for c in range(4)))
        )
        tor = np.minimum(d, 360.0 - d)
    else:
        tor = np.zeros(0)
    return bl, ang, tor


def kabsch_rmsd(x: np.ndarray, y: np.ndarray) -> float:
    """RMSD of two ``(k, 3)`` conformers after optimal superposition (atoms matched by index).

    Examples:
        >>> x = np.random.default_rng(0).normal(size=(5, 3))
        >>> r = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
        >>> round(kabsch_rmsd(x, x @ r.T + 3.0), 9)
        0.0
    """
    a = x - x.mean(0)
    b = y - y.mean(0)
    u, _, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(u @ vt))
    rot = u @ np.diag([1.0, 1.0, d]) @ vt
    return float(np.sqrt(np.mean(np.sum((a @ rot - b) ** 2, -1))))


def _relaxation(
    context: EvaluationContext, rows: Sequence[int], bonds: Sequence[np.ndarray]
) -> tuple[dict[str, tuple[float, int]], dict[int, list[str]], dict[str, float]]:
    from symgen.molecules.xtb import relax_gfn2

    changes: list[list[np.ndarray]] = [[], [], []]
    de, rmsd, reasons, seconds = [], [], {}, []
    for j, a in tqdm(
        list(zip(rows, bonds, strict=True)),
        desc="GFN2-xTB relaxation",
        disable=not context.progress,
        leave=False,
    ):
        m = context.molecules[j]
        charge = 0 if m.charges is None else int(np.sum(m.charges))
        t0 = time.perf_counter()
        res = relax_gfn2(m.atomic_numbers, m.positions, charge=charge)
        seconds.append(time.perf_counter() - t0)
        if not res.converged:
            reasons[j] = [f"{NAME}: {res.reason}"]
            continue
        x0 = np.asarray(m.positions, dtype=np.float64)
        for store, c in zip(changes, bond_angle_torsion_changes(a, x0, res.positions), strict=True):
            store.append(c)
        de.append(res.delta_e_relax)
        rmsd.append(kabsch_rmsd(x0, res.positions))
    n_ok = len(de)

    def stat(values: list[float], how) -> float:
        return float(how(values)) if values else math.nan

    def pooled(parts: list[np.ndarray]) -> tuple[float, int]:
        allv = np.concatenate(parts) if parts else np.zeros(0)
        return (float(allv.mean()) if len(allv) else math.nan, len(allv))

    metrics = {
        "delta_e_relax_median": (stat(de, np.median), n_ok),
        "delta_e_relax_mean": (stat(de, np.mean), n_ok),
        "rmsd_median": (stat(rmsd, np.median), n_ok),
        "rmsd_mean": (stat(rmsd, np.mean), n_ok),
        "bond_length_change": pooled(changes[0]),
        "bond_angle_change": pooled(changes[1]),
        "torsion_change": pooled(changes[2]),
        "xtb_converged_rate": (fraction(n_ok, len(rows)), len(rows)),
    }
    details = {
        "xtb_seconds_per_molecule": stat(seconds, np.mean),
        "xtb_attempted": float(len(rows)),
    }
    return metrics, reasons, details


def score(context: EvaluationContext) -> Scores:
    """Stability (data-derived table), validity and connectivity, and GFN2-xTB relaxation.

    Examples:
        >>> from symgen.molecules.molecule import Molecule
        >>> ch3 = Molecule(np.array([6, 1, 1, 1]), np.zeros((4, 3)),   # a methyl radical
        ...                charges=np.zeros(4, np.int64), bonds=np.array([[0, 1], [0, 2], [0, 3]]),
        ...                bond_orders=np.array([1, 1, 1]))
        >>> ctx = EvaluationContext((ch3,), num_molecules=1, num_atoms=4, max_xtb_molecules=0)
        >>> score(ctx).metrics["molecule_stability"]
        (0.0, 1)
    """
    if not context.has_given_bonds:
        return Scores(notes=[f"{NAME}: skipped, no molecule carries its own bonds"])
    notes = []
    ref = context.reference
    ref_bonded = ref is not None and len(ref) > 0 and ref[0].bonds is not None
    if ref_bonded:
        full = context.sound_reference()
        table = process_cached(
            "geom-revisited-table",
            context.reference,
            lambda: table_from_molecules(full),
            context.min_distance,
        )
        notes.append(
            f"{NAME}: valence table built from the own bonds of all {len(full)} sound "
            "reference molecules"
        )
    else:
        table = GEOM_REVISITED_TABLE
        notes.append(f"{NAME}: the published GEOM-Drugs valence table (no bonded reference)")
    rows, bonds = given_bond_rows(context)
    out = stability_scores(context, rows, bonds, table=table, charged=True, prefix=NAME)
    val = rdkit_validity(
        [context.molecules[j] for j in rows],
        bonds,
        use_charges=True,
        rule="edm",
        hydrogen_free_smiles=False,
        progress=context.progress,
    )
    n_mol = context.num_molecules
    metrics = dict(out.metrics)
    metrics["validity_and_connectivity"] = (fraction(int(val.connected.sum()), n_mol), n_mol)
    reasons = {**prefixed(NAME, context.given_bond_problems), **out.reasons}
    details: dict[str, dict[str, float]] = {}
    good = [i for i in range(len(rows)) if val.connected[i]][: context.max_xtb_molecules]
    if context.max_xtb_molecules > 0:
        from symgen.molecules.xtb import xtb_available

        if xtb_available():
            more, why, timing = _relaxation(
                context, [rows[i] for i in good], [bonds[i] for i in good]
            )
            metrics.update(more)
            details["xtb"] = timing
            for j, r in why.items():
                reasons.setdefault(j, []).extend(r)
        else:
            notes.append(
                f"{NAME}: relaxation metrics skipped, tblite is not installed "
                '(pip install "symgen[xtb]")'
            )
    return Scores(metrics=metrics, details=details, reasons=reasons, notes=notes)
