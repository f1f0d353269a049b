"""Bond inference from geometry and valence rules: EDM distance tables and charge-aware valences.

**EDM distance tables** (Hoogeboom et al. 2022, *Equivariant Diffusion for Molecule
Generation in 3D*, their ``bond_analyze.py``; used by the ``edm`` protocol). For an atom pair
(a, b) at distance ``d`` (pm) with typical single/double/triple bond lengths ``l1 > l2 > l3``
(pm) and margins ``m1, m2, m3 = 10, 5, 3`` pm::

    order(a, b, d) = 0  if d >= l1 + m1                       (no bond)
                     1  if d <  l1 + m1 and not d < l2 + m2   (single)
                     2  if d <  l2 + m2 and not d < l3 + m3   (double)
                     3  if d <  l3 + m3                       (triple)

A higher order is only considered when the lower one fires and the pair has a tabulated length
for it; pairs without a tabulated single-bond length are never bonded. The tables are looked up
symmetrically (EDM's tables are symmetric on the QM9 elements). An atom is *stable* when the sum
of its bond orders is one of the allowed valences of its element (:data:`EDM_ALLOWED_VALENCES`);
a molecule is stable when all its atoms are.

**Valence tables** (:class:`ValenceTable`): which sums of bond orders an atom of an element
and formal charge may have. :data:`EDM_TABLE` (EDM; charges ignored), :data:`MIDI_TABLE` (the
charge-aware table of MiDi, reused by SemlaFlow and FlowMol; a charge the element does not list
falls back to its neutral entry), :data:`GEOM_REVISITED_TABLE` (the GEOM-Drugs table of
"GEOM-Drugs Revisited", Kekulé entries; an unlisted charge is unstable) and
:data:`SYMGEN_CHARGED_TABLE` (symgen's strict table: no neutral radicals, an unlisted charge is
unstable). Hydrogens are explicit atoms.

Distances are computed as EDM's ``check_stability`` computes them from its float32 sample
tensors (float32 differences, sum and square root; the conversion to pm in float64, as NumPy
1.x promoted it), so that thresholds are crossed where EDM's code crosses them.

Everything is vectorized over a padded batch ``(b, n)`` in NumPy: distances, table lookups and
valence checks are array operations, with no Python loop over atom pairs.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from jaxtyping import Bool, Float, Int

from symgen.molecules.elements import ATOMIC_NUMBERS, SYMBOLS
from symgen.molecules.molecule import Molecule

__all__ = [
    "EDM_BONDS1",
    "EDM_BONDS2",
    "EDM_BONDS3",
    "EDM_MARGINS",
    "EDM_ALLOWED_VALENCES",
    "CHARGED_ALLOWED_VALENCES",
    "MIDI_ALLOWED_VALENCES",
    "GEOM_REVISITED_TUPLES",
    "ValenceTable",
    "EDM_TABLE",
    "MIDI_TABLE",
    "GEOM_REVISITED_TABLE",
    "SYMGEN_CHARGED_TABLE",
    "StabilityResult",
    "infer_bonds_edm",
    "bond_matrix",
    "edm_bond_orders",
    "molecule_bond_orders",
    "allowed_valence",
    "stability_from_bonds",
    "stability_edm",
    "stability_charged",
    "stability_edm_reference",
]

# fmt: off
#: Typical single-bond lengths in pm (EDM protocol), ``EDM_BONDS1[a][b]``.
EDM_BONDS1: dict[str, dict[str, int]] = {
    "H": {"H": 74, "C": 109, "N": 101, "O": 96, "F": 92, "B": 119, "Si": 148, "P": 144,
          "As": 152, "S": 134, "Cl": 127, "Br": 141, "I": 161},
    "C": {"H": 109, "C": 154, "N": 147, "O": 143, "F": 135, "Si": 185, "P": 184, "S": 182,
          "Cl": 177, "Br": 194, "I": 214},
    "N": {"H": 101, "C": 147, "N": 145, "O": 140, "F": 136, "Cl": 175, "Br": 214, "S": 168,
          "I": 222, "P": 177},
    "O": {"H": 96, "C": 143, "N": 140, "O": 148, "F": 142, "Br": 172, "S": 151, "P": 163,
          "Si": 163, "Cl": 164, "I": 194},
    "F": {"H": 92, "C": 135, "N": 136, "O": 142, "F": 142, "S": 158, "Si": 160, "Cl": 166,
          "Br": 178, "P": 156, "I": 187},
    "B": {"H": 119, "Cl": 175},
    "Si": {"Si": 233, "H": 148, "C": 185, "O": 163, "S": 200, "F": 160, "Cl": 202, "Br": 215,
           "I": 243},
    "Cl": {"Cl": 199, "H": 127, "C": 177, "N": 175, "O": 164, "P": 203, "S": 207, "B": 175,
           "Si": 202, "F": 166, "Br": 214},
    "S": {"H": 134, "C": 182, "N": 168, "O": 151, "S": 204, "F": 158, "Cl": 207, "Br": 225,
          "Si": 200, "P": 210, "I": 234},
    "Br": {"Br": 228, "H": 141, "C": 194, "O": 172, "N": 214, "Si": 215, "S": 225, "F": 178,
           "Cl": 214, "P": 222},
    "P": {"P": 221, "H": 144, "C": 184, "O": 163, "Cl": 203, "S": 210, "F": 156, "N": 177,
          "Br": 222},
    "I": {"H": 161, "C": 214, "Si": 243, "N": 222, "O": 194, "S": 234, "F": 187, "I": 266},
    "As": {"H": 152},
}
#: Typical double-bond lengths in pm (EDM protocol).
EDM_BONDS2: dict[str, dict[str, int]] = {
    "C": {"C": 134, "N": 129, "O": 120, "S": 160},
    "N": {"C": 129, "N": 125, "O": 121},
    "O": {"C": 120, "N": 121, "O": 121, "P": 150},
    "P": {"O": 150, "S": 186},
    "S": {"P": 186},
}
#: Typical triple-bond lengths in pm (EDM protocol).
EDM_BONDS3: dict[str, dict[str, int]] = {
    "C": {"C": 120, "N": 116, "O": 113},
    "N": {"C": 116, "N": 110},
    "O": {"C": 113},
}
#: Margins (pm) added to the single, double and triple bond lengths (EDM protocol).
EDM_MARGINS: tuple[int, int, int] = (10, 5, 3)

#: Allowed valences (sum of bond orders, explicit hydrogens) per element, EDM protocol.
EDM_ALLOWED_VALENCES: dict[str, tuple[int, ...]] = {
    "H": (1,), "C": (4,), "N": (3,), "O": (2,), "F": (1,), "B": (3,), "Al": (3,), "Si": (4,),
    "P": (3, 5), "S": (4,), "Cl": (1,), "As": (3,), "Br": (1,), "I": (1,), "Hg": (1, 2),
    "Bi": (3, 5),
}

#: Allowed valences per element and formal charge (symgen's strict charge-aware table,
#: version 1). Charged states follow the isoelectronic rule (N⁺ like C, O⁻ like F, C⁻ like N, ...).
CHARGED_ALLOWED_VALENCES: dict[str, dict[int, tuple[int, ...]]] = {
    "H": {0: (1,), 1: (0,), -1: (0,)},
    "B": {0: (3,), -1: (4,)},
    "C": {0: (4,), 1: (3,), -1: (3,)},
    "N": {0: (3,), 1: (4,), -1: (2,)},
    "O": {0: (2,), 1: (3,), -1: (1,)},
    "F": {0: (1,), -1: (0,)},
    "Al": {0: (3,), -1: (4,)},
    "Si": {0: (4,)},
    "P": {0: (3, 5), 1: (4,), -1: (2,)},
    "S": {0: (2, 4, 6), 1: (3, 5), -1: (1, 3), 2: (4,)},
    "Cl": {0: (1,), -1: (0,)},
    "As": {0: (3, 5), 1: (4,)},
    "Se": {0: (2, 4, 6)},
    "Br": {0: (1,), -1: (0,)},
    "I": {0: (1, 3, 5), -1: (0,), 1: (2,)},
    "Hg": {0: (1, 2)},
    "Bi": {0: (3, 5)},
}

#: MiDi's allowed valences per element and formal charge (Vignac et al. 2023, ``allowed_bonds``
#: in ``midi/analysis/rdkit_functions.py``; the same table in SemlaFlow and FlowMol ≤ 2.0).
#: MiDi writes some entries without charges (B: 3, Hg: [1, 2]); they are the neutral entry here,
#: which the fallback of :data:`MIDI_TABLE` applies to every charge, as MiDi does.
MIDI_ALLOWED_VALENCES: dict[str, dict[int, tuple[int, ...]]] = {
    "H": {0: (1,), 1: (0,), -1: (0,)},
    "C": {0: (3, 4), 1: (3,), -1: (3,)},
    "N": {0: (2, 3), 1: (2, 3, 4), -1: (2,)},
    "O": {0: (2,), 1: (3,), -1: (1,)},
    "F": {0: (1,), -1: (0,)},
    "B": {0: (3,)}, "Al": {0: (3,)}, "Si": {0: (4,)},
    "P": {0: (3, 5), 1: (4,)},
    "S": {0: (2, 6), 1: (2, 3), 2: (4,), 3: (5,), -1: (3,)},
    "Cl": {0: (1,)}, "As": {0: (3,)},
    "Br": {0: (1,), 1: (2,)},
    "I": {0: (1,)}, "Hg": {0: (1, 2)}, "Bi": {0: (3, 5)}, "Se": {0: (2, 4, 6)},
}

#: The GEOM-Drugs valences of "GEOM-Drugs Revisited" (Nikitin et al. 2025, repository
#: ``isayevlab/geom-drugs-3dgen-evaluation``, ``geom_utils/geom_drugs_valency_table.py``):
#: per element and charge the ``(aromatic bonds, sum of the other bond orders)`` pairs seen
#: in the cleaned GEOM-Drugs training set.
GEOM_REVISITED_TUPLES: dict[str, dict[int, tuple[tuple[int, int], ...]]] = {
    "Br": {0: ((0, 1),), 1: ((0, 2),)},
    "C": {0: ((0, 4), (2, 2), (2, 1), (3, 0)), -1: ((0, 3), (2, 1), (3, 0)),
          1: ((0, 3), (2, 1), (3, 0))},
    "N": {0: ((0, 3), (2, 0), (2, 1), (3, 0)), 1: ((0, 4), (2, 0), (2, 1), (2, 2), (3, 0)),
          -1: ((0, 2), (2, 0)), -2: ((0, 1),)},
    "H": {0: ((0, 1),)},
    "S": {0: ((0, 2), (0, 3), (0, 6), (2, 0)), 1: ((0, 3), (2, 0), (2, 1), (3, 0)),
          2: ((0, 4), (2, 1), (2, 2)), 3: ((0, 2), (0, 5)), -1: ((0, 1),)},
    "O": {0: ((0, 2), (2, 0)), -1: ((0, 1),), 1: ((0, 3),)},
    "F": {0: ((0, 1),)},
    "Cl": {0: ((0, 1),), 1: ((0, 2),)},
    "P": {0: ((0, 3), (0, 5)), 1: ((0, 4),)},
    "I": {0: ((0, 1),), 1: ((0, 2),), 2: ((0, 3),)},
    "Si": {0: ((0, 4),), 1: ((0, 5),)},
    "B": {-1: ((0, 4),), 0: ((0, 3),)},
    "Bi": {0: ((0, 3),), 2: ((0, 5),)},
}
# fmt: on


@dataclass(frozen=True)
class ValenceTable:
    """Allowed valences (sums of bond orders) per element and formal charge, and a fallback rule.

    Atom ``(Z, q)`` with valence ``v`` is allowed when ``v in allowed[symbol(Z)][q]``; when the
    element lists no entry for ``q``, it is judged by its neutral entry if
    ``fallback_to_neutral`` (MiDi's rule; with only neutral entries this ignores charges, EDM's
    rule), else it is not allowed. Elements absent from the table are never allowed.

    Examples:
        >>> MIDI_TABLE.allows(7, 2, 5), GEOM_REVISITED_TABLE.allows(7, 2, 5)
        (True, False)
    """

    name: str
    allowed: dict[str, dict[int, tuple[int, ...]]]
    fallback_to_neutral: bool = False

    def allows(self, atomic_number: int, valence: int, charge: int = 0) -> bool:
        """Whether one atom's valence is allowed (the scalar rule the lookup vectorizes)."""
        entries = self.allowed.get(SYMBOLS.get(int(atomic_number), ""), {})
        if int(charge) in entries:
            return int(valence) in entries[int(charge)]
        return self.fallback_to_neutral and int(valence) in entries.get(0, ())

    def lookup(self) -> np.ndarray:
        """Dense ``(Z, charge + 4, valence)`` boolean table over charges -4..4, valences 0..16."""
        cached = self.__dict__.get("_lookup")
        if cached is None:
            cached = np.zeros((_NZ, 2 * _CHARGE_OFFSET + 1, _MAX_VALENCE + 1), dtype=bool)
            for z in SYMBOLS:
                for q in range(-_CHARGE_OFFSET, _CHARGE_OFFSET + 1):
                    for v in range(_MAX_VALENCE + 1):
                        cached[z, q + _CHARGE_OFFSET, v] = self.allows(z, v, q)
            object.__setattr__(self, "_lookup", cached)  # frozen: cache beside the fields
        return cached


