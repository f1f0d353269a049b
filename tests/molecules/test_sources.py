"""Training data sources: specifications, splits, layouts, a user's SD file, symgen .npz files."""

from pathlib import Path

import numpy as np
import pytest

from symgen.molecules.dataset import MoleculeDataset
from symgen.molecules.featurize import FeatureLayout
from symgen.molecules.molecule import Molecule
from symgen.molecules.sources import (
    data_kind,
    dataset_layout,
    load_training_data,
    read_training_sdf,
    seeded_split,
)

SMILES = [
    "CC(=O)Nc1ccc(O)cc1",
    "c1ccc2[nH]ccc2c1",
    "CCS(=O)(=O)N",
    "C[N+](C)(C)CC(=O)[O-]",
    "Clc1ccccc1Br",
    "OC(=O)c1ccccc1F",
    "CCOC(=O)C",
    "N#Cc1ccncc1",
]


def _embedded(smiles: str, seed: int):  # noqa: ANN202 - an RDKit Mol
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=seed) == 0
    return mol


def _write_sdf(path: Path, smiles: list[str], extra: str = "") -> None:
    from rdkit import Chem

    with Chem.SDWriter(str(path)) as w:
        for i, s in enumerate(smiles):
            w.write(_embedded(s, i))
    if extra:
        with path.open("a") as f:
            f.write(extra)


GARBAGE = "not a molfile\n  nonsense\n\n  2  1  0  0  0  0  0  0  0  0999 V2000\n$$$$\n"


def test_data_kind_names_every_form() -> None:
    assert data_kind("qm9") == "qm9"
    assert data_kind("moses3d") == "moses3d"
    assert data_kind("geom:/x/y") == "geom"
    assert data_kind("a/b.sdf") == "sdf"
    assert data_kind("set.NPZ") == "npz"
    for bad in ("qm8", "geom:", "mols.xyz", ""):
        with pytest.raises(ValueError, match="expected 'qm9', 'moses3d'"):
            data_kind(bad)


@pytest.mark.parametrize("n", [2, 3, 50, 1001])
@pytest.mark.parametrize("seed", [0, 7])
def test_seeded_split_is_a_deterministic_partition(n: int, seed: int) -> None:
    a, b = seeded_split(n, 0.05, seed), seeded_split(n, 0.05, seed)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    both = np.concatenate([a["train"], a["valid"]])
    assert sorted(both.tolist()) == list(range(n))  # disjoint and complete
    assert len(a["valid"]) == min(n - 1, max(1, round(0.05 * n)))
    assert len(a["train"]) >= 1
    if n > 50:
        assert not np.array_equal(seeded_split(n, 0.05, seed + 1)["valid"], a["valid"])


def test_seeded_split_refuses_too_few_or_bad_share() -> None:
    with pytest.raises(ValueError, match="at least 2 molecules"):
        seeded_split(1, 0.1, 0)
    with pytest.raises(ValueError, match="valid_share"):
        seeded_split(10, 1.0, 0)


def _dataset(atoms: list[tuple[list[int], list[int]]]) -> MoleculeDataset:
    mols = [
        Molecule(np.array(z), np.random.default_rng(0).normal(size=(len(z), 3)), np.array(c))
        for z, c in atoms
    ]
    return MoleculeDataset.from_molecules(mols)


def test_auto_layout_holds_exactly_the_elements_and_charges_present() -> None:
    ds = _dataset([([6, 8, 1, 1], [0, -1, 0, 0]), ([7, 17, 1], [1, 0, 0])])
    layout = dataset_layout("auto", ds)
    assert layout.elements == ("H", "C", "N", "O", "Cl")  # GEOM order, only those present
    assert layout.charges == (-1, 0, 1)
    neutral = dataset_layout("auto", _dataset([([6, 1], [0, 0])]))
    assert neutral.charges == (0,)
    assert dataset_layout("geom", ds) == FeatureLayout.geom()


def test_layout_errors_name_the_element_or_charge() -> None:
    with pytest.raises(ValueError, match="unsupported element.*Se"):
        dataset_layout("auto", _dataset([([34, 1], [0, 0])]))
    with pytest.raises(ValueError, match="no channel for element.*Cl"):
        dataset_layout("qm9", _dataset([([17, 1], [0, 0])]))
    with pytest.raises(ValueError, match=r"no channel for formal charge.*\[2\]"):
        dataset_layout("qm9", _dataset([([6, 1], [2, 0])]))
    with pytest.raises(ValueError, match="unknown layout"):
        dataset_layout("big", _dataset([([6, 1], [0, 0])]))


def test_sdf_bad_records_are_skipped_and_counted_or_refused(tmp_path: Path) -> None:
    pytest.importorskip("rdkit")
    path = tmp_path / "mine.sdf"
    _write_sdf(path, SMILES[:3], extra=GARBAGE)
    ds, notes = read_training_sdf(path)
    assert len(ds) == 3 and notes["records"] == 4 and notes["kept"] == 3
    assert notes["skipped"] == {"unreadable record": 1}
    assert ds.ids.tolist() == [0, 1, 2]
    assert (ds.charges != 0).sum() == 0 and len(ds.bonds) > 0
    with pytest.raises(ValueError, match="record 3: unreadable record"):
        read_training_sdf(path, bad_records="error")


