"""Tests of molecule I/O: SDF/XYZ round trips, RDKit conversion, atomic writes."""

import numpy as np
import pytest

from symgen.files import atomic_write
from symgen.molecules.bonds import infer_bonds_edm
from symgen.molecules.io import from_rdkit, read_sdf, read_xyz, to_rdkit, write_sdf, write_xyz
from symgen.molecules.molecule import Molecule

Chem = pytest.importorskip("rdkit.Chem")
AllChem = pytest.importorskip("rdkit.Chem.AllChem")


def _embedded(smiles: str, seed: int = 0) -> Molecule:
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=seed) == 0
    AllChem.MMFFOptimizeMolecule(mol)
    return from_rdkit(mol, name=smiles)


@pytest.fixture(scope="module")
def molecules():
    return [_embedded(s) for s in ("CCO", "c1ccccc1", "C#N", "[NH3+]CC(=O)[O-]")]


def _same(a: Molecule, b: Molecule, atol: float = 1e-4) -> None:
    assert a.atomic_numbers.tolist() == b.atomic_numbers.tolist()
    np.testing.assert_allclose(a.positions, b.positions, atol=atol)


def _bond_set(m: Molecule) -> list:
    return sorted(zip(map(tuple, m.bonds.tolist()), m.bond_orders.tolist(), strict=True))


def test_from_rdkit_kekulizes_and_keeps_charges(molecules):
    benzene = molecules[1]
    assert sorted(benzene.bond_orders.tolist()).count(2) == 3  # Kekulé structure
    gly = molecules[3]
    assert sorted(gly.charges.tolist()) == [-1] + [0] * 8 + [1]
    assert (
        gly.bonds.shape == (len(gly.bond_orders), 2) and (gly.bonds[:, 0] < gly.bonds[:, 1]).all()
    )


def test_sdf_round_trip(tmp_path, molecules):
    path = tmp_path / "mols.sdf"
    write_sdf(molecules, path)
    back = read_sdf(path)
    assert len(back) == len(molecules)
    for a, b in zip(molecules, back, strict=False):
        _same(a, b)
        assert b.name == a.name
        assert b.charges.tolist() == a.charges.tolist()
        assert _bond_set(a) == _bond_set(b)


def test_sdf_without_bonds_gets_edm_bonds_and_invalid_records_survive(tmp_path):
    # a pentavalent carbon: written and read back unsanitized, bonds from the EDM tables
    t = 1.09
    ch5 = Molecule(
        np.array([6, 1, 1, 1, 1, 1]),
        np.array(
            [[0, 0, 0], [0, 0, t], [0, 0, -t], [t, 0, 0], [-t / 2, 0.944, 0], [-t / 2, -0.944, 0]]
        ),
        name="CH5",
    )
    path = tmp_path / "bad.sdf"
    write_sdf([ch5], path)
    (back,) = read_sdf(path)
    assert len(back.bonds) == 5 and back.bond_orders.tolist() == [1] * 5


def test_read_sdf_errors(tmp_path, molecules):
    path = tmp_path / "broken.sdf"
    write_sdf(molecules[:2], path)
    text = path.read_text().split("$$$$\n")
    broken = text[0] + "$$$$\n" + "garbage\n\n\n  x  y\nM  END\n$$$$\n" + text[1] + "$$$$\n"
    path.write_text(broken)
    with pytest.raises(ValueError, match="record 1"):
        read_sdf(path)
    kept = read_sdf(path, errors="keep")
    assert len(kept) == 3 and kept[1].num_atoms == 0 and kept[1].name.startswith("record 1")
    with pytest.raises(FileNotFoundError):
        read_sdf(tmp_path / "missing.sdf")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_xyz_round_trip(tmp_path, molecules, dtype):
    mols = [Molecule(m.atomic_numbers, m.positions.astype(dtype), name=m.name) for m in molecules]
    path = tmp_path / "mols.xyz"
    write_xyz(mols, path)
    back = read_xyz(path)
    assert [b.name for b in back] == [m.name for m in mols]
    for a, b in zip(mols, back, strict=False):
        _same(a, b, atol=1e-5)
        assert b.bonds is None


def test_read_xyz_malformed_and_unknown(tmp_path):
    p = tmp_path / "a.xyz"
    p.write_text("2\nfirst\nC 0 0 0\nXx 1 0 0\n\n1\nsecond\n8 0 0 0\n")
    with pytest.raises(ValueError, match="unknown element symbol 'Xx'"):
        read_xyz(p)
    kept = read_xyz(p, errors="keep")
    assert kept[0].atomic_numbers.tolist() == [6, 0] and kept[1].atomic_numbers.tolist() == [8]
    p.write_text("3\ntruncated\nC 0 0 0\n")
    with pytest.raises(ValueError, match="runs past the end"):
        read_xyz(p)
    p.write_text("1\nbad\nC 0 zero 0\n")
    with pytest.raises(ValueError, match="bad coordinates"):
        read_xyz(p)


def test_to_rdkit_uses_edm_bonds_and_rejects_bad_input():
    water = Molecule(np.array([8, 1, 1]), np.array([[0.0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]))
    mol = to_rdkit(water, sanitize=True)
    assert Chem.MolToSmiles(Chem.RemoveHs(mol)) == "O" and mol.GetNumBonds() == 2
    a = infer_bonds_edm(water.atomic_numbers, water.positions)
    assert to_rdkit(water, np.zeros_like(a)).GetNumBonds() == 0
    with pytest.raises(ValueError, match="non-finite"):
        to_rdkit(Molecule(np.array([6]), np.array([[np.nan, 0, 0]])))
    with pytest.raises(ValueError, match="unknown atomic number"):
        to_rdkit(Molecule(np.array([150]), np.zeros((1, 3))))


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write(target, "old")

    def killed_halfway(f):
        f.write(b"new but only ha")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        atomic_write(target, killed_halfway)
    with pytest.raises(TypeError):  # neither text, bytes nor a writer function
        atomic_write(target, 123)  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    assert atomic_write(tmp_path / "sub" / "new.bin", b"\x00\x01").read_bytes() == b"\x00\x01"


def test_sdf_bonds_without_orders_are_single_and_bad_bonds_raise(tmp_path):
    xyz = np.array([[0.0, 0, 0], [1.2, 0, 0]])
    no_orders = Molecule(np.array([6, 8]), xyz, bonds=np.array([[0, 1]]), name="CO")
    write_sdf([no_orders], tmp_path / "a.sdf")
    (back,) = read_sdf(tmp_path / "a.sdf")
    assert back.bond_orders.tolist() == [1]  # not the C=O the EDM tables would infer
    duplicate = Molecule(np.array([6, 8]), xyz, bonds=np.array([[0, 1], [0, 1]]), name="dup")
    with pytest.raises(ValueError, match=r"molecule 1 \('dup'\): duplicate bonds"):
        write_sdf([no_orders, duplicate], tmp_path / "b.sdf")
    assert not (tmp_path / "b.sdf").exists()
