"""Tests of the command line ``python -m symgen.molecules.evaluate``."""

import json
import subprocess
import sys

import numpy as np
import pytest

from symgen.molecules.evaluate import main
from symgen.molecules.io import from_rdkit, write_sdf, write_xyz
from symgen.molecules.molecule import Molecule

Chem = pytest.importorskip("rdkit.Chem")
AllChem = pytest.importorskip("rdkit.Chem.AllChem")


def _embedded(smiles: str, seed: int = 0) -> Molecule:
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=seed) == 0
    AllChem.MMFFOptimizeMolecule(mol)
    return from_rdkit(mol, name=smiles)


@pytest.fixture(scope="module")
def samples():
    mols = [_embedded(s) for s in ("CCO", "CCO", "CC#N", "[NH3+]CC(=O)[O-]", "c1ccoc1")]
    ch5 = Molecule(
        np.array([6, 1, 1, 1, 1, 1]),
        np.array(
            [
                [0, 0, 0],
                [0, 0, 1.09],
                [0, 0, -1.09],
                [1.09, 0, 0],
                [-0.545, 0.944, 0],
                [-0.545, -0.944, 0],
            ]
        ),
        name="CH5",
    )
    return mols + [ch5]


def test_help_runs_as_module():
    out = subprocess.run(
        [sys.executable, "-m", "symgen.molecules.evaluate", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--samples" in out.stdout and "--protocol" in out.stdout and "qm9-train" in out.stdout


def test_sdf_with_smiles_reference(tmp_path, samples, capsys):
    sdf = tmp_path / "samples.sdf"
    write_sdf(samples, sdf)
    ref = tmp_path / "train.smi"
    ref.write_text("# training set\nCCO first\nCC#N\n")
    out_json = tmp_path / "out" / "metrics.json"
    png, html = tmp_path / "grid.png", tmp_path / "view.html"
    rc = main(
        [
            "--samples",
            str(sdf),
            "--reference",
            str(ref),
            "--json",
            str(out_json),
            "--max-strain-molecules",
            "3",
            "--no-progress",
            "--png",
            str(png),
            "--html",
            str(html),
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "molecule_stability" in printed and "edm-distance-table v1" in printed
    data = json.loads(out_json.read_text())
    m = data["metrics"]
    # geometry only (EDM): the zwitterion (N with 4 bonds, O with 1) and CH5 are unstable
    assert m["molecule_stability"] == {
        "value": pytest.approx(4 / 6),
        "protocol": "edm-distance-table",
        "version": "1",
        "count": 6,
    }
    # given bonds + charges: the zwitterion is fine under the charge-aware table
    assert m["molecule_stability_given_bonds"]["value"] == pytest.approx(5 / 6)
    assert m["molecule_stability_given_bonds"]["protocol"] == "charged-valence"
    assert m["validity_given_bonds"]["value"] == pytest.approx(5 / 6)
    assert m["uniqueness_given_bonds"]["value"] == pytest.approx(4 / 5)
    assert m["novelty_given_bonds"]["value"] == pytest.approx(2 / 4)  # CCO and CC#N are known
    assert m["mmff_setup_rate"]["count"] == 3
    names = {f["name"]: f["reasons"] for f in data["failures"]}
    assert any("valence 5" in r for r in names["CH5"])
    assert png.read_bytes()[:4] == b"\x89PNG" and "canvas" in html.read_text()
    assert sorted(p.name for p in out_json.parent.iterdir()) == ["metrics.json"]  # no temp files


def test_xyz_with_bad_molecules_and_sdf_reference(tmp_path, samples):
    bad = [
        Molecule(np.array([6, 6]), np.array([[0.0, 0, 0], [0.05, 0, 0]]), name="overlap"),
        Molecule(np.zeros(0, np.int64), np.zeros((0, 3)), name="empty"),
    ]
    xyz = tmp_path / "samples.xyz"
    write_xyz(samples + bad, xyz)
    with open(xyz, "a") as f:
        f.write("2\nnan molecule\nC nan 0 0\nH 1 0 0\n2\nweird\nQq 0 0 0\nH 1 0 0\n")
    ref = tmp_path / "ref.sdf"
    write_sdf(samples[:3], ref)
    out_json = tmp_path / "m.json"
    rc = main(
        [
            "--samples",
            str(xyz),
            "--reference",
            str(ref),
            "--json",
            str(out_json),
            "--protocol",
            "edm",
            "--max-strain-molecules",
            "0",
            "--no-progress",
        ]
    )
    assert rc == 0
    data = json.loads(out_json.read_text())
    assert data["num_molecules"] == 10
    assert "molecule_stability_given_bonds" not in data["metrics"]
    assert data["metrics"]["molecule_stability"]["value"] == pytest.approx(4 / 10)
    assert data["metrics"]["bond_length_w1"]["protocol"] == "w1-edm-bonds"
    reasons = {f["name"]: f["reasons"] for f in data["failures"]}
    assert reasons["overlap"][0].startswith("overlapping atoms 0 and 1")
    assert reasons["empty"] == ["empty molecule (no atoms)"]
    assert reasons["nan molecule"] == ["non-finite coordinates (1 atoms)"]
    assert reasons["weird"] == ["unknown element (atomic number 0)"]


def test_cli_errors(tmp_path, capsys):
    assert main(["--samples", str(tmp_path / "missing.sdf")]) == 2
    assert "no such SD file" in capsys.readouterr().err
    (tmp_path / "a.pdb").write_text("")
    assert main(["--samples", str(tmp_path / "a.pdb")]) == 2
    write_xyz(
        [Molecule(np.array([1, 1]), np.array([[0.0, 0, 0], [0.74, 0, 0]]))], tmp_path / "h2.xyz"
    )
    assert main(["--samples", str(tmp_path / "h2.xyz"), "--reference", "nonexistent-ref"]) == 2
    assert "not a QM9 split name" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--samples", "x.sdf", "--protocol", "nope"])


def test_qm9_split_reference(tmp_path, samples):
    """``--reference qm9-test`` goes through the QM9 loader (uses its cache)."""
    sdf = tmp_path / "s.sdf"
    write_sdf(samples, sdf)
    out = tmp_path / "m.json"
    rc = main(
        [
            "--samples",
            str(sdf),
            "--reference",
            "qm9-test",
            "--json",
            str(out),
            "--max-reference-molecules",
            "300",
            "--max-strain-molecules",
            "0",
            "--no-progress",
        ]
    )
    assert rc == 0
    m = json.loads(out.read_text())["metrics"]
    from symgen.molecules.metrics import canonical_smiles
    from symgen.molecules.qm9 import load_qm9_split

    test_smiles = canonical_smiles(load_qm9_split("test", progress=False).smiles)
    unique = {"CCO", "CC#N", "c1ccoc1"}  # SMILES of the samples valid from geometry
    expected = len(unique - test_smiles) / len(unique)
    assert m["novelty"]["value"] == pytest.approx(expected)
    assert m["uniqueness"]["count"] == 4  # CH5 and the zwitterion are invalid from geometry
    assert m["bond_length_w1"]["value"] is not None and m["bond_length_w1"]["value"] < 0.05
