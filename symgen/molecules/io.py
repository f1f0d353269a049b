"""Molecule input/output: SDF and XYZ files and RDKit conversion.

* :func:`read_sdf` / :func:`write_sdf` — multi-molecule V2000 SD files through RDKit, hydrogens
  and formal charges kept, aromatic bonds kekulized on reading, nothing sanitized on reading
  (so that invalid generated molecules survive to be scored).
* :func:`read_xyz` / :func:`write_xyz` — multi-molecule XYZ: blocks of a count line, a comment
  line (the molecule name) and ``symbol x y z`` lines.
* :func:`to_rdkit` / :func:`from_rdkit` — conversion to and from an RDKit ``Mol`` with a 3D
  conformer; bonds follow :func:`~symgen.molecules.bonds.molecule_bond_orders` (the molecule's
  own, or inferred from geometry with the EDM tables).

Pictures (a PNG grid, a 3D HTML view) are in :mod:`symgen.molecules.pictures`. RDKit is
imported inside the functions that need it. Files are written atomically with
:func:`symgen.files.atomic_write`.
"""

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from jaxtyping import Int

from symgen.files import atomic_write
from symgen.molecules.bonds import molecule_bond_orders
from symgen.molecules.elements import ATOMIC_NUMBERS, SYMBOLS
from symgen.molecules.molecule import Molecule

__all__ = [
    "to_rdkit",
    "from_rdkit",
    "read_sdf",
    "write_sdf",
    "read_xyz",
    "write_xyz",
    "read_molecules",
    "MOLECULE_SUFFIXES",
]


def _check_atoms(molecule: Molecule) -> None:
    z = np.asarray(molecule.atomic_numbers)
    pos = np.asarray(molecule.positions, dtype=np.float64)
    if z.ndim != 1 or pos.shape != (len(z), 3):
        raise ValueError(
            f"atomic_numbers {z.shape} and positions {pos.shape} do not match (k,), (k, 3)"
        )
    unknown = sorted({int(a) for a in z if int(a) not in SYMBOLS})
    if unknown:
        raise ValueError(f"unknown atomic number(s) {unknown}")
    if not np.all(np.isfinite(pos)):
        raise ValueError("non-finite coordinates")


def to_rdkit(
    molecule: Molecule,
    bond_orders: Int[np.ndarray, "k k"] | None = None,
    *,
    charges: bool = True,
    sanitize: bool = False,
    conformer: bool = True,
) -> Any:
    """Build an RDKit ``Mol`` (atoms, formal charges, bonds and a 3D conformer) from a molecule.

    Bonds come from ``bond_orders`` (a dense symmetric ``(k, k)`` matrix of orders 0..3) when
    given, else from :func:`~symgen.molecules.bonds.molecule_bond_orders` (the molecule's own
    bonds, missing orders meaning single bonds, or EDM-inferred bonds when it has none).
    As in the EDM protocol, atoms carry no ``NoImplicit`` flag: sanitization may add implicit
    hydrogens to under-bonded atoms, while over-bonded atoms make sanitization fail.

    Args:
        molecule: the molecule.
        bond_orders: optional dense bond-order matrix overriding the molecule's bonds.
        charges: set formal charges from ``molecule.charges`` (when present).
        sanitize: run ``Chem.SanitizeMol`` (raises RDKit's sanitization errors).
        conformer: attach the coordinates as a 3D conformer (not needed to sanitize).

    Returns:
        rdkit.Chem.Mol: the molecule; unsanitized unless ``sanitize=True``.

    Raises:
        ValueError: unknown elements, non-finite coordinates or inconsistent shapes, or own
            bonds that are unsound (out of range, self-loops, bad orders, duplicates).

    Examples:
        >>> xyz = np.array([[0.0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
        >>> water = Molecule(np.array([8, 1, 1]), xyz)
        >>> from rdkit import Chem
        >>> Chem.MolToSmiles(Chem.RemoveHs(to_rdkit(water, sanitize=True)))
        'O'
    """
    from rdkit import Chem
    from rdkit.Geometry import Point3D

    _check_atoms(molecule)
    k = molecule.num_atoms
    a = (
        molecule_bond_orders(molecule, unsound="raise")
        if bond_orders is None
        else np.asarray(bond_orders)
    )
    if a.shape != (k, k):
        raise ValueError(f"bond_orders has shape {a.shape}, expected ({k}, {k})")
    mol = Chem.RWMol()
    q = molecule.charges if (charges and molecule.charges is not None) else None
    for i, z in enumerate(np.asarray(molecule.atomic_numbers).tolist()):
        atom = Chem.Atom(int(z))
        if q is not None:
            atom.SetFormalCharge(int(q[i]))
        mol.AddAtom(atom)
    kinds = {1: Chem.BondType.SINGLE, 2: Chem.BondType.DOUBLE, 3: Chem.BondType.TRIPLE}
    ii, jj = np.nonzero(np.triu(a, 1))
    for i, j in zip(ii.tolist(), jj.tolist(), strict=False):
        order = int(a[i, j])
        if order not in kinds:
            raise ValueError(f"bond ({i}, {j}) has order {order}; expected 1, 2 or 3")
        mol.AddBond(i, j, kinds[order])
    if conformer:
        conf = Chem.Conformer(k)
        for i, (x, y, zc) in enumerate(np.asarray(molecule.positions, dtype=np.float64).tolist()):
            conf.SetAtomPosition(i, Point3D(x, y, zc))
        conf.Set3D(True)
        mol.AddConformer(conf, assignId=True)
    out = mol.GetMol()
    if molecule.name:
        out.SetProp("_Name", molecule.name)
    if sanitize:
        Chem.SanitizeMol(out)
    return out


