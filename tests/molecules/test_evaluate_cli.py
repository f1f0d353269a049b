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
    assert "molecule_stability" in printed and "edm v1" in printed and "midi v1" in printed
    data = json.loads(out_json.read_text())
    m = data["metrics"]
    # geometry only (EDM): the zwitterion (N with 4 bonds, O with 1) and CH5 are unstable
    assert m["edm/molecule_stability"] == {
        "value": pytest.approx(4 / 6),
        "protocol": "edm",
        "version": "1",
        "count": 6,
    }
    # own bonds + charges: the zwitterion is fine under MiDi's charge-aware table
    assert m["midi/molecule_stability"]["value"] == pytest.approx(5 / 6)
    assert m["midi/molecule_stability"]["protocol"] == "midi"
    assert m["midi/validity"]["value"] == pytest.approx(5 / 6)
    assert m["midi/uniqueness"]["value"] == pytest.approx(4 / 5)
    assert m["midi/novelty"]["value"] == pytest.approx(2 / 4)  # CCO and CC#N are known
    assert m["mmff94-strain/mmff_setup_rate"]["count"] == 3
    assert m["symgen-composition/neutral"]["value"] == 1.0  # the zwitterion is net neutral
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
            "midi",
            "symgen-geometry-w1",
            "--no-progress",
        ]
    )
    assert rc == 0
    data = json.loads(out_json.read_text())
    assert data["num_molecules"] == 10
    assert "midi/molecule_stability" not in data["metrics"]  # XYZ carries no bonds
    assert "midi: skipped, no molecule carries its own bonds" in data["notes"]
    assert data["metrics"]["edm/molecule_stability"]["value"] == pytest.approx(4 / 10)
    assert data["metrics"]["symgen-geometry-w1/bond_length_w1"]["protocol"] == (
        "symgen-geometry-w1"
    )
    reasons = {f["name"]: f["reasons"] for f in data["failures"]}
    assert reasons["overlap"][0].startswith("edm: unstable: atom 0 C has valence 3")
    assert reasons["empty"] == ["not scorable: empty molecule (no atoms)"]
    assert reasons["nan molecule"] == ["not scorable: non-finite coordinates (1 atoms)"]
    (weird,) = reasons["weird"]
    assert weird.startswith("not scorable: atom 0: unknown element symbol 'Qq' (line ")