_NZ = max(SYMBOLS) + 1  # atomic numbers 0..83 index the lookup tables (0 = padding)
_MAX_VALENCE = 16  # valences above this are never allowed
_CHARGE_OFFSET = 4  # formal charges -4..+4


def _pair_table(table: dict[str, dict[str, int]], margin: int) -> np.ndarray:
    """Dense symmetric ``(Z, Z)`` threshold table in pm; ``-inf`` where no length is tabulated."""
    out = np.full((_NZ, _NZ), -np.inf)
    for a, row in table.items():
        for b, length in row.items():
            za, zb = ATOMIC_NUMBERS[a], ATOMIC_NUMBERS[b]
            out[za, zb] = out[zb, za] = float(length + margin)
    return out


_THR1 = _pair_table(EDM_BONDS1, EDM_MARGINS[0])
_THR2 = _pair_table(EDM_BONDS2, EDM_MARGINS[1])
_THR3 = _pair_table(EDM_BONDS3, EDM_MARGINS[2])


#: EDM's table: :data:`EDM_ALLOWED_VALENCES`, charges ignored.
EDM_TABLE = ValenceTable(
    "edm", {s: {0: v} for s, v in EDM_ALLOWED_VALENCES.items()}, fallback_to_neutral=True
)
#: MiDi's table (:data:`MIDI_ALLOWED_VALENCES`), an unlisted charge judged as neutral.
MIDI_TABLE = ValenceTable("midi", MIDI_ALLOWED_VALENCES, fallback_to_neutral=True)
#: The Kekulé entries (no aromatic bond) of :data:`GEOM_REVISITED_TUPLES`; unlisted charges fail.
GEOM_REVISITED_TABLE = ValenceTable(
    "geom-revisited",
    {
        s: {q: tuple(v for a, v in pairs if a == 0) for q, pairs in by_q.items()}
        for s, by_q in GEOM_REVISITED_TUPLES.items()
    },
)
#: symgen's strict charge-aware table (:data:`CHARGED_ALLOWED_VALENCES`); unlisted charges fail.
SYMGEN_CHARGED_TABLE = ValenceTable("symgen-charged-valence", CHARGED_ALLOWED_VALENCES)