def from_rdkit(mol, name: str | None = None) -> Molecule:
    """Convert an RDKit ``Mol`` with a conformer to a :class:`Molecule` (bonds kekulized).

    Hydrogens are kept as they are in ``mol`` (explicit atoms only); aromatic bonds are
    kekulized to orders 1/2; the first conformer gives the positions.

    Raises:
        ValueError: no conformer, or aromatic bonds that cannot be kekulized, or bond types
            other than single/double/triple/aromatic.

    Examples:
        >>> from rdkit import Chem
        >>> from rdkit.Chem import AllChem
        >>> m = Chem.AddHs(Chem.MolFromSmiles("C=O")); _ = AllChem.EmbedMolecule(m, randomSeed=0)
        >>> sorted(from_rdkit(m).bond_orders.tolist())
        [1, 1, 2]
    """
    from rdkit import Chem

    if mol.GetNumConformers() == 0:
        raise ValueError("RDKit molecule has no conformer (no coordinates)")
    m = Chem.Mol(mol)
    if any(b.GetBondType() == Chem.BondType.AROMATIC for b in m.GetBonds()):
        try:
            m.UpdatePropertyCache(strict=False)
            Chem.Kekulize(m, clearAromaticFlags=True)
        except Exception as err:  # RDKit raises KekulizeException (a ValueError) or RuntimeError
            raise ValueError(f"cannot kekulize aromatic bonds: {err}") from err
    kinds = {Chem.BondType.SINGLE: 1, Chem.BondType.DOUBLE: 2, Chem.BondType.TRIPLE: 3}
    bonds, orders = [], []
    for b in m.GetBonds():
        if b.GetBondType() not in kinds:
            raise ValueError(
                f"unsupported bond type {b.GetBondType()} between atoms "
                f"{b.GetBeginAtomIdx()} and {b.GetEndAtomIdx()}"
            )
        i, j = sorted((b.GetBeginAtomIdx(), b.GetEndAtomIdx()))
        bonds.append((i, j))
        orders.append(kinds[b.GetBondType()])
    return replace(
        _atoms_from_rdkit(m, name),
        bonds=np.array(bonds, dtype=np.int64).reshape(-1, 2),
        bond_orders=np.array(orders, dtype=np.int64),
    )


