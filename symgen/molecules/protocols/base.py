"""What every evaluation protocol shares: the context it scores in and the record it returns.

A protocol is a module with a ``NAME``, a ``VERSION`` and a function
``score(context: EvaluationContext) -> Scores``; :data:`symgen.molecules.protocols.REGISTRY`
lists them as :class:`Protocol` records and :func:`symgen.molecules.evaluate.evaluate` runs
the selected ones in registry order.

:class:`EvaluationContext` holds the scorable molecules, the reference data and the options,
and computes on first use (then caches) what several protocols need: the EDM-inferred bonds
of the molecules, their own bonds checked, the reference subsample and reference SMILES.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TypeVar

import numpy as np

from symgen.molecules.bonds import (
    StabilityResult,
    ValenceTable,
    infer_bonds_edm,
    molecule_bond_orders,
    stability_from_bonds,
)
from symgen.molecules.dataset import MoleculeDataset
from symgen.molecules.elements import SYMBOLS
from symgen.molecules.metrics import (
    MIN_DISTANCE,
    PaddedMolecules,
    ValidityResult,
    canonical_smiles,
    check_bonds,
    check_molecule,
    iter_chunks,
    rdkit_validity,
    uniqueness,
)
from symgen.molecules.molecule import Molecule

__all__ = [
    "Scores",
    "EvaluationContext",
    "Protocol",
    "fraction",
    "edm_bond_matrices",
    "stability_scores",
    "validity_metrics",
    "given_bond_rows",
    "prefixed",
    "process_cached",
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
            prefixed with the protocol that produced it (``"edm: ..."``, ``"midi: ..."``).
        notes: how to read the numbers: which table was used, what was skipped and why.
    """

    metrics: dict[str, tuple[float, int]] = field(default_factory=dict)
    details: dict[str, dict[str, float]] = field(default_factory=dict)
    reasons: dict[int, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


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
        reference: reference molecules (e.g. the training set), or ``None``.
        reference_smiles: reference SMILES for novelty, or ``None`` (then derived from
            ``reference`` when given).
        max_reference_molecules: size of the reference subsample for geometry distances.
        max_strain_molecules: MMFF strain on at most this many molecules (0 disables).
        strain_max_iters: MMFF minimizer iterations per molecule.
        max_xtb_molecules: GFN2-xTB relaxations of the ``geom-revisited`` protocol (0: none).
        max_posebusters_molecules: molecules the ``posebusters`` protocol checks.
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
    reference: Sequence[Molecule] | MoleculeDataset | None = None
    reference_smiles: Sequence[str] | set[str] | None = None
    max_reference_molecules: int = 10_000
    max_strain_molecules: int = 1000
    strain_max_iters: int = 200
    max_xtb_molecules: int = 0
    max_posebusters_molecules: int = 100
    min_distance: float = MIN_DISTANCE
    seed: int = 0
    progress: bool = False

    @cached_property
    def edm_bonds(self) -> list[np.ndarray]:
        """EDM-inferred bond orders of each molecule (:func:`edm_bond_matrices`)."""
        return edm_bond_matrices(self.molecules)

    @property
    def has_given_bonds(self) -> bool:
        """Whether any molecule carries its own bonds (else the protocols on own bonds skip)."""
        return any(m.carries_bonds for m in self.molecules)

    @cached_property
    def _own_bonds(self) -> tuple[list[np.ndarray | None], dict[int, list[str]]]:
        bonds: list[np.ndarray | None] = [None] * len(self.molecules)
        problems: dict[int, list[str]] = {}
        for j, m in enumerate(self.molecules):
            found = (
                list(m.bond_problems)
                if m.bond_problems
                else ["no bonds given"]
                if m.bonds is None
                else check_bonds(m)
            )
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
        """Canonical reference SMILES without hydrogens or stereo, or ``None`` without reference.

        ``reference_smiles`` canonicalized when given; else the hydrogen-free SMILES of every
        sound reference molecule that RDKit sanitizes, from its own bonds (or EDM-inferred
        bonds) and charges (:func:`~symgen.molecules.bonds.molecule_bond_orders`). Cached for
        the process per reference object (training hooks score against the same one).
        """
        if self.reference_smiles is not None:
            return process_cached(
                "canonical",
                self.reference_smiles,
                lambda: canonical_smiles(self.reference_smiles, progress=self.progress),
            )
        if self.reference is None:
            return None

        def build() -> set[str]:
            full = self.sound_reference()
            bonds = [molecule_bond_orders(m) for m in full]
            val = rdkit_validity(full, bonds, rule="midi", progress=self.progress)
            return {s for s in val.smiles_noh if s}

        return process_cached("own-bonds", self.reference, build, self.min_distance)

    @cached_property
    def edm_novelty_reference(self) -> set[str] | None:
        """Reference SMILES built the way EDM builds its training SMILES, or ``None``.

        EDM (``compute_qm9_smiles``) infers each training molecule's bonds from its geometry
        with the distance tables, builds it without charges, sanitizes the *whole* molecule and
        writes ``Chem.MolToSmiles`` (explicit hydrogens kept); molecules that fail are left
        out. That is done here for every sound reference molecule (cached per reference object
        for the process). Without reference molecules, ``reference_smiles`` are converted to
        the same form (hydrogens added, stereo dropped, charges kept): an approximation, which the
        ``edm`` protocol notes in the report.
        """
        if self.reference is not None:
            return process_cached(
                "edm",
                self.reference,
                lambda: _edm_smiles(self.sound_reference(), progress=self.progress),
                self.min_distance,
            )
        if self.reference_smiles is not None:
            return _explicit_h_smiles(self.reference_smiles)
        return None

    def sound_reference(self) -> list[Molecule]:
        """Every reference molecule :func:`check_molecule` accepts (at ``min_distance``)."""
        assert self.reference is not None
        full = [self.reference[i] for i in range(len(self.reference))]
        return [m for m in full if not check_molecule(m, min_distance=self.min_distance)]


#: (kind, id, length) of a reference -> (the reference, its SMILES set); holding the reference
#: keeps its id from being reused while the entry lives.
_REFERENCE_CACHE: dict[tuple, tuple[object, object]] = {}
T = TypeVar("T")
_REFERENCE_CACHE_SIZE = 4


def process_cached(kind: str, reference, compute: Callable[[], T], *options: object) -> T:
    """``compute()`` once per process for a reference object, its length and ``options``.

    A few results are kept (training hooks score against the same reference every round).
    """
    key = (kind, id(reference), len(reference), *options)
    if key not in _REFERENCE_CACHE:
        while len(_REFERENCE_CACHE) >= _REFERENCE_CACHE_SIZE:
            _REFERENCE_CACHE.pop(next(iter(_REFERENCE_CACHE)))
        _REFERENCE_CACHE[key] = (reference, compute())
    return _REFERENCE_CACHE[key][1]


def _edm_smiles(molecules: Sequence[Molecule], *, progress: bool) -> set[str]:
    """EDM's training SMILES: whole molecule, EDM bonds, no charges, explicit hydrogens."""
    from rdkit import Chem, RDLogger
    from tqdm.auto import tqdm

    from symgen.molecules.io import to_rdkit

    out: set[str] = set()
    bonds = edm_bond_matrices(molecules)
    RDLogger.DisableLog("rdApp.*")
    try:
        for m, a in tqdm(
            zip(molecules, bonds, strict=True),
            total=len(molecules),
            desc="EDM reference SMILES",
            disable=not progress,
            leave=False,
        ):
            mol = Chem.Mol(to_rdkit(m, a, charges=False))
            try:
                Chem.SanitizeMol(mol)
            except Exception:  # noqa: S112 - EDM leaves molecules that fail out
                continue
            out.add(Chem.MolToSmiles(mol))
    finally:
        RDLogger.EnableLog("rdApp.*")
    return out


def _explicit_h_smiles(smiles: Sequence[str] | set[str]) -> set[str]:
    """SMILES rewritten with hydrogens as atoms and no stereo, EDM's form (charges kept)."""
    from rdkit import Chem, RDLogger

    out = set()
    RDLogger.DisableLog("rdApp.*")
    try:
        for s in smiles:
            mol = Chem.MolFromSmiles(s) if s else None
            if mol is not None:
                out.add(Chem.MolToSmiles(Chem.AddHs(mol), isomericSmiles=False))
    finally:
        RDLogger.EnableLog("rdApp.*")
    return out


@dataclass(frozen=True)
class Protocol:
    """A registry entry: one protocol and when the evaluator runs it.

    Attributes:
        name: the protocol name every metric it produces carries.
        version: bumped whenever a rule or table of the protocol changes.
        score: ``score(context) -> Scores``.
        requires: importable modules the protocol needs beyond symgen's core (its extra).
        extra: the ``pip install "symgen[...]"`` extra that provides ``requires``.
    """

    name: str
    version: str
    score: Callable[[EvaluationContext], Scores]
    requires: tuple[str, ...] = ()
    extra: str = ""

    @property
    def available(self) -> bool:
        """Whether every module in :attr:`requires` can be imported."""
        from importlib.util import find_spec

        return all(find_spec(m) is not None for m in self.requires)


def _allowed_text(table: ValenceTable, z: int, charge: int) -> str:
    entries = table.allowed.get(SYMBOLS.get(int(z), ""), {})
    vals = entries.get(int(charge))
    if vals is None and table.fallback_to_neutral:
        vals = entries.get(0)
    return "none" if not vals else "/".join(map(str, vals))


def _unstable_reasons(
    prefix: str,
    res: StabilityResult,
    p: PaddedMolecules,
    indices: np.ndarray,
    table: ValenceTable,
    charged: bool,
    reasons: dict[int, list[str]],
) -> None:
    """Add an 'unstable' reason for every unstable molecule; chunk row b is ``indices[b]``."""
    for b in np.nonzero(~res.molecule_stable & (res.num_atoms > 0))[0]:
        bad = np.nonzero(p.mask[b] & ~res.atom_stable[b])[0]
        parts = []
        for a in bad[:MAX_REASONS_PER_CHECK]:
            z, q = int(p.atomic_numbers[b, a]), int(p.charges[b, a]) if charged else 0
            qs = "" if q == 0 else f"{q:+d}"
            parts.append(
                f"atom {a} {SYMBOLS.get(z, '?')}{qs} has valence "
                f"{int(res.valence[b, a])} (allowed {_allowed_text(table, z, q)})"
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
    table: ValenceTable,
    charged: bool,
    prefix: str,
) -> Scores:
    """Atom and molecule stability of some of the context's molecules under a valence table.

    Atom i is stable when ``sum_j A_ij`` is allowed for its element (and formal charge when
    ``charged``) by ``table``; a molecule is stable when all its atoms are
    (:func:`~symgen.molecules.bonds.stability_from_bonds`). The rates are over *all* input
    molecules and their atoms (``context.num_molecules``, ``context.num_atoms``): molecules
    not in ``rows`` count as unstable, with all their atoms.

    Args:
        context: the evaluation context.
        rows: indices into ``context.molecules`` of the molecules to score.
        bond_orders: one dense ``(k, k)`` bond-order matrix per row.
        table: the valence table.
        charged: read the molecules' formal charges (else all atoms are neutral).
        prefix: prefix of the "unstable" failure reasons, e.g. ``"edm"``.

    Examples:
        >>> from symgen.molecules.bonds import EDM_TABLE
        >>> ch3 = Molecule(np.array([6, 1, 1, 1]), np.array([[0.0, 0, 0], [1.09, 0, 0],
        ...                [-0.5, 0.94, 0], [-0.5, -0.94, 0]]))
        >>> ctx = EvaluationContext((ch3,), num_molecules=1, num_atoms=4)
        >>> s = stability_scores(ctx, [0], ctx.edm_bonds, table=EDM_TABLE, charged=False,
        ...                      prefix="edm")
        >>> s.metrics
        {'atom_stability': (0.75, 4), 'molecule_stability': (0.0, 1)}
        >>> s.reasons
        {0: ['edm: unstable: atom 0 C has valence 3 (allowed 4)']}
    """
    stable_atoms = stable_molecules = 0
    reasons: dict[int, list[str]] = {}
    molecules = [context.molecules[j] for j in rows]
    for idx, p in iter_chunks(molecules, bond_orders=bond_orders):
        charges = p.charges if charged else None
        res = stability_from_bonds(p.atomic_numbers, p.bonds, p.mask, charges, table=table)
        stable_atoms += int(res.atom_stable.sum())
        stable_molecules += int(res.molecule_stable.sum())
        _unstable_reasons(
            prefix, res, p, np.asarray(rows, dtype=np.int64)[idx], table, charged, reasons
        )
    n_atoms, n_molecules = context.num_atoms, context.num_molecules
    return Scores(
        metrics={
            "atom_stability": (fraction(stable_atoms, n_atoms), n_atoms),
            "molecule_stability": (fraction(stable_molecules, n_molecules), n_molecules),
        },
        reasons=reasons,
    )


def validity_metrics(val: ValidityResult, num_molecules: int) -> dict[str, tuple[float, int]]:
    """Validity and valid-and-unique over all input molecules, uniqueness over the valid ones.

    Uniqueness compares :attr:`~symgen.molecules.metrics.ValidityResult.smiles` (as EDM's and
    MiDi's code write them).

    Examples:
        >>> from symgen.molecules.metrics import ValidityResult
        >>> val = ValidityResult(np.array([True, True, False]), np.array([True, True, False]),
        ...                      np.array([1, 1, 0]), ["C", "C", ""], ["C", "C", ""], ["", "", "x"])
        >>> validity_metrics(val, 4)
        {'validity': (0.5, 4), 'uniqueness': (0.5, 2), 'valid_and_unique': (0.25, 4)}
    """
    n_valid = int(val.valid.sum())
    smiles = [s for s in val.smiles if s]
    return {
        "validity": (fraction(n_valid, num_molecules), num_molecules),
        "uniqueness": (uniqueness(smiles), n_valid),
        "valid_and_unique": (fraction(len(set(smiles)), num_molecules), num_molecules),
    }


def given_bond_rows(context: EvaluationContext) -> tuple[list[int], list[np.ndarray]]:
    """Indices of the molecules with usable own bonds, and those bond-order matrices."""
    rows = [j for j, a in enumerate(context.given_bonds) if a is not None]
    return rows, [context.given_bonds[j] for j in rows]  # type: ignore[misc]


def prefixed(prefix: str, reasons: dict[int, list[str]]) -> dict[int, list[str]]:
    """``"bonds: no bonds given"`` -> ``"<prefix>: no bonds given"`` for each reason."""
    return {
        j: [f"{prefix}: {r.split(': ', 1)[1] if r.startswith('bonds: ') else r}" for r in rs]
        for j, rs in reasons.items()
    }