_TABLES = {"edm": EDM_TABLE, "charged": SYMGEN_CHARGED_TABLE, "midi": MIDI_TABLE}


def _safe_z(atomic_numbers: np.ndarray) -> np.ndarray:
    """Atomic numbers with anything outside the known table mapped to 0 (never bonded)."""
    z = np.asarray(atomic_numbers, dtype=np.int64)
    return np.where((z > 0) & (z < _NZ), z, 0)


def infer_bonds_edm(
    atomic_numbers: Int[np.ndarray, "*batch n"],
    positions: Float[np.ndarray, "*batch n 3"],
    mask: Bool[np.ndarray, "*batch n"] | None = None,
) -> Int[np.ndarray, "*batch n n"]:
    """Bond-order matrix inferred from interatomic distances with the EDM distance tables.

    ``A[..., i, j] = order(Z_i, Z_j, 100 * |x_i - x_j|)`` with the rule of the module docstring
    (distances converted from Å to pm); the diagonal, padding (``mask == False``) and pairs
    with unknown elements are 0. The result is symmetric, with entries in {0, 1, 2, 3}.

    Args:
        atomic_numbers: atomic numbers, shape ``(..., n)``; padding may hold anything.
        positions: coordinates in Å, shape ``(..., n, 3)``.
        mask: ``True`` on real atoms; default all atoms real.

    Returns:
        Integer bond orders, shape ``(..., n, n)``.

    Examples:
        >>> z = np.array([6, 6]); x = np.array([[0., 0, 0], [1.20, 0, 0]])
        >>> int(infer_bonds_edm(z, x)[0, 1])   # 120 pm < 120 + 3: a C#C triple bond
        3
    """
    z = _safe_z(atomic_numbers)
    # EDM's arithmetic: float32 ((dx² + dy²) + dz²) and sqrt, then 100 * d in float64 (a
    # Python scalar times a NumPy float32 scalar was float64 before NumPy 2, EDM's era)
    pos = np.asarray(positions, dtype=np.float32)
    d2 = np.zeros(pos.shape[:-1] + pos.shape[-2:-1], dtype=np.float32)
    for k in range(3):  # three (.., n, n) passes; cheaper than a (.., n, n, 3) difference array
        c = pos[..., k]
        d2 += np.square(c[..., :, None] - c[..., None, :])
    dist_pm = 100.0 * np.sqrt(d2).astype(np.float64)
    # compact element index: the threshold tables are gathered from a small (e, e) block
    present, cz = np.unique(z, return_inverse=True)
    cz = cz.reshape(z.shape)
    pair = cz[..., :, None] * len(present) + cz[..., None, :]
    block = np.ix_(present, present)
    single = dist_pm < _THR1[block].ravel()[pair]
    double = single & (dist_pm < _THR2[block].ravel()[pair])
    triple = double & (dist_pm < _THR3[block].ravel()[pair])
    order = single.astype(np.int64) + double + triple
    n = z.shape[-1]
    valid = ~np.eye(n, dtype=bool)
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        valid = valid & m[..., :, None] & m[..., None, :]
    # NaN distances compare False above, so they never produce bonds
    return np.where(valid, order, 0)