def _atoms_from_rdkit(mol, name: str | None = None) -> Molecule:
    """Atoms, formal charges, first-conformer positions and name of an RDKit ``Mol``; no bonds."""
    if name is None:
        name = mol.GetProp("_Name") if mol.HasProp("_Name") else ""
    return Molecule(
        atomic_numbers=np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64),
        positions=np.asarray(mol.GetConformer().GetPositions(), dtype=np.float64).reshape(-1, 3),
        charges=np.array([a.GetFormalCharge() for a in mol.GetAtoms()], dtype=np.int64),
        name=name,
    )


def _empty(name: str) -> Molecule:
    return Molecule(np.zeros(0, dtype=np.int64), np.zeros((0, 3)), name=name)


def read_sdf(path: str | os.PathLike, *, errors: str = "raise") -> list[Molecule]:
    """Read all records of an SD file (no sanitization, hydrogens kept, bonds kekulized).

    A record whose bonds cannot be kept (an aromatic ring that cannot be kekulized, an
    unsupported bond type) keeps its atoms, charges and coordinates, with ``bonds=None`` and
    the reason in :attr:`~symgen.molecules.molecule.Molecule.bond_problems`.

    Args:
        path: the ``.sdf`` file.
        errors: ``"raise"`` to raise on an unreadable record, ``"keep"`` to return it as an
            empty molecule (no atoms) named ``"record <i>: <problem>"`` so that an evaluation
            can report it as a failure and keep going.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: an unreadable record (with ``errors="raise"``), or a bad ``errors`` value.

    Examples:
        >>> mols = read_sdf("samples.sdf")  # doctest: +SKIP
    """
    from rdkit import Chem, RDLogger

    if errors not in ("raise", "keep"):
        raise ValueError(f"errors must be 'raise' or 'keep', got {errors!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such SD file: {path}")
    out: list[Molecule] = []
    if not path.read_bytes().strip():
        return out  # RDKit refuses an empty file; it simply holds no records
    records = None  # the raw record texts, split only when a record fails to parse
    RDLogger.DisableLog("rdApp.*")
    try:
        supplier = Chem.SDMolSupplier(str(path), sanitize=False, removeHs=False)
        for i, mol in enumerate(supplier):
            try:
                if mol is None:
                    if records is None:
                        records = path.read_text(errors="replace").split("$$$$")
                    raise ValueError(_sdf_parse_problem(records[i] if i < len(records) else ""))
                out.append(_without_unknown_bonds(_from_sdf_record(mol)))
            except ValueError as err:
                if errors == "raise":
                    raise ValueError(f"{path}: record {i}: {err}") from err
                out.append(_empty(f"record {i}: {err}"))
    finally:
        RDLogger.EnableLog("rdApp.*")
    return out


def _from_sdf_record(mol) -> Molecule:
    """:func:`from_rdkit`, keeping atoms, charges and coordinates when the bonds cannot be kept.

    A generated record may hold an aromatic ring that cannot be kekulized or a bond type
    symgen does not read; its geometry can still be scored, so the molecule keeps its atoms
    and records why its bonds were dropped (:attr:`Molecule.bond_problems`).
    """
    try:
        return from_rdkit(mol)
    except ValueError as err:
        if mol.GetNumConformers() == 0:
            raise
        return replace(_atoms_from_rdkit(mol), bond_problems=(f"bonds not read: {err}",))


def _sdf_parse_problem(record: str) -> str:
    """Why RDKit could not parse one SD record, read from its text (V2000 counts/atom lines)."""
    # the text after "$$$$" starts with its newline; a blank title line must stay
    lines = (record[1:] if record.startswith("\n") else record).splitlines()
    if len(lines) < 4:
        return f"RDKit could not parse the record: {len(lines)} lines, no counts line"
    counts = lines[3]
    if "V3000" in counts:
        return "RDKit could not parse the V3000 record"
    try:
        n_atoms = int(counts[0:3])
    except ValueError:
        return f"RDKit could not parse the record: bad counts line {counts!r}"
    for a, line in enumerate(lines[4 : 4 + n_atoms]):
        sym = line[31:34].strip() if len(line) >= 34 else ""
        if not sym:
            return f"RDKit could not parse the record: atom {a}: malformed atom line {line!r}"
        if sym not in ATOMIC_NUMBERS:
            return f"RDKit could not parse the record: atom {a}: unknown element symbol {sym!r}"
    if len(lines) < 4 + n_atoms:
        return f"RDKit could not parse the record: {n_atoms} atoms announced, fewer atom lines"
    return "RDKit could not parse the record (bond block or properties)"


