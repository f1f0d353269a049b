"""Tests of the pictures of molecules: PNG grid and self-contained 3D HTML view."""

import json
import re

import numpy as np
import pytest

from symgen.molecules.io import from_rdkit
from symgen.molecules.molecule import Molecule
from symgen.molecules.pictures import draw_grid_png, write_html_3d

Chem = pytest.importorskip("rdkit.Chem")
AllChem = pytest.importorskip("rdkit.Chem.AllChem")


@pytest.fixture(scope="module")
def molecules():
    out = []
    for smiles in ("CCO", "c1ccccc1", "C#N", "[NH3+]CC(=O)[O-]"):
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
        assert AllChem.EmbedMolecule(mol, randomSeed=0) == 0
        AllChem.MMFFOptimizeMolecule(mol)
        out.append(from_rdkit(mol, name=smiles))
    return out


def test_png_grid(tmp_path, molecules):
    t = 1.09
    ch5 = Molecule(  # pentavalent carbon: drawn unsanitized
        np.array([6, 1, 1, 1, 1, 1]),
        np.array(
            [[0, 0, 0], [0, 0, t], [0, 0, -t], [t, 0, 0], [-t / 2, 0.944, 0], [-t / 2, -0.944, 0]]
        ),
    )
    path = tmp_path / "grid.png"
    png = draw_grid_png(molecules + [ch5], path, mols_per_row=3, panel_size=(120, 100))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and path.read_bytes() == png
    # IHDR: width and height of a 3 x 2 grid of 120 x 100 panels
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (360, 200)
    with pytest.raises(ValueError, match="legends"):
        draw_grid_png(molecules, legends=["a"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png"]  # no temp file left


def test_html_3d(tmp_path, molecules):
    path = tmp_path / "view.html"
    named = [Molecule(molecules[0].atomic_numbers, molecules[0].positions, name="</script><b>")]
    write_html_3d(molecules + named, path, title="test <view>")
    text = path.read_text()
    assert text.count("<canvas") == 0 and 'createElement("canvas")' in text  # built by the script
    assert "http://" not in text and "https://" not in text  # self-contained
    assert "test &lt;view&gt;" in text and text.count("</script>") == 1
    data = json.loads(re.search(r"const DATA = (.*);\n", text).group(1).replace("<\\/", "</"))
    assert len(data) == 5 and data[0]["name"] == "CCO"
    assert len(data[0]["bonds"]) == 8 and data[0]["z"] == molecules[0].atomic_numbers.tolist()
    assert data[4]["name"] == "</script><b>"  # no own bonds: EDM-inferred, same 8 bonds
    assert sorted(map(tuple, data[4]["bonds"])) == sorted(map(tuple, data[0]["bonds"]))


def test_html_3d_names_the_bad_molecule(tmp_path, molecules):
    bad = Molecule(np.array([6, 8]), np.zeros((2, 3)), bonds=np.array([[0, 7]]), name="bad")
    with pytest.raises(ValueError, match=r"molecule 1 \('bad'\): bond index out of range"):
        write_html_3d([molecules[0], bad], tmp_path / "v.html")
    with pytest.raises(ValueError, match="non-finite"):
        write_html_3d([Molecule(np.array([6]), np.array([[np.nan, 0, 0]]))], tmp_path / "v.html")
    assert not (tmp_path / "v.html").exists()