def bond_matrix(
    num_atoms: int, bonds: Int[np.ndarray, "m 2"], bond_orders: Int[np.ndarray, " m_orders"]
) -> Int[np.ndarray, "{num_atoms} {num_atoms}"]:
    """Dense symmetric bond-order matrix from an edge list: ``A[i, j] = A[j, i] = order``.

    Raises:
        ValueError: an index is out of range, a bond is a self-loop, or an order is not 1..3.

    Examples:
        >>> bond_matrix(3, np.array([[0, 1], [1, 2]]), np.array([2, 1])).sum(1).tolist()
        [2, 3, 1]
    """
    bonds = np.asarray(bonds, dtype=np.int64).reshape(-1, 2)
    orders = np.asarray(bond_orders, dtype=np.int64).reshape(-1)
    if len(bonds) != len(orders):
        raise ValueError(f"{len(bonds)} bonds but {len(orders)} bond orders")
    if len(bonds) and (bonds.min() < 0 or bonds.max() >= num_atoms):
        raise ValueError(f"bond index out of range for {num_atoms} atoms")
    if np.any(bonds[:, 0] == bonds[:, 1]):
        raise ValueError("self-loop bond (i, i)")
    if np.any((orders < 1) | (orders > 3)):
        raise ValueError(f"bond orders must be 1, 2 or 3, got {sorted(set(orders.tolist()))}")
    out = np.zeros((num_atoms, num_atoms), dtype=np.int64)
    out[bonds[:, 0], bonds[:, 1]] = orders
    out[bonds[:, 1], bonds[:, 0]] = orders
    return out