def test_cli_errors(tmp_path, capsys):
    assert main(["--samples", str(tmp_path / "missing.sdf")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    (tmp_path / "a.pdb").write_text("")
    assert main(["--samples", str(tmp_path / "a.pdb")]) == 2
    assert "unsupported file type '.pdb'" in capsys.readouterr().err
    write_xyz(
        [Molecule(np.array([1, 1]), np.array([[0.0, 0, 0], [0.74, 0, 0]]))], tmp_path / "h2.xyz"
    )
    assert main(["--samples", str(tmp_path / "h2.xyz"), "--reference", "nonexistent-ref"]) == 2
    assert "not a QM9 split name" in capsys.readouterr().err
    assert main(["--samples", str(tmp_path / "h2.xyz"), "--protocol", "nope"]) == 2
    assert "unknown protocol(s) ['nope']; choose from edm, midi" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("garbage.sdf", "this is not\na molecule file\n", "record 0: RDKit could not parse"),
        ("empty.sdf", "", "no molecules in the file"),
        ("empty.xyz", "", "no molecules in the file"),
        ("blank.xyz", "\n\n", "no molecules in the file"),
        ("short.xyz", "3\ncomment\nC 0 0 0\n", "block of 3 atoms runs past the end"),
        ("count.xyz", "two\ncomment\nC 0 0 0\n", "expected an atom count, got 'two'"),
        ("coords.xyz", "1\nc\nC 0 zero 0\n", "bad coordinates"),
        ("zero_atoms.xyz", "0\nnothing here\n", "no molecule has any atom"),
    ],
)
def test_bad_input_exits_nonzero_with_the_reason(tmp_path, capsys, name, content, reason):
    path = tmp_path / name
    path.write_text(content)
    assert main(["--samples", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert reason in err and name in err


def test_sdf_record_with_unknown_element_names_file_record_and_symbol(tmp_path, capsys, samples):
    sdf = tmp_path / "s.sdf"
    write_sdf(samples[:2], sdf)
    text = sdf.read_text()
    first, rest = text.split("$$$$\n", 1)
    lines = first.splitlines()
    lines[4] = lines[4][:31] + "Xx " + lines[4][34:]  # first atom line: element column
    sdf.write_text("\n".join(lines) + "\n$$$$\n" + rest)
    assert main(["--samples", str(sdf), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert (
        "s.sdf: record 0: RDKit could not parse the record: atom 0: unknown element "
        "symbol 'Xx'" in err
    )


def test_folder_of_edm_sample_files(tmp_path, capsys, samples):
    """EDM writes one ``.txt`` XYZ file per sample (count line, blank line, atom lines)."""
    folder = tmp_path / "eval"
    folder.mkdir()
    for i, m in enumerate(samples[:3]):
        lines = [f"{m.num_atoms}", ""] + [
            f"{'HCNOF'[[1, 6, 7, 8, 9].index(int(z))]} {x:.9f} {y:.9f} {c:.9f}"
            for z, (x, y, c) in zip(m.atomic_numbers, m.positions, strict=True)
        ]
        (folder / f"molecule_{i:03d}.txt").write_text("\n".join(lines) + "\n")
    (folder / "notes.md").write_text("ignored")
    out = tmp_path / "m.json"
    assert (
        main(["--samples", str(folder), "--protocol", "edm", "--json", str(out), "--no-progress"])
        == 0
    )
    data = json.loads(out.read_text())
    assert data["num_molecules"] == 3
    assert data["metrics"]["edm/molecule_stability"]["value"] == 1.0
    assert "no bonds in the input" in capsys.readouterr().out


def test_sdf_without_hydrogens_or_bonds_is_read_and_flagged(tmp_path, capsys):
    heavy = Molecule(np.array([6, 8]), np.array([[0.0, 0, 0], [1.43, 0, 0]]), name="CO heavy")
    sdf = tmp_path / "noh.sdf"
    write_sdf([heavy], sdf)  # written with EDM bonds: one C-O single bond, no hydrogens
    assert main(["--samples", str(sdf), "--protocol", "edm", "midi", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "no explicit hydrogens in the input" in out
    # no bond block at all: the bonds are unknown (None), not "generated without bonds"
    text = sdf.read_text().splitlines()
    counts = text[3]
    text[3] = counts[:3] + "  0" + counts[6:]
    text = [ln for ln in text if not ln.startswith("  1  2  1")]
    sdf.write_text("\n".join(text) + "\n")
    from symgen.molecules.io import read_molecules

    (mol,) = read_molecules(sdf)
    assert mol.bonds is None and mol.num_atoms == 2


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
            "--protocol",
            "midi",
            "symgen-geometry-w1",
            "--max-reference-molecules",
            "300",
            "--no-progress",
        ]
    )
    assert rc == 0
    m = json.loads(out.read_text())["metrics"]
    from symgen.molecules.metrics import canonical_smiles
    from symgen.molecules.qm9 import load_qm9_split

    test_smiles = canonical_smiles(load_qm9_split("test", progress=False).smiles)
    unique = {"CCO", "CC#N", "NCC(=O)O", "c1ccoc1"}  # own bonds: CH5 is the only invalid one
    unique = canonical_smiles(unique | {"[NH3+]CC(=O)[O-]"}) - {"NCC(=O)O"}
    expected = len(unique - test_smiles) / len(unique)
    assert m["midi/novelty"]["value"] == pytest.approx(expected)
    assert m["midi/uniqueness"]["count"] == 5  # CH5 is invalid
    w1 = m["symgen-geometry-w1/bond_length_w1"]["value"]
    assert w1 is not None and w1 < 0.05


def test_reference_file_that_is_not_smiles_is_refused(tmp_path, capsys, samples):
    sdf = tmp_path / "s.sdf"
    write_sdf(samples[:2], sdf)
    junk = tmp_path / "eval.txt"
    junk.write_text("3\n\nC 0.0 0.0 0.0\nH 1.0 0.0 0.0\nH 0.0 1.0 0.0\n")
    assert main(["--samples", str(sdf), "--reference", str(junk), "--protocol", "edm"]) == 2
    assert "3 of its first 4 lines are not SMILES" in capsys.readouterr().err
