"""Molecule input/output: SDF and XYZ files, RDKit conversion, a PNG grid and a 3D HTML view.

* :func:`read_sdf` / :func:`write_sdf` — multi-molecule V2000 SD files through RDKit, hydrogens
  and formal charges kept, aromatic bonds kekulized on reading, nothing sanitized on reading
  (so that invalid generated molecules survive to be scored).
* :func:`read_xyz` / :func:`write_xyz` — multi-molecule XYZ: blocks of a count line, a comment
  line (the molecule name) and ``symbol x y z`` lines.
* :func:`to_rdkit` / :func:`from_rdkit` — conversion to and from an RDKit ``Mol`` with a 3D
  conformer; bonds are the molecule's own, or inferred from geometry with the EDM tables.
* :func:`draw_grid_png` — 2D depictions in a grid, drawn with RDKit's Cairo drawer (no PIL).
* :func:`write_html_3d` — a self-contained HTML page (inline JavaScript on a ``<canvas>``, no
  network access at view time) showing ball-and-stick models that rotate with the mouse.

RDKit is imported inside the functions that need it. All files are written atomically (a
temporary file in the target directory, then :func:`os.replace`).
"""

import html
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from jaxtyping import Int

from symgen.molecules.bonds import bond_matrix, infer_bonds_edm
from symgen.molecules.elements import ATOMIC_NUMBERS, SYMBOLS
from symgen.molecules.molecule import Molecule

__all__ = [
    "atomic_write",
    "to_rdkit",
    "from_rdkit",
    "read_sdf",
    "write_sdf",
    "read_xyz",
    "write_xyz",
    "draw_grid_png",
    "write_html_3d",
]