def edm_bond_orders(molecule: Molecule) -> Int[np.ndarray, "k k"]:
    """Bond orders of one molecule inferred from its geometry alone (:func:`infer_bonds_edm`).

    The molecule's own bonds, if any, are ignored: this is the rule every geometry-based metric
    applies to generated and reference molecules alike.

    Examples:
        >>> co = Molecule(np.array([6, 8]), np.array([[0.0, 0, 0], [1.13, 0, 0]]))
        >>> edm_bond_orders(co).tolist()       # 113 pm < 113 + 3: a C#O triple bond
        [[0, 3], [3, 0]]
    """
    return infer_bonds_edm(
        np.asarray(molecule.atomic_numbers, dtype=np.int64),
        np.asarray(molecule.positions, dtype=np.float64),
    )


def molecule_bond_orders(molecule: Molecule, *, unsound: str = "edm") -> Int[np.ndarray, "k k"]:
    """Dense bond orders of a molecule: its own bonds when present and sound, else EDM bonds.

    Rule, for a molecule with ``k`` atoms:

    * no own bonds (``molecule.bonds is None``): :func:`edm_bond_orders`, inferred from the
      geometry with the EDM distance tables;
    * own bonds without ``bond_orders``: every bond is a single bond;
    * own bonds are *sound* when :func:`bond_matrix` accepts them (indices in ``0..k-1``, no
      self-loop, orders 1..3, as many orders as bonds) and no atom pair is listed twice; sound
      bonds give ``A[i, j] = A[j, i] = order``;
    * unsound own bonds: ``unsound="edm"`` (default, what the evaluator does for reference
      molecules) falls back to :func:`edm_bond_orders`; ``unsound="raise"`` raises instead
      (what the file writers do, so that corrupt bonds are never silently replaced).

    Args:
        molecule: the molecule.
        unsound: ``"edm"`` or ``"raise"``: what to do with unsound own bonds.

    Returns:
        The symmetric ``(k, k)`` int64 bond-order matrix (entries 0..3, zero diagonal).

    Raises:
        ValueError: unsound own bonds with ``unsound="raise"`` (the message names the problem),
            or an unknown ``unsound`` value.

    Examples:
        >>> xyz = np.array([[0.0, 0, 0], [1.13, 0, 0]])
        >>> int(molecule_bond_orders(Molecule(np.array([6, 8]), xyz))[0, 1])   # EDM: C#O
        3
        >>> own = Molecule(np.array([6, 8]), xyz, bonds=np.array([[0, 1]]),
        ...                bond_orders=np.array([2]))
        >>> int(molecule_bond_orders(own)[0, 1])                                 # its own C=O
        2
        >>> bad = Molecule(np.array([6, 8]), xyz, bonds=np.array([[0, 5]]))
        >>> int(molecule_bond_orders(bad)[0, 1])                                 # unsound: EDM
        3
        >>> molecule_bond_orders(bad, unsound="raise")
        Traceback (most recent call last):
        ...
        ValueError: bond index out of range for 2 atoms
    """
    if unsound not in ("edm", "raise"):
        raise ValueError(f"unsound must be 'edm' or 'raise', got {unsound!r}")
    if molecule.bonds is None:
        return edm_bond_orders(molecule)
    bonds = np.asarray(molecule.bonds, dtype=np.int64).reshape(-1, 2)
    orders = (
        np.ones(len(bonds), dtype=np.int64)
        if molecule.bond_orders is None
        else np.asarray(molecule.bond_orders, dtype=np.int64)
    )
    try:
        a = bond_matrix(molecule.num_atoms, bonds, orders)
        if int(np.count_nonzero(a)) != 2 * len(bonds):
            raise ValueError("duplicate bonds")
    except ValueError:
        if unsound == "raise":
            raise
        return edm_bond_orders(molecule)
    return a


