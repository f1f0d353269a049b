"""What every evaluation protocol shares: the context it scores in and the record it returns.

A protocol is a module with a ``NAME``, a ``VERSION`` and a function
``score(context: EvaluationContext) -> Scores``; :data:`symgen.molecules.protocols.REGISTRY`
lists them as :class:`Protocol` records and :func:`symgen.molecules.evaluate.evaluate` runs
them in registry order.

:class:`EvaluationContext` holds the scorable molecules, the reference data and the options,
and computes on first use (then caches) what several protocols need: the EDM-inferred bonds
of the molecules, their own bonds checked for the given-bonds protocols, the reference
subsample and the reference SMILES for novelty.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from symgen.molecules.bonds import (
    CHARGED_ALLOWED_VALENCES,
    EDM_ALLOWED_VALENCES,
    StabilityResult,
    infer_bonds_edm,
    molecule_bond_orders,
    stability_from_bonds,
)
from symgen.molecules.dataset import MoleculeDataset
from symgen.molecules.elements import SYMBOLS
from symgen.molecules.metrics import (
    MIN_DISTANCE,
    PaddedMolecules,
    canonical_smiles,
    check_bonds,
    check_molecule,
    iter_chunks,
    rdkit_validity,
)
from symgen.molecules.molecule import Molecule

__all__ = [
    "Scores",
    "EvaluationContext",
    "Protocol",
    "fraction",
    "edm_bond_matrices",
    "stability_scores",
]

#: At most this many atoms are named per "unstable" failure reason.
MAX_REASONS_PER_CHECK = 3


@dataclass(frozen=True)
class Scores:
    """What one protocol returns.

    Attributes:
        metrics: metric key -> ``(value, count)``; ``count`` is the number of molecules (or
            atoms, or samples) the value is computed over. The evaluator adds the protocol's
            name and version.
        details: per-type breakdowns, e.g. ``details["bond_length_w1"]["C-H"]``.
        reasons: index into :attr:`EvaluationContext.molecules` -> failure reasons, each
            prefixed with what produced it (``"edm: ..."``, ``"bonds: ..."``, ``"mmff: ..."``).
    """

    metrics: dict[str, tuple[float, int]] = field(default_factory=dict)
    details: dict[str, dict[str, float]] = field(default_factory=dict)
    reasons: dict[int, list[str]] = field(default_factory=dict)


def fraction(part: int, whole: int) -> float:
    """``part / whole``, NaN when ``whole`` is 0 (a rate over nothing is undefined).

    Examples:
        >>> fraction(1, 4), fraction(0, 0)
        (0.25, nan)
    """
    return part / whole if whole else math.nan


def edm_bond_matrices(molecules: Sequence[Molecule]) -> list[np.ndarray]:
    """EDM-inferred ``(k, k)`` bond orders of each molecule, computed in padded chunks.

    The same numbers as :func:`~symgen.molecules.bonds.edm_bond_orders` molecule by molecule,
    vectorized over chunks of similar size (:func:`~symgen.molecules.metrics.iter_chunks`).

    Examples:
        >>> co = Molecule(np.array([6, 8]), np.array([[0.0, 0, 0], [1.13, 0, 0]]))
        >>> [a.tolist() for a in edm_bond_matrices([co])]
        [[[0, 3], [3, 0]]]
    """
    out: list[np.ndarray] = [np.zeros((0, 0), np.int64)] * len(molecules)
    for idx, p in iter_chunks(molecules):
        a = infer_bonds_edm(p.atomic_numbers, p.positions, p.mask)
        for b, k in enumerate(p.mask.sum(-1).tolist()):
            out[int(idx[b])] = a[b, :k, :k]
    return out


@dataclass(frozen=True, eq=False)
class EvaluationContext:
    """The molecules to score, the reference data and the options, shared by all protocols.

    Attributes:
        molecules: the scorable molecules (those :func:`~symgen.molecules.metrics.check_molecule`
            accepts); protocols index their failure reasons into this tuple.
        num_molecules: number of *input* molecules, scorable or not (denominator of rates).
        num_atoms: number of atoms of all input molecules (denominator of atom stability).
        families: the protocol families the caller selected (``"edm"``: bonds from geometry;
            ``"bonds"``: the molecules' own bonds and charges).
        reference: reference molecules (e.g. the training set), or ``None``.
        reference_smiles: reference SMILES for novelty, or ``None`` (then derived from
            ``reference`` when given).
        max_reference_molecules: size of the reference subsample for geometry distances.
        max_strain_molecules: MMFF strain on at most this many molecules (0 disables).
        strain_max_iters: MMFF minimizer iterations per molecule.
        min_distance: atoms closer than this (Å) make a reference molecule unusable.
        seed: seed of the reference subsample.
        progress: show tqdm progress bars.

    Examples:
        >>> co = Molecule(np.array([6, 8]), np.array([[0.0, 0, 0], [1.13, 0, 0]]))
        >>> ctx = EvaluationContext(molecules=(co,), num_molecules=1, num_atoms=2)
        >>> ctx.edm_bonds[0].tolist(), ctx.given_bonds, ctx.has_given_bonds
        ([[0, 3], [3, 0]], [None], False)
    """

    molecules: tuple[Molecule, ...]
    num_molecules: int
    num_atoms: int
    families: frozenset[str] = frozenset({"edm", "bonds"})
    reference: Sequence[Molecule] | MoleculeDataset | None = None
    reference_smiles: Sequence[str] | set[str] | None = None
    max_reference_molecules: int = 10_000
    max_strain_molecules: int = 1000
    strain_max_iters: int = 200
    min_distance: float = MIN_DISTANCE
    seed: int = 0
    progress: bool = False

    @cached_property
    def edm_bonds(self) -> list[np.ndarray]:
        """EDM-inferred bond orders of each molecule (:func:`edm_bond_matrices`)."""
        return edm_bond_matrices(self.molecules)

    @property
    def has_given_bonds(self) -> bool:
        """Whether any molecule carries its own bonds (else the given-bonds protocols skip)."""
        return any(m.bonds is not None for m in self.molecules)

    @cached_property
    def _own_bonds(self) -> tuple[list[np.ndarray | None], dict[int, list[str]]]:
        bonds: list[np.ndarray | None] = [None] * len(self.molecules)
        problems: dict[int, list[str]] = {}
        for j, m in enumerate(self.molecules):
            found = ["no bonds given"] if m.bonds is None else check_bonds(m)
            if found:
                problems[j] = [f"bonds: {p}" for p in found]
            else:
                bonds[j] = molecule_bond_orders(m)
        return bonds, problems

    @property
    def given_bonds(self) -> list[np.ndarray | None]:
        """Each molecule's own bond orders where :func:`check_bonds` accepts them, else ``None``.

        Explicit bond orders are required (see :func:`~symgen.molecules.metrics.check_bonds`).
        """
        return self._own_bonds[0]

    @property
    def given_bond_problems(self) -> dict[int, list[str]]:
        """Why molecules have no usable own bonds, by index (``"bonds: no bonds given"``, ...)."""
        return self._own_bonds[1]

    @cached_property
    def reference_sample(self) -> list[Molecule]:
        """A random subset of ``max_reference_molecules`` sound reference molecules (by ``seed``).

        The subset is drawn first (sorted indices, without replacement), then molecules that
        :func:`check_molecule` rejects are dropped. Empty without a reference.
        """
        if self.reference is None:
            return []
        n = len(self.reference)
        if n <= self.max_reference_molecules:
            idx = np.arange(n)
        else:
            rng = np.random.default_rng(self.seed)
            idx = np.sort(rng.choice(n, size=self.max_reference_molecules, replace=False))
        sample = [self.reference[int(i)] for i in idx]
        return [m for m in sample if not check_molecule(m, min_distance=self.min_distance)]

    @cached_property
    def novelty_reference(self) -> set[str] | None:
        """Canonical reference SMILES for novelty, or ``None`` when there is no reference.

        ``reference_smiles`` canonicalized when given; else the SMILES of every sound
        reference molecule (not only the subsample) that RDKit sanitizes, built from its own
        bonds or EDM-inferred bonds (:func:`~symgen.molecules.bonds.molecule_bond_orders`).
        """
        if self.reference_smiles is not None:
            return canonical_smiles(self.reference_smiles, progress=self.progress)
        if self.reference is None:
            return None
        full = [self.reference[i] for i in range(len(self.reference))]
        full = [m for m in full if not check_molecule(m, min_distance=self.min_distance)]
        val = rdkit_validity(full, [molecule_bond_orders(m) for m in full], progress=self.progress)
        return {s for s in val.smiles if s}


@dataclass(frozen=True)
class Protocol:
    """A registry entry: one protocol and when the evaluator runs it.

    Attributes:
        name: the protocol name every metric it produces carries.
        version: bumped whenever a rule or table of the protocol changes.
        score: ``score(context) -> Scores``.
        family: the ``protocols=`` value of :func:`~symgen.molecules.evaluate.evaluate` that
            selects it (``"edm"`` or ``"bonds"``), or ``None`` to run it always (it decides
            from the context whether it applies, e.g. only with a reference).
    """

    name: str
    version: str
    score: Callable[[EvaluationContext], Scores]
    family: str | None = None


def _allowed_text(z: int, charge: int, charged: bool) -> str:
    sym = SYMBOLS.get(int(z), f"Z{z}")
    if charged:
        vals = CHARGED_ALLOWED_VALENCES.get(sym, {}).get(int(charge))
    else:
        vals = EDM_ALLOWED_VALENCES.get(sym)
    return "none" if not vals else "/".join(map(str, vals))


def _unstable_reasons(
    prefix: str,
    res: StabilityResult,
    p: PaddedMolecules,
    indices: np.ndarray,
    charged: bool,
    reasons: dict[int, list[str]],
) -> None:
    """Add an 'unstable' reason for every unstable molecule; chunk row b is ``indices[b]``."""
    for b in np.nonzero(~res.molecule_stable & (res.num_atoms > 0))[0]:
        bad = np.nonzero(p.mask[b] & ~res.atom_stable[b])[0]
        parts = []
        for a in bad[:MAX_REASONS_PER_CHECK]:
            z, q = int(p.atomic_numbers[b, a]), int(p.charges[b, a])
            qs = "" if not charged or q == 0 else f"{q:+d}"
            parts.append(
                f"atom {a} {SYMBOLS.get(z, '?')}{qs} has valence "
                f"{int(res.valence[b, a])} (allowed {_allowed_text(z, q, charged)})"
            )
        more = (
            f" and {len(bad) - MAX_REASONS_PER_CHECK} more"
            if len(bad) > MAX_REASONS_PER_CHECK
            else ""
        )
        reasons.setdefault(int(indices[b]), []).append(
            f"{prefix}: unstable: " + "; ".join(parts) + more
        )


def stability_scores(
    context: EvaluationContext,
    rows: Sequence[int],
    bond_orders: Sequence[np.ndarray],
    *,
    table: str,
    prefix: str,
    suffix: str = "",
) -> Scores:
    """Atom and molecule stability of some of the context's molecules under a valence table.

    Atom i is stable when ``sum_j A_ij`` is an allowed valence of its element (``table="edm"``)
    or of its element and formal charge (``table="charged"``); a molecule is stable when all
    its atoms are (:func:`~symgen.molecules.bonds.stability_from_bonds`). The rates are over
    *all* input molecules and their atoms (``context.num_molecules``, ``context.num_atoms``):
    molecules not in ``rows`` count as unstable.

    Args:
        context: the evaluation context.
        rows: indices into ``context.molecules`` of the molecules to score.
        bond_orders: one dense ``(k, k)`` bond-order matrix per row.
        table: ``"edm"`` or ``"charged"``.
        prefix: prefix of the "unstable" failure reasons, e.g. ``"edm"``.
        suffix: suffix of the metric keys ``atom_stability`` and ``molecule_stability``.

    Examples:
        >>> ch3 = Molecule(np.array([6, 1, 1, 1]), np.array([[0.0, 0, 0], [1.09, 0, 0],
        ...                [-0.5, 0.94, 0], [-0.5, -0.94, 0]]))
        >>> ctx = EvaluationContext((ch3,), num_molecules=1, num_atoms=4)
        >>> s = stability_scores(ctx, [0], ctx.edm_bonds, table="edm", prefix="edm")
        >>> s.metrics
        {'atom_stability': (0.75, 4), 'molecule_stability': (0.0, 1)}
        >>> s.reasons
        {0: ['edm: unstable: atom 0 C has valence 3 (allowed 4)']}
    """
    charged = table == "charged"
    stable_atoms = stable_molecules = 0
    reasons: dict[int, list[str]] = {}
    molecules = [context.molecules[j] for j in rows]
    for idx, p in iter_chunks(molecules, bond_orders=bond_orders):
        charges = p.charges if charged else None
        res = stability_from_bonds(p.atomic_numbers, p.bonds, p.mask, charges, table=table)
        stable_atoms += int(res.atom_stable.sum())
        stable_molecules += int(res.molecule_stable.sum())
        _unstable_reasons(prefix, res, p, np.asarray(rows, dtype=np.int64)[idx], charged, reasons)
    n_atoms, n_molecules = context.num_atoms, context.num_molecules
    return Scores(
        metrics={
            "atom_stability" + suffix: (fraction(stable_atoms, n_atoms), n_atoms),
            "molecule_stability" + suffix: (fraction(stable_molecules, n_molecules), n_molecules),
        },
        reasons=reasons,
    )