def atomic_write(path: str | os.PathLike, data: str | bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, then rename.

    Readers never see a half-written file; on error the temporary file is removed.

    Examples:
        >>> atomic_write("/tmp/hello.txt", "hi\\n")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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


def _bond_orders_of(molecule: Molecule) -> np.ndarray:
    """Dense bond orders: the molecule's own bonds, or EDM distance-table inference."""
    k = molecule.num_atoms
    if molecule.bonds is not None:
        orders = molecule.bond_orders
        if orders is None:
            orders = np.ones(len(np.asarray(molecule.bonds).reshape(-1, 2)), dtype=np.int64)
        return bond_matrix(k, np.asarray(molecule.bonds), np.asarray(orders))
    return infer_bonds_edm(
        np.asarray(molecule.atomic_numbers, dtype=np.int64),
        np.asarray(molecule.positions, dtype=np.float64),
    )


def to_rdkit(
    molecule: Molecule,
    bond_orders: Int[np.ndarray, "k k"] | None = None,
    *,
    charges: bool = True,
    sanitize: bool = False,
) -> Any:
    """Build an RDKit ``Mol`` (atoms, formal charges, bonds and a 3D conformer) from a molecule.

    Bonds come from ``bond_orders`` (a dense symmetric ``(k, k)`` matrix of orders 0..3) when
    given, else from ``molecule.bonds``, else from :func:`~symgen.molecules.bonds.infer_bonds_edm`.
    As in the EDM protocol, atoms carry no ``NoImplicit`` flag: sanitization may add implicit
    hydrogens to under-bonded atoms, while over-bonded atoms make sanitization fail.

    Args:
        molecule: the molecule.
        bond_orders: optional dense bond-order matrix overriding the molecule's bonds.
        charges: set formal charges from ``molecule.charges`` (when present).
        sanitize: run ``Chem.SanitizeMol`` (raises RDKit's sanitization errors).

    Returns:
        rdkit.Chem.Mol: the molecule; unsanitized unless ``sanitize=True``.

    Raises:
        ValueError: unknown elements, non-finite coordinates or inconsistent shapes/bonds.

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
    a = _bond_orders_of(molecule) if bond_orders is None else np.asarray(bond_orders)
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
    if name is None:
        name = m.GetProp("_Name") if m.HasProp("_Name") else ""
    return Molecule(
        atomic_numbers=np.array([a.GetAtomicNum() for a in m.GetAtoms()], dtype=np.int64),
        positions=np.asarray(m.GetConformer().GetPositions(), dtype=np.float64).reshape(-1, 3),
        charges=np.array([a.GetFormalCharge() for a in m.GetAtoms()], dtype=np.int64),
        bonds=np.array(bonds, dtype=np.int64).reshape(-1, 2),
        bond_orders=np.array(orders, dtype=np.int64),
        name=name,
    )


def _empty(name: str) -> Molecule:
    return Molecule(np.zeros(0, dtype=np.int64), np.zeros((0, 3)), name=name)


def read_sdf(path: str | os.PathLike, *, errors: str = "raise") -> list[Molecule]:
    """Read all records of an SD file (no sanitization, hydrogens kept, bonds kekulized).

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
    out = []
    RDLogger.DisableLog("rdApp.*")
    try:
        supplier = Chem.SDMolSupplier(str(path), sanitize=False, removeHs=False)
        for i, mol in enumerate(supplier):
            try:
                if mol is None:
                    raise ValueError("RDKit could not parse the record")
                out.append(from_rdkit(mol))
            except ValueError as err:
                if errors == "raise":
                    raise ValueError(f"{path}: record {i}: {err}") from err
                out.append(_empty(f"record {i}: {err}"))
    finally:
        RDLogger.EnableLog("rdApp.*")
    return out


def write_sdf(molecules: Sequence[Molecule], path: str | os.PathLike) -> None:
    """Write molecules to a multi-record SD file (V2000) atomically.

    Each record carries the molecule's own bonds, or bonds inferred with the EDM distance
    tables when it has none, and its formal charges. The record title is ``molecule.name``.

    Raises:
        ValueError: a molecule with unknown elements or non-finite coordinates (named by index).

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
            atomic number 0 so that an evaluation reports it per molecule.

    Raises:
        ValueError: a malformed block (bad count, too few lines, unparsable coordinates).

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
            try:
                pos[a] = [float(t) for t in parts[1:4]]
            except ValueError as err:
                raise ValueError(f"{path}:{lineno}: bad coordinates {parts[1:4]}") from err
        out.append(Molecule(z, pos, name=name))
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


def draw_grid_png(
    molecules: Sequence[Molecule],
    path: str | os.PathLike | None = None,
    *,
    mols_per_row: int = 4,
    panel_size: tuple[int, int] = (250, 250),
    legends: Sequence[str] | None = None,
    remove_hydrogens: bool = True,
) -> bytes:
    """Draw 2D depictions of molecules in a grid and return (and optionally write) PNG bytes.

    Uses ``rdMolDraw2D.MolDraw2DCairo`` (no PIL needed). Depictions come from RDKit 2D
    coordinates of each molecule's graph (own bonds or EDM-inferred); molecules that fail
    sanitization are drawn as they are; molecules that cannot be converted at all are drawn
    as empty panels with their legend.

    Examples:
        >>> png = draw_grid_png([Molecule(np.array([8, 1, 1]),
        ...                              np.array([[0., 0, 0], [.96, 0, 0], [-.24, .93, 0]]))])
        >>> png[:4] == b"\\x89PNG"
        True
    """
    from rdkit import Chem
    from rdkit.Chem import rdDepictor
    from rdkit.Chem.Draw import rdMolDraw2D

    if mols_per_row < 1:
        raise ValueError("mols_per_row must be >= 1")
    if legends is not None and len(legends) != len(molecules):
        raise ValueError(f"{len(legends)} legends for {len(molecules)} molecules")
    mols = []
    for m in molecules:
        try:
            mol = Chem.Mol(to_rdkit(m))
            mol.UpdatePropertyCache(strict=False)
            try:
                Chem.SanitizeMol(mol)
            except Exception:  # invalid molecules are still drawn, unsanitized
                mol = Chem.Mol(to_rdkit(m))
                mol.UpdatePropertyCache(strict=False)
            if remove_hydrogens:
                mol = Chem.RemoveHs(mol, sanitize=False)
            mol.UpdatePropertyCache(strict=False)
            Chem.FastFindRings(mol)
            mol.RemoveAllConformers()
            rdDepictor.Compute2DCoords(mol)
        except Exception:
            mol = Chem.Mol()
        mols.append(mol)
    n = max(len(mols), 1)
    rows = (n + mols_per_row - 1) // mols_per_row
    cols = min(n, mols_per_row)
    w, h = panel_size
    drawer = rdMolDraw2D.MolDraw2DCairo(cols * w, rows * h, w, h)
    drawer.drawOptions().prepareMolsBeforeDrawing = False
    labels = list(legends) if legends is not None else [m.name for m in molecules]
    if mols:
        drawer.DrawMolecules(mols, legends=labels)
    drawer.FinishDrawing()
    png = drawer.GetDrawingText()
    if path is not None:
        atomic_write(path, png)
    return png


_CPK = {
    1: "#e8e8e8",
    6: "#404040",
    7: "#3050f8",
    8: "#ff0d0d",
    9: "#90e050",
    15: "#ff8000",
    16: "#e6c200",
    17: "#1ff01f",
    35: "#a62929",
    53: "#940094",
}

_HTML = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>__TITLE__</title>
<style>body{font-family:sans-serif;margin:8px}.cell{display:inline-block;margin:4px;
text-align:center}canvas{border:1px solid #ccc;cursor:grab}</style></head><body>
<h3>__TITLE__</h3><p>Drag a molecule to rotate it. Self-contained: no network access.</p>
<div id="grid"></div>
<script>
const DATA = __DATA__;
const S = __SIZE__;
function rot(m, ax, ay) {
  const cx = Math.cos(ax), sx = Math.sin(ax), cy = Math.cos(ay), sy = Math.sin(ay);
  const rx = [[1,0,0],[0,cx,-sx],[0,sx,cx]], ry = [[cy,0,sy],[0,1,0],[-sy,0,cy]];
  const mul = (a, b) => a.map(r => [0,1,2].map(j => r[0]*b[0][j] + r[1]*b[1][j] + r[2]*b[2][j]));
  return mul(mul(ry, rx), m);
}
function draw(c, mol, R) {
  const g = c.getContext("2d"); g.clearRect(0, 0, S, S);
  const p = mol.pos.map(x => [0,1,2].map(i => R[i][0]*x[0] + R[i][1]*x[1] + R[i][2]*x[2]));
  const sc = 0.42 * S / Math.max(1.5, mol.radius);
  const X = q => S/2 + sc*q[0], Y = q => S/2 - sc*q[1];
  g.lineWidth = 3; g.strokeStyle = "#888";
  const items = [];
  mol.bonds.forEach(b => items.push({z: (p[b[0]][2] + p[b[1]][2]) / 2 - 0.01, bond: b}));
  p.forEach((q, i) => items.push({z: q[2], atom: i}));
  items.sort((a, b) => a.z - b.z);
  for (const it of items) {
    if (it.bond) {
      const [i, j, o] = it.bond;
      g.lineWidth = 2 + 2 * (o - 1);
      g.beginPath(); g.moveTo(X(p[i]), Y(p[i])); g.lineTo(X(p[j]), Y(p[j])); g.stroke();
    } else {
      const i = it.atom, r = (mol.z[i] === 1 ? 0.22 : 0.35) * sc;
      g.beginPath(); g.arc(X(p[i]), Y(p[i]), r, 0, 2 * Math.PI);
      g.fillStyle = mol.color[i]; g.fill(); g.lineWidth = 1; g.strokeStyle = "#222"; g.stroke();
    }
  }
}
DATA.forEach(mol => {
  const cell = document.createElement("div"); cell.className = "cell";
  const c = document.createElement("canvas"); c.width = S; c.height = S;
  const cap = document.createElement("div"); cap.textContent = mol.name;
  cell.appendChild(c); cell.appendChild(cap); document.getElementById("grid").appendChild(cell);
  let R = [[1,0,0],[0,1,0],[0,0,1]], last = null;
  c.onmousedown = e => { last = [e.clientX, e.clientY]; };
  window.addEventListener("mouseup", () => { last = null; });
  c.onmousemove = e => {
    if (!last) return;
    R = rot(R, (e.clientY - last[1]) * 0.01, (e.clientX - last[0]) * 0.01);
    last = [e.clientX, e.clientY]; draw(c, mol, R);
  };
  draw(c, mol, R);
});
</script></body></html>
"""


def write_html_3d(
    molecules: Sequence[Molecule],
    path: str | os.PathLike,
    *,
    title: str = "symgen molecules",
    panel_size: int = 300,
) -> None:
    """Write a self-contained HTML page with rotatable 3D ball-and-stick views of molecules.

    The page embeds the coordinates as JSON and draws them on ``<canvas>`` elements with a
    small inline script (orthographic projection, painter's algorithm, drag to rotate). It
    loads nothing from the network. Bonds are the molecules' own or EDM-inferred.

    Examples:
        >>> write_html_3d([Molecule(np.array([8, 1, 1]),
        ...                         np.array([[0., 0, 0], [.96, 0, 0], [-.24, .93, 0]]))],
        ...               "/tmp/water.html")
    """
    data = []
    for i, m in enumerate(molecules):
        try:
            _check_atoms(m)
            a = _bond_orders_of(m)
        except ValueError as err:
            raise ValueError(f"molecule {i} ({m.name!r}): {err}") from err
        pos = np.asarray(m.positions, dtype=np.float64)
        pos = pos - (pos.mean(0) if len(pos) else 0.0)
        ii, jj = np.nonzero(np.triu(a, 1))
        z = np.asarray(m.atomic_numbers).tolist()
        data.append(
            {
                "name": m.name or f"molecule {i}",
                "z": z,
                "color": [_CPK.get(int(t), "#ff69b4") for t in z],
                "pos": np.round(pos, 4).tolist(),
                "radius": float(np.linalg.norm(pos, axis=1).max()) if len(pos) else 1.0,
                "bonds": [[int(p), int(q), int(a[p, q])] for p, q in zip(ii, jj, strict=False)],
            }
        )
    # "</" is escaped so that a molecule name cannot close the script element
    blob = json.dumps(data).replace("</", "<\\/")
    page = (
        _HTML.replace("__TITLE__", html.escape(title))
        .replace("__SIZE__", str(int(panel_size)))
        .replace("__DATA__", blob)
    )
    atomic_write(path, page)