def allowed_valence(
    atomic_numbers: Int[np.ndarray, "*batch"],
    valence: Int[np.ndarray, "*batch"],
    charges: Int[np.ndarray, "*batch"] | None = None,
    *,
    table: "str | ValenceTable" = "edm",
) -> Bool[np.ndarray, "*batch"]:
    """Whether each atom's valence (sum of bond orders) is allowed for its element (and charge).

    ``table`` is a :class:`ValenceTable` or one of the names ``"edm"`` (:data:`EDM_TABLE`,
    charges ignored), ``"charged"`` (:data:`SYMGEN_CHARGED_TABLE`) and ``"midi"``
    (:data:`MIDI_TABLE`); ``charges`` default to all neutral. Unknown elements, charges outside
    -4..4 and valences above 16 are never allowed.

    Examples:
        >>> z, v, q = np.array([7, 7]), np.array([4, 4]), np.array([0, 1])
        >>> allowed_valence(z, v, q, table="charged").tolist()
        [False, True]
    """
    if isinstance(table, str):
        if table not in _TABLES:
            raise ValueError(f"unknown valence table {table!r}; choose one of {sorted(_TABLES)}")
        table = _TABLES[table]
    lookup = table.lookup()
    z = _safe_z(atomic_numbers)
    v = np.asarray(valence, dtype=np.int64)
    q = np.zeros_like(z) if charges is None else np.asarray(charges, dtype=np.int64)
    ok = (v >= 0) & (v <= _MAX_VALENCE) & (q >= -_CHARGE_OFFSET) & (q <= _CHARGE_OFFSET)
    res = lookup[z, np.clip(q + _CHARGE_OFFSET, 0, 2 * _CHARGE_OFFSET), np.clip(v, 0, _MAX_VALENCE)]
    return ok & res