def test_a_file_of_2d_depictions_is_refused_a_planar_molecule_is_kept(tmp_path: Path) -> None:
    pytest.importorskip("rdkit")
    from rdkit import Chem
    from rdkit.Chem import AllChem

    flat = Chem.AddHs(Chem.MolFromSmiles("CCO"))
    AllChem.Compute2DCoords(flat)
    path = tmp_path / "flat.sdf"
    with Chem.SDWriter(str(path)) as w:
        w.write(flat)
        w.write(flat)
    with pytest.raises(ValueError, match="every record lies in the plane z = 0"):
        read_training_sdf(path)
    mixed = tmp_path / "mixed.sdf"
    with Chem.SDWriter(str(mixed)) as w:
        w.write(_embedded("CCO", 0))
        w.write(flat)  # a planar molecule (z = 0) among 3D ones
    assert read_training_sdf(mixed)[1]["kept"] == 2


def test_sdf_with_nothing_usable_is_an_error(tmp_path: Path) -> None:
    pytest.importorskip("rdkit")
    path = tmp_path / "junk.sdf"
    path.write_text(GARBAGE)
    with pytest.raises(ValueError, match="no usable record"):
        read_training_sdf(path)
    with pytest.raises(FileNotFoundError):
        read_training_sdf(tmp_path / "missing.sdf")


def test_load_training_data_from_sdf_and_npz_agree(tmp_path: Path) -> None:
    pytest.importorskip("rdkit")
    path = tmp_path / "mine.sdf"
    _write_sdf(path, SMILES)
    data = load_training_data(str(path), valid_share=0.25, progress=False)
    assert data.name == "mine.sdf" and data.notes["kept"] == len(SMILES)
    assert len(data.train) + len(data.valid) == len(SMILES)
    assert set(data.layout.elements) == {"H", "C", "N", "O", "F", "S", "Cl", "Br"}
    assert data.layout.charges == (-1, 0, 1)  # the zwitterion's charges
    assert data.headline_protocols == ("midi", "geom-revisited")
    assert data.reference_smiles is None  # record titles are not SMILES: written from bonds
    # the same molecules saved as a symgen dataset file give the same split and layout
    npz = tmp_path / "mine.npz"
    MoleculeDataset.from_molecules(list(read_training_sdf(path)[0])).save(npz)
    again = load_training_data(str(npz), valid_share=0.25, progress=False)
    assert again.layout == data.layout
    np.testing.assert_array_equal(again.train.positions, data.train.positions)
    assert again.key == load_training_data(str(npz), valid_share=0.25, progress=False).key
    moved = read_training_sdf(path)[0]
    moved.positions[0, 0] += 0.01
    other = tmp_path / "other.npz"
    moved.save(other)
    changed = load_training_data(str(other), valid_share=0.25, progress=False)
    assert changed.key != again.key  # the file's digest is part of the data's identity
    limited = load_training_data(str(npz), valid_share=0.25, train_limit=2, progress=False)
    assert len(limited.train) == 2 and limited.key["train_limit"] == 2


def test_auto_layout_covers_molecules_on_either_side_of_the_split(tmp_path: Path) -> None:
    mols = [Molecule(np.array([6, 1, 1, 1, 1]), np.eye(5, 3) * 1.1) for _ in range(9)]
    mols.append(Molecule(np.array([35, 1]), np.array([[0, 0, 0], [1.4, 0, 0.0]])))
    path = tmp_path / "set.npz"
    MoleculeDataset.from_molecules(mols).save(path)
    sides = set()
    for seed in range(12):
        data = load_training_data(str(path), valid_share=0.3, seed=seed, progress=False)
        assert data.layout.elements == ("H", "C", "Br")
        assert len(data.train) + len(data.valid) == 10
        sides.add(any(35 in m.atomic_numbers for m in data.valid))
    assert sides == {True, False}  # the bromide landed in validation for some seed


def test_fitting_drops_molecules_outside_a_layout() -> None:
    from symgen.molecules.sources import _fitting

    ds = _dataset([([6, 1], [0, 0]), ([35, 1], [0, 0]), ([7, 1], [1, 0]), ([6, 8], [0, -1])])
    kept, dropped = _fitting(ds, FeatureLayout(("H", "C", "N", "O"), (-1, 0), (0, 1, 2, 3)))
    assert dropped == 2 and [m.atomic_numbers.tolist() for m in kept] == [[6, 1], [6, 8]]


def test_missing_npz_and_geom_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such dataset file"):
        load_training_data(str(tmp_path / "none.npz"), progress=False)
    with pytest.raises(FileNotFoundError, match="train_data.pickle"):
        load_training_data(f"geom:{tmp_path}", progress=False)
