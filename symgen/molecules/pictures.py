"""Pictures of molecules: a PNG grid of 2D depictions and a self-contained 3D HTML view.

* :func:`draw_grid_png` — 2D depictions in a grid, drawn with RDKit's Cairo drawer (no PIL).
* :func:`write_html_3d` — a self-contained HTML page (inline JavaScript on a ``<canvas>``, no
  network access at view time) showing ball-and-stick models that rotate with the mouse.

Both take the molecules' own bonds, or bonds inferred with the EDM distance tables
(:func:`~symgen.molecules.bonds.molecule_bond_orders`). RDKit is imported inside
:func:`draw_grid_png`. Files are written atomically with :func:`symgen.files.atomic_write`.
"""

import html
import json
import os
from collections.abc import Sequence

import numpy as np

from symgen.files import atomic_write
from symgen.molecules.bonds import molecule_bond_orders
from symgen.molecules.io import _check_atoms, to_rdkit
from symgen.molecules.molecule import Molecule

__all__ = ["draw_grid_png", "write_html_3d"]


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
    coordinates of each molecule's graph (:func:`~symgen.molecules.io.to_rdkit`: own bonds or
    EDM-inferred); molecules that fail sanitization are drawn as they are; molecules that
    cannot be converted at all are drawn as empty panels with their legend.

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
    loads nothing from the network. Bonds follow
    :func:`~symgen.molecules.bonds.molecule_bond_orders` (own bonds, else EDM-inferred).

    Examples:
        >>> write_html_3d([Molecule(np.array([8, 1, 1]),
        ...                         np.array([[0., 0, 0], [.96, 0, 0], [-.24, .93, 0]]))],
        ...               "/tmp/water.html")
    """
    data = []
    for i, m in enumerate(molecules):
        try:
            _check_atoms(m)
            a = molecule_bond_orders(m, unsound="raise")
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