@dataclass(frozen=True)
class StabilityResult:
    """Per-atom and per-molecule stability of a padded batch.

    Attributes:
        valence: ``(b, n)`` sum of bond orders of each atom (0 on padding).
        atom_stable: ``(b, n)`` whether each real atom has an allowed valence (False on padding).
        molecule_stable: ``(b,)`` whether all real atoms of a molecule are stable
            (a molecule without atoms is not stable).
        num_atoms: ``(b,)`` number of real atoms.
    """

    valence: np.ndarray
    atom_stable: np.ndarray
    molecule_stable: np.ndarray
    num_atoms: np.ndarray

    @property
    def atom_stability(self) -> float:
        """Fraction of stable atoms over all real atoms of the batch (NaN without atoms)."""
        total = int(self.num_atoms.sum())
        return float(self.atom_stable.sum() / total) if total else float("nan")

    @property
    def molecule_stability(self) -> float:
        """Fraction of stable molecules (NaN for an empty batch)."""
        return float(self.molecule_stable.mean()) if len(self.molecule_stable) else float("nan")


def stability_from_bonds(
    atomic_numbers: Int[np.ndarray, "b n"],
    bonds: Int[np.ndarray, "b n n"],
    mask: Bool[np.ndarray, "b n"],
    charges: Int[np.ndarray, "b n"] | None = None,
    *,
    table: "str | ValenceTable" = "edm",
) -> StabilityResult:
    """Atom and molecule stability from a batch of bond-order matrices.

    ``valence_i = sum_j A_ij``; atom i is stable when ``valence_i`` is allowed for ``Z_i``
    (and ``charge_i`` with ``table="charged"``); a molecule is stable when all atoms are.

    Examples:
        >>> z = np.array([[6, 1, 1, 1, 1]]); a = np.zeros((1, 5, 5), dtype=np.int64)
        >>> a[0, 0, 1:] = a[0, 1:, 0] = 1                      # methane
        >>> stability_from_bonds(z, a, np.ones((1, 5), bool)).molecule_stable.tolist()
        [True]
    """
    m = np.asarray(mask, dtype=bool)
    a = np.where(m[:, :, None] & m[:, None, :], np.asarray(bonds, dtype=np.int64), 0)
    valence = a.sum(-1)
    stable = allowed_valence(atomic_numbers, valence, charges, table=table) & m
    num = m.sum(-1)
    mol_stable = (stable.sum(-1) == num) & (num > 0)
    return StabilityResult(
        valence=valence, atom_stable=stable, molecule_stable=mol_stable, num_atoms=num
    )


