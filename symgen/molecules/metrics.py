"""The building blocks of the evaluation protocols (:mod:`symgen.molecules.protocols`).

The protocols compose these; each number in a report names its protocol
(see :mod:`symgen.molecules.evaluate`):

* **Input checks** — :func:`check_molecule` (what makes a molecule unscorable) and
  :func:`check_bonds` (what makes its own bonds unusable).
* **Padded batches** — :func:`pad_molecules` and :func:`iter_chunks`, so that bond inference
  and valence checks run as array operations over chunks of similar size.
* **Validity** (:func:`rdkit_validity`) — an RDKit molecule is built from the atoms and bonds
  (and formal charges when asked), without ``NoImplicit`` flags, and sanitized; the SMILES of
  the *largest fragment* is kept, as EDM writes it (explicit hydrogens) and without hydrogens
  or stereo (comparable with dataset SMILES). EDM's and MiDi's rules differ in what is
  sanitized first (the whole molecule or the largest fragment).
* **Uniqueness** = ``|set(valid SMILES)| / #valid``; **novelty** = share of the distinct valid
  SMILES absent from the reference (training) SMILES.
* **Geometry** — Wasserstein-1 distances between generated and reference samples of bond
  lengths per bond type (e.g. ``C-H``, ``C=O``; Å), bond angles per angle type (``X-Y-Z`` with
  centre ``Y``; degrees) and per-molecule atom-type counts per element, plus the total-variation
  distance of the element frequencies.
* **MMFF strain** (:func:`mmff_strain`) — MMFF94 energy minus the energy after MMFF
  relaxation (kcal/mol), for molecules with explicit hydrogens that MMFF can parametrize.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from jaxtyping import Bool, Float, Int

from symgen.molecules.bonds import molecule_bond_orders
from symgen.molecules.elements import SYMBOLS
from symgen.molecules.molecule import Molecule

__all__ = [
    "MIN_DISTANCE",
    "PaddedMolecules",
    "check_molecule",
    "check_bonds",
    "pad_molecules",
    "iter_chunks",
    "ValidityResult",
    "rdkit_validity",
    "canonical_smiles",
    "uniqueness",
    "novelty",
    "bond_type_name",
    "angle_type_name",
    "bond_length_samples",
    "bond_angle_samples",
    "atom_count_samples",
    "wasserstein_by_type",
    "total_variation",
    "StrainResult",
    "mmff_strain",
]

#: Two atoms closer than this (Å) are reported as overlapping (shortest real bond: H-H 0.74 Å).
MIN_DISTANCE: float = 0.5
_BOND_SYMBOL = {1: "-", 2: "=", 3: "#"}


def check_molecule(molecule: Molecule, *, min_distance: float = MIN_DISTANCE) -> list[str]:
    """Problems that make a molecule unscorable: empty, bad shapes, unknown elements, NaN, overlaps.

    Returns an empty list for a sound molecule, else one message per problem. Overlap means
    two atoms closer than ``min_distance`` Å (``min_distance=0`` skips that check).

    Examples:
        >>> check_molecule(Molecule(np.array([6, 6]), np.array([[0., 0, 0], [0.1, 0, 0]])))
        ['overlapping atoms 0 and 1 (0.100 Å apart)']
    """
    z = np.asarray(molecule.atomic_numbers)
    pos = np.asarray(molecule.positions)
    if z.ndim != 1 or pos.ndim != 2 or pos.shape != (len(z), 3):
        return [f"inconsistent shapes: atomic_numbers {z.shape}, positions {pos.shape}"]
    if len(z) == 0:
        return ["empty molecule (no atoms)"]
    problems = list(molecule.problems)
    if problems:
        return problems
    if not np.issubdtype(z.dtype, np.integer):
        return [f"atomic numbers must be integers, got dtype {z.dtype}"]
    unknown = sorted({int(a) for a in z if int(a) not in SYMBOLS})
    if unknown:
        problems.append(f"unknown element (atomic number {', '.join(map(str, unknown))})")
    if not np.all(np.isfinite(pos)):
        problems.append(f"non-finite coordinates ({int((~np.isfinite(pos).all(1)).sum())} atoms)")
    elif len(z) > 1 and min_distance > 0:
        d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
        d[np.diag_indices(len(z))] = np.inf
        i, j = np.unravel_index(np.argmin(d), d.shape)
        if d[i, j] < min_distance:
            i, j = sorted((int(i), int(j)))
            problems.append(f"overlapping atoms {i} and {j} ({d[i, j]:.3f} Å apart)")
    if molecule.charges is not None and np.asarray(molecule.charges).shape != z.shape:
        problems.append(f"charges shape {np.asarray(molecule.charges).shape} != {z.shape}")
    return problems


def check_bonds(molecule: Molecule) -> list[str]:
    """Problems with a molecule's own bonds, for the protocols on own bonds (none without bonds).

    The rule of :func:`~symgen.molecules.bonds.molecule_bond_orders` (indices in range, no
    self-loops, orders 1..3, no pair listed twice), and in addition explicit ``bond_orders``:
    the protocols on own bonds score the orders a model generated, so they are never assumed.

    Examples:
        >>> check_bonds(Molecule(np.array([1, 1]), np.zeros((2, 3)), bonds=np.array([[0, 2]]),
        ...                      bond_orders=np.array([1])))
        ['bad bonds: bond index out of range for 2 atoms']
    """
    if molecule.bonds is None:
        return []
    if molecule.bond_orders is None:
        return ["bad bonds: bonds given without bond_orders"]
    try:
        molecule_bond_orders(molecule, unsound="raise")
    except ValueError as err:
        return [f"bad bonds: {err}"]
    return []


@dataclass(frozen=True)
class PaddedMolecules:
    """A padded NumPy batch of sound molecules (see :func:`pad_molecules`).

    Attributes:
        atomic_numbers: ``(b, n)`` int64, 0 on padding.
        positions: ``(b, n, 3)`` float64, 0 on padding.
        mask: ``(b, n)`` bool, ``True`` on real atoms (prefix mask).
        charges: ``(b, n)`` int64 formal charges (0 where unknown).
        bonds: ``(b, n, n)`` int64 bond orders: the matrices passed to :func:`pad_molecules`,
            else the molecules' own sound bonds (:func:`check_bonds`), else 0.
        has_bonds: ``(b,)`` whether each row of ``bonds`` holds a bond matrix.
    """

    atomic_numbers: np.ndarray
    positions: np.ndarray
    mask: np.ndarray
    charges: np.ndarray
    bonds: np.ndarray
    has_bonds: np.ndarray


def pad_molecules(
    molecules: Sequence[Molecule], bond_orders: Sequence[np.ndarray] | None = None
) -> PaddedMolecules:
    """Stack molecules into a padded batch (call :func:`check_molecule` first).

    Args:
        molecules: sound molecules.
        bond_orders: optional dense ``(k, k)`` bond-order matrix per molecule (e.g. EDM-inferred)
            to pad into ``bonds``; by default the molecules' own bonds where :func:`check_bonds`
            finds them sound (molecules with unsound or no bonds get zeros).

    Examples:
        >>> p = pad_molecules([Molecule(np.array([1, 1]), np.zeros((2, 3))),
        ...                    Molecule(np.array([8]), np.zeros((1, 3)))])
        >>> p.mask.tolist()
        [[True, True], [True, False]]
    """
    if bond_orders is not None and len(bond_orders) != len(molecules):
        raise ValueError(f"{len(bond_orders)} bond matrices for {len(molecules)} molecules")
    b = len(molecules)
    n = max((m.num_atoms for m in molecules), default=0)
    z = np.zeros((b, n), dtype=np.int64)
    pos = np.zeros((b, n, 3))
    mask = np.zeros((b, n), dtype=bool)
    q = np.zeros((b, n), dtype=np.int64)
    a = np.zeros((b, n, n), dtype=np.int64)
    has = np.zeros(b, dtype=bool)
    for i, m in enumerate(molecules):
        k = m.num_atoms
        z[i, :k] = m.atomic_numbers
        pos[i, :k] = m.positions
        mask[i, :k] = True
        if m.charges is not None:
            q[i, :k] = m.charges
        if bond_orders is not None:
            a[i, :k, :k] = bond_orders[i]
            has[i] = True
        elif m.bonds is not None and not check_bonds(m):
            a[i, :k, :k] = molecule_bond_orders(m)
            has[i] = True
    return PaddedMolecules(z, pos, mask, q, a, has)


def iter_chunks(
    molecules: Sequence[Molecule],
    max_entries: int = 2_000_000,
    *,
    bond_orders: Sequence[np.ndarray] | None = None,
):
    """Yield ``(indices, PaddedMolecules)`` chunks of molecules of similar size.

    Molecules are visited in order of atom count (stable sort), so each chunk is padded only
    to the size of its largest member; ``indices`` (int array) gives the positions in
    ``molecules`` of the chunk's rows. Each chunk has at most ~``max_entries`` atom pairs
    (``b * n * n``), which bounds the memory of the ``(b, n, n)`` pair arrays.
    ``bond_orders`` (one matrix per molecule) is padded into the chunks' ``bonds`` as in
    :func:`pad_molecules`.

    Examples:
        >>> mols = [Molecule(np.array([6] * k), np.zeros((k, 3))) for k in (3, 1, 2)]
        >>> [(idx.tolist(), p.mask.shape) for idx, p in iter_chunks(mols, max_entries=8)]
        [([1, 2], (2, 2)), ([0], (1, 3))]
    """
    sizes = np.array([m.num_atoms for m in molecules], dtype=np.int64)
    order = np.argsort(sizes, kind="stable")
    start = 0
    while start < len(order):
        n = max(int(sizes[order[start]]), 1)
        stop = start + 1
        while stop < len(order):
            n_new = max(n, int(sizes[order[stop]]))
            if (stop - start + 1) * n_new * n_new > max_entries:
                break
            n, stop = n_new, stop + 1
        idx = order[start:stop]
        chunk_bonds = None if bond_orders is None else [bond_orders[int(i)] for i in idx]
        yield idx, pad_molecules([molecules[int(i)] for i in idx], chunk_bonds)
        start = stop


@dataclass(frozen=True)
class ValidityResult:
    """RDKit validity of a list of molecules.

    Attributes:
        valid: ``(N,)`` the molecule passes the rule's sanitization.
        connected: ``(N,)`` valid and a single fragment.
        num_fragments: ``(N,)`` number of fragments of the built molecule (0 where the rule
            does not reach it: EDM counts fragments of valid molecules only, MiDi of all).
        smiles: ``Chem.MolToSmiles`` (default options, explicit hydrogens kept) of the
            sanitized largest fragment, as EDM's and MiDi's code write it; ``""`` where invalid.
        smiles_noh: canonical SMILES of the same fragment without hydrogens or stereo
            (comparable with dataset SMILES); ``""`` where invalid.
        errors: sanitization error message per molecule, ``""`` where valid.
    """

    valid: np.ndarray
    connected: np.ndarray
    num_fragments: np.ndarray
    smiles: list[str]
    smiles_noh: list[str]
    errors: list[str]


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[-1] if text else type(err).__name__


def _largest_fragment(mol, *, sanitize: bool):
    """Fragments of ``mol`` and the largest by atom count (the first one on a tie)."""
    from rdkit import Chem

    parts = Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=sanitize)
    largest = parts[0] if parts else mol
    for part in parts[1:]:
        if part.GetNumAtoms() > largest.GetNumAtoms():
            largest = part
    return parts, largest


def rdkit_validity(
    molecules: Sequence[Molecule],
    bond_orders: Sequence[np.ndarray],
    *,
    use_charges: bool = True,
    rule: str = "edm",
    hydrogen_free_smiles: bool = True,
    progress: bool = False,
) -> ValidityResult:
    """RDKit validity of atoms + bonds: build the molecule, sanitize, keep the largest fragment.

    Atoms carry no ``NoImplicit`` flag, so under-bonded atoms get implicit hydrogens and only
    over-bonded atoms (or unkekulizable rings) fail. Two published rules:

    * ``rule="edm"`` (EDM's ``BasicMolecularMetrics``): sanitize the whole molecule; if that
      succeeds, take the largest fragment (atoms counted with hydrogens, the first on a tie),
      sanitize it and write its SMILES.
    * ``rule="midi"`` (MiDi's ``compute_validity``): take the largest fragment of the
      unsanitized molecule and sanitize only that fragment.

    Args:
        molecules: molecules with known elements and finite coordinates.
        bond_orders: one dense ``(k, k)`` bond-order matrix per molecule (given or inferred).
        use_charges: set formal charges from the molecules (MiDi: yes; EDM: no).
        rule: ``"edm"`` or ``"midi"``.
        hydrogen_free_smiles: also write :attr:`ValidityResult.smiles_noh` (else all ``""``).
        progress: show a tqdm progress bar.

    Examples:
        >>> from symgen.molecules.bonds import edm_bond_orders
        >>> m = Molecule(np.array([8, 1, 1]), np.array([[0., 0, 0], [.96, 0, 0], [-.24, .93, 0]]))
        >>> r = rdkit_validity([m], [edm_bond_orders(m)])
        >>> r.smiles, r.smiles_noh
        (['[H]O[H]'], ['O'])
    """
    from rdkit import Chem, RDLogger
    from tqdm.auto import tqdm

    from symgen.molecules.io import to_rdkit

    if rule not in ("edm", "midi"):
        raise ValueError(f"rule must be 'edm' or 'midi', got {rule!r}")
    if len(bond_orders) != len(molecules):
        raise ValueError(f"{len(bond_orders)} bond matrices for {len(molecules)} molecules")
    n = len(molecules)
    valid = np.zeros(n, dtype=bool)
    frags = np.zeros(n, dtype=np.int64)
    smiles, smiles_noh, errors = [""] * n, [""] * n, [""] * n
    RDLogger.DisableLog("rdApp.*")
    try:
        for i in tqdm(range(n), desc="rdkit validity", disable=not progress, leave=False):
            try:
                mol = to_rdkit(molecules[i], bond_orders[i], charges=use_charges, conformer=False)
                if rule == "edm":
                    Chem.SanitizeMol(mol)
                    parts, largest = _largest_fragment(mol, sanitize=True)
                    frags[i] = len(parts)
                else:  # MiDi counts fragments of every molecule, valid or not
                    parts, largest = _largest_fragment(mol, sanitize=False)
                    frags[i] = len(parts)
                    Chem.SanitizeMol(largest)
            except Exception as err:  # RDKit sanitization errors are ValueError/RuntimeError
                errors[i] = _first_line(err)
                continue
            valid[i] = True
            smiles[i] = Chem.MolToSmiles(largest)
            if not hydrogen_free_smiles:
                continue
            try:  # hydrogens implicit, like dataset SMILES
                heavy = Chem.RemoveHs(largest)
            except Exception:  # noqa: S110 - keep explicit hydrogens when RDKit refuses
                heavy = largest
            smiles_noh[i] = Chem.MolToSmiles(heavy, isomericSmiles=False)
    finally:
        RDLogger.EnableLog("rdApp.*")
    return ValidityResult(valid, valid & (frags == 1), frags, smiles, smiles_noh, errors)


def canonical_smiles(smiles: Iterable[str], *, progress: bool = False) -> set[str]:
    """Canonical RDKit SMILES without stereochemistry; unparsable or empty entries are skipped.

    Examples:
        >>> sorted(canonical_smiles(["OCC", "C(O)C", "C[C@H](N)O", "not a smiles"]))
        ['CC(N)O', 'CCO']
    """
    from rdkit import Chem, RDLogger
    from tqdm.auto import tqdm

    out = set()
    RDLogger.DisableLog("rdApp.*")
    try:
        for s in tqdm(smiles, desc="reference SMILES", disable=not progress, leave=False):
            mol = Chem.MolFromSmiles(s) if s else None
            if mol is not None:
                out.add(Chem.MolToSmiles(mol, isomericSmiles=False))
    finally:
        RDLogger.EnableLog("rdApp.*")
    return out


def uniqueness(smiles: Sequence[str]) -> float:
    """``|set(valid)| / #valid`` over non-empty SMILES (NaN without valid ones).

    Examples:
        >>> uniqueness(["C", "C", "O", ""])
        0.6666666666666666
    """
    valid = [s for s in smiles if s]
    return len(set(valid)) / len(valid) if valid else float("nan")


def novelty(smiles: Sequence[str], reference: set[str]) -> float:
    """Share of the unique valid SMILES that are not in ``reference`` (NaN without valid ones).

    Examples:
        >>> novelty(["C", "C", "O", "N"], {"C"})
        0.6666666666666666
    """
    unique = {s for s in smiles if s}
    return len(unique - reference) / len(unique) if unique else float("nan")


def _rank(z: int) -> tuple:
    # display order: C first, then other heavy atoms alphabetically, H last
    return (0,) if z == 6 else (2,) if z == 1 else (1, SYMBOLS.get(z, f"Z{z}"))


def _sym(z: int) -> str:
    return SYMBOLS.get(z, f"Z{z}")


def bond_type_name(z1: int, z2: int, order: int) -> str:
    """Bond type label, e.g. ``bond_type_name(1, 6, 1) == "C-H"``, ``(8, 6, 2) -> "C=O"``."""
    a, b = sorted((int(z1), int(z2)), key=_rank)
    return f"{_sym(a)}{_BOND_SYMBOL.get(int(order), '?')}{_sym(b)}"


def angle_type_name(z_end1: int, z_center: int, z_end2: int) -> str:
    """Angle type label ``X-Y-Z`` (centre in the middle), e.g. ``(1, 6, 8) -> "O-C-H"``."""
    a, b = sorted((int(z_end1), int(z_end2)), key=_rank)
    return f"{_sym(a)}-{_sym(int(z_center))}-{_sym(b)}"


def bond_length_samples(
    atomic_numbers: Int[np.ndarray, "b n"],
    positions: Float[np.ndarray, "b n 3"],
    bonds: Int[np.ndarray, "b n n"],
) -> dict[str, np.ndarray]:
    """Bond lengths (Å) of a padded batch grouped by bond type (:func:`bond_type_name`).

    Examples:
        >>> from symgen.molecules.bonds import infer_bonds_edm
        >>> z = np.array([[6, 8]]); x = np.array([[[0., 0, 0], [1.2, 0, 0]]])
        >>> bond_length_samples(z, x, infer_bonds_edm(z, x))
        {'C=O': array([1.2])}
    """
    a = np.asarray(bonds)
    bi, ii, jj = np.nonzero(np.triu(a, 1))
    if len(bi) == 0:
        return {}
    d = np.linalg.norm(positions[bi, ii] - positions[bi, jj], axis=-1)
    zi, zj = atomic_numbers[bi, ii], atomic_numbers[bi, jj]
    code = (np.minimum(zi, zj) * 256 + np.maximum(zi, zj)) * 4 + a[bi, ii, jj]
    out = {}
    for c in np.unique(code):
        out[bond_type_name(int(c // 4 // 256), int(c // 4 % 256), int(c % 4))] = d[code == c]
    return out


def bond_angle_samples(
    atomic_numbers: Int[np.ndarray, "b n"],
    positions: Float[np.ndarray, "b n 3"],
    bonds: Int[np.ndarray, "b n n"],
) -> dict[str, np.ndarray]:
    """Bond angles (degrees) at every atom with two bonded neighbours, grouped by angle type.

    For bonded pairs (j, i) and (j, k) with ``i < k`` the angle is
    ``arccos(<x_i - x_j, x_k - x_j> / (|x_i - x_j| |x_k - x_j|))``, typed ``X_i-X_j-X_k``.

    Examples:
        >>> from symgen.molecules.bonds import infer_bonds_edm
        >>> z = np.array([[8, 1, 1]]); x = np.array([[[0., 0, 0], [.96, 0, 0], [-.24, .93, 0]]])
        >>> {k: np.round(v, 1) for k, v in bond_angle_samples(z, x, infer_bonds_edm(z, x)).items()}
        {'H-O-H': array([104.5])}
    """
    adj = np.asarray(bonds) > 0
    max_degree = int(adj.sum(-1).max()) if adj.size else 0
    if max_degree < 2:
        return {}
    # neighbour table [b, j, :D] in increasing index order (bonded first, stable sort);
    # memory stays O(b n n), not O(b n^3)
    nbr = np.argsort(~adj, axis=-1, kind="stable")[..., :max_degree]
    ok = np.take_along_axis(adj, nbr, axis=-1)
    p_idx, q_idx = np.triu_indices(max_degree, 1)
    pair_ok = ok[..., p_idx] & ok[..., q_idx]  # [b, j, P]
    bi, jj, pp = np.nonzero(pair_ok)
    if len(bi) == 0:
        return {}
    ii, kk = nbr[bi, jj, p_idx[pp]], nbr[bi, jj, q_idx[pp]]
    u = positions[bi, ii] - positions[bi, jj]
    v = positions[bi, kk] - positions[bi, jj]
    cos = np.einsum("md,md->m", u, v) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1))
    ang = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    zi, zj, zk = atomic_numbers[bi, ii], atomic_numbers[bi, jj], atomic_numbers[bi, kk]
    code = (zj * 256 + np.minimum(zi, zk)) * 256 + np.maximum(zi, zk)
    out = {}
    for c in np.unique(code):
        out[angle_type_name(int(c % 256), int(c // 65536), int(c // 256 % 256))] = ang[code == c]
    return out


def atom_count_samples(
    atomic_numbers: Int[np.ndarray, "b n"], mask: Bool[np.ndarray, "b n"]
) -> dict[str, np.ndarray]:
    """Per-molecule counts of each element (key: symbol) and of all atoms (key ``"atoms"``).

    Examples:
        >>> z, mask = np.array([[8, 1, 1], [6, 8, 0]]), np.array([[1, 1, 1], [1, 1, 0]], bool)
        >>> atom_count_samples(z, mask)
        {'atoms': array([3, 2]), 'C': array([0, 1]), 'O': array([1, 1]), 'H': array([2, 0])}
    """
    z = np.where(mask, atomic_numbers, 0)
    out = {"atoms": mask.sum(-1)}
    for e in sorted(set(np.unique(z[mask]).tolist()), key=_rank):
        out[_sym(e)] = (z == e).sum(-1)
    return out


def wasserstein_by_type(
    generated: dict[str, np.ndarray], reference: dict[str, np.ndarray], *, min_count: int = 10
) -> dict[str, float]:
    """Wasserstein-1 distance per type between generated and reference samples.

    ``W1(P, Q) = ∫ |F_P(t) - F_Q(t)| dt`` (``scipy.stats.wasserstein_distance``). Only types with
    at least ``min_count`` reference samples are scored; a type the generated samples lack gets
    ``inf``. The key ``"mean"`` is the mean over scored types weighted by reference counts
    (finite types only; NaN when none).

    Examples:
        >>> w = wasserstein_by_type({"C-C": np.array([1.5, 1.6])}, {"C-C": np.array([1.5, 1.5])},
        ...                         min_count=1)
        >>> round(w["C-C"], 3)
        0.05
    """
    from scipy.stats import wasserstein_distance

    out, weights = {}, {}
    for key, ref in reference.items():
        if len(ref) < min_count:
            continue
        gen = generated.get(key)
        out[key] = (
            float(wasserstein_distance(gen, ref)) if gen is not None and len(gen) else float("inf")
        )
        weights[key] = len(ref)
    finite = [k for k in out if np.isfinite(out[k])]
    total = sum(weights[k] for k in finite)
    out["mean"] = sum(out[k] * weights[k] for k in finite) / total if total else float("nan")
    return out


def total_variation(generated: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> float:
    """Total-variation distance of the element frequencies implied by per-molecule counts.

    ``TV = 1/2 Σ_e |p_gen(e) - p_ref(e)|`` with ``p(e) = Σ counts_e / Σ_e' Σ counts_e'``
    (the key ``"atoms"`` is ignored).

    Examples:
        >>> gen = {"C": np.array([1]), "H": np.array([3])}
        >>> ref = {"C": np.array([1]), "H": np.array([1])}
        >>> total_variation(gen, ref)
        0.25
    """
    keys = sorted((set(generated) | set(reference)) - {"atoms"})

    def freq(d: dict[str, np.ndarray]) -> np.ndarray:
        c = np.array([float(np.sum(d.get(k, 0))) for k in keys])
        return c / c.sum() if c.sum() > 0 else c

    return float(0.5 * np.abs(freq(generated) - freq(reference)).sum())


@dataclass(frozen=True)
class StrainResult:
    """MMFF94 energies of a set of molecules (kcal/mol; NaN where MMFF was not run).

    Attributes:
        energy: MMFF energy of the given geometry.
        relaxed_energy: MMFF energy after relaxation.
        strain: ``energy - relaxed_energy`` (≥ 0 up to numerical noise).
        converged: the minimizer converged within ``max_iters``.
        reasons: why MMFF was not run (``""`` where it was).
    """

    energy: np.ndarray
    relaxed_energy: np.ndarray
    strain: np.ndarray
    converged: np.ndarray
    reasons: list[str]

    @property
    def setup_rate(self) -> float:
        """Share of molecules for which MMFF could be set up."""
        return float(np.isfinite(self.strain).mean()) if len(self.strain) else float("nan")


def mmff_strain(
    molecules: Sequence[Molecule],
    bond_orders: Sequence[np.ndarray],
    *,
    max_iters: int = 200,
    progress: bool = False,
) -> StrainResult:
    """MMFF94 strain energy ``E_MMFF(x) - E_MMFF(relax(x))`` in kcal/mol per molecule.

    A molecule is skipped (NaN, with a reason) when it does not sanitize, has implicit
    hydrogens (strain needs every hydrogen placed), or lacks MMFF parameters
    (``MMFFHasAllMoleculeParams``). Relaxation is ``MMFFGetMoleculeForceField(...).Minimize``
    with at most ``max_iters`` iterations.

    Examples:
        >>> from rdkit import Chem
        >>> from rdkit.Chem import AllChem
        >>> from symgen.molecules.bonds import edm_bond_orders
        >>> from symgen.molecules.io import from_rdkit
        >>> m = Chem.AddHs(Chem.MolFromSmiles("CCO")); _ = AllChem.EmbedMolecule(m, randomSeed=1)
        >>> mol = from_rdkit(m)
        >>> r = mmff_strain([mol], [edm_bond_orders(mol)])
        >>> bool(r.strain[0] >= 0)
        True
    """
    from rdkit import Chem, RDLogger
    from rdkit.Chem import rdForceFieldHelpers as ffh
    from tqdm.auto import tqdm

    from symgen.molecules.io import to_rdkit

    n = len(molecules)
    e0 = np.full(n, np.nan)
    e1 = np.full(n, np.nan)
    conv = np.zeros(n, dtype=bool)
    reasons = [""] * n
    RDLogger.DisableLog("rdApp.*")
    try:
        for i in tqdm(range(n), desc="MMFF strain", disable=not progress, leave=False):
            try:
                mol = Chem.Mol(to_rdkit(molecules[i], bond_orders[i]))
                Chem.SanitizeMol(mol)
            except Exception as err:
                reasons[i] = f"not sanitizable: {_first_line(err)}"
                continue
            if any(a.GetNumImplicitHs() for a in mol.GetAtoms()):
                reasons[i] = "implicit hydrogens (strain needs explicit hydrogens)"
                continue
            if not ffh.MMFFHasAllMoleculeParams(mol):
                reasons[i] = "missing MMFF94 parameters"
                continue
            props = ffh.MMFFGetMoleculeProperties(mol)
            ff = ffh.MMFFGetMoleculeForceField(mol, props) if props is not None else None
            if ff is None:
                reasons[i] = "MMFF94 force field could not be set up"
                continue
            e0[i] = ff.CalcEnergy()
            conv[i] = ff.Minimize(maxIts=int(max_iters)) == 0
            e1[i] = ff.CalcEnergy()
    finally:
        RDLogger.EnableLog("rdApp.*")
    return StrainResult(e0, e1, e0 - e1, conv, reasons)