def _without_unknown_bonds(molecule: Molecule) -> Molecule:
    """A record with several atoms and no bond at all carries no bond information: ``bonds=None``.

    Files written without a bond block (e.g. converted from XYZ) are then scored like XYZ
    (bonds inferred from geometry) instead of as molecules whose model generated no bonds.
    """
    if molecule.num_atoms > 1 and molecule.bonds is not None and len(molecule.bonds) == 0:
        return replace(molecule, bonds=None, bond_orders=None)
    return molecule


#: File suffixes :func:`read_molecules` reads; ``.txt`` is the XYZ format EDM writes its samples in.
MOLECULE_SUFFIXES: tuple[str, ...] = (".sdf", ".xyz", ".txt")


def read_molecules(path: str | os.PathLike) -> list[Molecule]:
    """Read generated molecules from an SD file, a multi-record XYZ file, or a folder of them.

    A folder is read file by file in name order (``*.sdf``, ``*.xyz`` and ``*.txt``, the last
    being the XYZ files EDM writes its samples to, one molecule per file); each molecule is
    named ``"<file>"`` or ``"<file>#<record>"``. Reading is strict: malformed input raises,
    naming the file, the record and the reason; only atoms with an unknown element symbol in an
    XYZ file are kept (symbol recorded in :attr:`Molecule.problems`), so that an evaluation
    counts and lists them.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: an unsupported suffix, an unparsable record, or no molecule at all.

    Examples:
        >>> read_molecules("samples/")  # doctest: +SKIP
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in MOLECULE_SUFFIXES)
        if not files:
            raise ValueError(
                f"{path}: folder holds no molecule files ({', '.join(MOLECULE_SUFFIXES)})"
            )
        out = []
        for f in files:
            mols = _read_file(f)
            for r, m in enumerate(mols):
                label = f.name if len(mols) == 1 else f"{f.name}#{r}"
                out.append(replace(m, name=f"{label} {m.name}".strip()))
        return out
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    return _read_file(path)


def _read_file(path: Path) -> list[Molecule]:
    suffix = path.suffix.lower()
    if suffix == ".sdf":
        mols = read_sdf(path)
    elif suffix in (".xyz", ".txt"):
        mols = read_xyz(path, errors="keep")
    else:
        expected = ", ".join(MOLECULE_SUFFIXES)
        raise ValueError(f"{path}: unsupported file type {suffix!r}; expected one of {expected}")
    if not mols:
        raise ValueError(f"{path}: no molecules in the file")
    return mols


def write_sdf(molecules: Sequence[Molecule], path: str | os.PathLike) -> None:
    """Write molecules to a multi-record SD file (V2000) atomically.

    Each record carries the molecule's own bonds (single bonds where it has no
    ``bond_orders``), or bonds inferred with the EDM distance tables when it has none, and its
    formal charges (:func:`~symgen.molecules.bonds.molecule_bond_orders`). The record title is
    ``molecule.name``.

    Raises:
        ValueError: a molecule with unknown elements, non-finite coordinates or unsound own
            bonds (named by index).

    Examples:
        >>> write_sdf([Molecule(np.array([6, 8]), np.array([[0., 0, 0], [1.13, 0, 0]]))],
        ...           "/tmp/co.sdf")
    """
    from rdkit import Chem

    blocks = []
    for i, m in enumerate(molecules):
        try:
            mol = to_rdkit(m)
        except ValueError as err:
            raise ValueError(f"molecule {i} ({m.name!r}): {err}") from err
        mol.UpdatePropertyCache(strict=False)
        blocks.append(Chem.MolToMolBlock(mol, kekulize=False) + "$$$$\n")
    atomic_write(path, "".join(blocks))


def read_xyz(path: str | os.PathLike, *, errors: str = "raise") -> list[Molecule]:
    """Read a multi-molecule XYZ file: blocks of ``count``, a comment line, ``count`` atom lines.

    Atom lines are ``symbol x y z`` (extra columns ignored; an atomic number instead of a
    symbol is accepted). The comment line becomes the molecule name. Blank lines between
    blocks are skipped. XYZ carries no bonds: metrics infer them from geometry.

    Args:
        path: the ``.xyz`` file.
        errors: ``"raise"`` to raise on an unknown element symbol, ``"keep"`` to store it as
            atomic number 0 and record ``"atom <a>: unknown element symbol '<sym>'"`` in the
            molecule's :attr:`~symgen.molecules.molecule.Molecule.problems`, so that an
            evaluation lists it per molecule with its symbol.

    Raises:
        ValueError: a malformed block (bad count, too few lines, unparsable coordinates), named
            by file and line.

    Examples:
        >>> mols = read_xyz("samples.xyz")  # doctest: +SKIP
    """
    if errors not in ("raise", "keep"):
        raise ValueError(f"errors must be 'raise' or 'keep', got {errors!r}")
    lines = Path(path).read_text().splitlines()
    out, i = [], 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        try:
            k = int(lines[i].split()[0])
        except ValueError as err:
            raise ValueError(f"{path}:{i + 1}: expected an atom count, got {lines[i]!r}") from err
        if k < 0 or i + 2 + k > len(lines):
            raise ValueError(f"{path}:{i + 1}: block of {k} atoms runs past the end of the file")
        name = lines[i + 1].strip()
        z = np.zeros(k, dtype=np.int64)
        pos = np.zeros((k, 3))
        problems = []
        for a in range(k):
            lineno = i + 3 + a
            parts = lines[i + 2 + a].split()
            if len(parts) < 4:
                raise ValueError(
                    f"{path}:{lineno}: expected 'symbol x y z', got {lines[lineno - 1]!r}"
                )
            sym = parts[0]
            if sym.isdigit():
                z[a] = int(sym)
            elif sym.capitalize() in ATOMIC_NUMBERS:
                z[a] = ATOMIC_NUMBERS[sym.capitalize()]
            elif errors == "raise":
                raise ValueError(f"{path}:{lineno}: unknown element symbol {sym!r}")
            else:
                problems.append(f"atom {a}: unknown element symbol {sym!r} (line {lineno})")
            try:
                pos[a] = [float(t) for t in parts[1:4]]
            except ValueError as err:
                raise ValueError(f"{path}:{lineno}: bad coordinates {parts[1:4]}") from err
        out.append(Molecule(z, pos, name=name, problems=tuple(problems)))
        i += 2 + k
    return out


def write_xyz(molecules: Sequence[Molecule], path: str | os.PathLike) -> None:
    """Write molecules to a multi-molecule XYZ file atomically (coordinates in Å, 6 decimals).

    Examples:
        >>> write_xyz([Molecule(np.array([1, 1]), np.array([[0., 0, 0], [.74, 0, 0]]), name="H2")],
        ...           "/tmp/h2.xyz")
    """
    chunks = []
    for i, m in enumerate(molecules):
        z = np.asarray(m.atomic_numbers)
        unknown = sorted({int(a) for a in z if int(a) not in SYMBOLS})
        if unknown:
            raise ValueError(f"molecule {i} ({m.name!r}): unknown atomic number(s) {unknown}")
        chunks.append(f"{len(z)}\n{m.name.replace(chr(10), ' ')}\n")
        for a, (x, y, zc) in zip(
            z.tolist(), np.asarray(m.positions, dtype=np.float64).tolist(), strict=False
        ):
            chunks.append(f"{SYMBOLS[a]:<2s} {x:14.6f} {y:14.6f} {zc:14.6f}\n")
    atomic_write(path, "".join(chunks))