def stability_edm(
    atomic_numbers: Int[np.ndarray, "b n"],
    positions: Float[np.ndarray, "b n 3"],
    mask: Bool[np.ndarray, "b n"],
) -> StabilityResult:
    """EDM-protocol stability from geometry alone: :func:`infer_bonds_edm` then the EDM valences.

    Examples:
        >>> z = np.array([[6, 1, 1, 1, 1]])
        >>> x = np.array([[[0, 0, 0], [.63, .63, .63], [-.63, -.63, .63], [-.63, .63, -.63],
        ...                [.63, -.63, -.63]]], dtype=float)
        >>> stability_edm(z, x, np.ones((1, 5), bool)).atom_stability
        1.0
    """
    a = infer_bonds_edm(atomic_numbers, positions, mask)
    return stability_from_bonds(atomic_numbers, a, mask, table="edm")


def stability_charged(
    atomic_numbers: Int[np.ndarray, "b n"],
    charges: Int[np.ndarray, "b n"],
    bonds: Int[np.ndarray, "b n n"],
    mask: Bool[np.ndarray, "b n"],
) -> StabilityResult:
    """Charge-aware stability of generated bonds and charges (:data:`CHARGED_ALLOWED_VALENCES`).

    Examples:
        >>> z = np.array([[7, 1, 1, 1, 1]]); q = np.array([[1, 0, 0, 0, 0]])   # ammonium NH4+
        >>> a = np.zeros((1, 5, 5), dtype=np.int64); a[0, 0, 1:] = a[0, 1:, 0] = 1
        >>> stability_charged(z, q, a, np.ones((1, 5), bool)).molecule_stable.tolist()
        [True]
    """
    return stability_from_bonds(atomic_numbers, bonds, mask, charges, table="charged")


def _edm_order_scalar(a: str, b: str, dist_pm: float) -> int:
    """EDM bond order of one pair, written as plain nested conditions (reference implementation)."""
    l1 = EDM_BONDS1.get(a, {}).get(b, EDM_BONDS1.get(b, {}).get(a))
    if l1 is None or not dist_pm < l1 + EDM_MARGINS[0]:
        return 0
    l2 = EDM_BONDS2.get(a, {}).get(b, EDM_BONDS2.get(b, {}).get(a))
    if l2 is None or not dist_pm < l2 + EDM_MARGINS[1]:
        return 1
    l3 = EDM_BONDS3.get(a, {}).get(b, EDM_BONDS3.get(b, {}).get(a))
    if l3 is None or not dist_pm < l3 + EDM_MARGINS[2]:
        return 2
    return 3


def stability_edm_reference(
    atomic_numbers: Sequence[int], positions: Sequence[Sequence[float | int]]
) -> tuple[bool, int, int]:
    """Straightforward pure-Python EDM stability of one molecule (double loop over atom pairs).

    A plain reference for :func:`stability_edm` (the protocol tests and ``benchmarks/evaluate.py``
    carry their own); it follows the published per-molecule procedure (float32 distances pair
    by pair). Returns
    ``(molecule_stable, num_stable_atoms, num_atoms)``.

    Examples:
        >>> stability_edm_reference([8, 1, 1], [[0, 0, 0], [.96, 0, 0], [-.24, .93, 0]])
        (True, 3, 3)
    """
    syms = [SYMBOLS.get(int(z), "?") for z in atomic_numbers]
    pos = np.asarray(positions, dtype=np.float32)  # EDM's sample tensors are float32
    valence = [0] * len(syms)
    for i in range(len(syms)):
        for j in range(i + 1, len(syms)):
            d = np.sqrt(np.sum((pos[i] - pos[j]) ** 2))
            order = _edm_order_scalar(syms[i], syms[j], 100.0 * float(d))
            valence[i] += order
            valence[j] += order
    stable = sum(
        int(v in EDM_ALLOWED_VALENCES.get(s, ())) for s, v in zip(syms, valence, strict=False)
    )
    return stable == len(syms) and len(syms) > 0, stable, len(syms)
