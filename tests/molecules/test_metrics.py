"""Tests of validity, uniqueness, novelty, geometry distances, MMFF strain and the evaluator."""

import math

import numpy as np
import pytest

from symgen.molecules.bonds import infer_bonds_edm
from symgen.molecules.evaluate import EvaluationReport, Metric, evaluate
from symgen.molecules.metrics import (
    angle_type_name,
    atom_count_samples,
    bond_angle_samples,
    bond_length_samples,
    bond_type_name,
    canonical_smiles,
    check_molecule,
    mmff_strain,
    novelty,
    pad_molecules,
    rdkit_validity,
    total_variation,
    uniqueness,
    wasserstein_by_type,
)
from symgen.molecules.molecule import Molecule

Chem = pytest.importorskip("rdkit.Chem")
AllChem = pytest.importorskip("rdkit.Chem.AllChem")

_T = 1.09 / np.sqrt(3.0)
METHANE = Molecule(
    np.array([6, 1, 1, 1, 1]),
    np.array([[0, 0, 0], [_T, _T, _T], [-_T, -_T, _T], [-_T, _T, -_T], [_T, -_T, -_T]]),
    name="methane",
)
WATER = Molecule(
    np.array([8, 1, 1]), np.array([[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]), name="water"
)
CH5 = Molecule(
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


def _embedded(smiles: str, seed: int = 0, optimize: bool = True) -> Molecule:
    from symgen.molecules.io import from_rdkit

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=seed) == 0
    if optimize:
        AllChem.MMFFOptimizeMolecule(mol, maxIters=2000)
    return from_rdkit(mol, name=smiles)


def _edm(m: Molecule) -> np.ndarray:
    return infer_bonds_edm(m.atomic_numbers, m.positions.astype(np.float64))


def test_check_molecule_reasons():
    assert check_molecule(WATER) == []
    assert check_molecule(Molecule(np.zeros(0, np.int64), np.zeros((0, 3)))) == [
        "empty molecule (no atoms)"
    ]
    nan = Molecule(np.array([6, 1]), np.array([[0, 0, 0], [np.nan, 0, 0]]))
    assert check_molecule(nan) == ["non-finite coordinates (1 atoms)"]
    assert "unknown element (atomic number 0, 130)" in check_molecule(
        Molecule(np.array([0, 6, 130]), np.eye(3))
    )
    assert check_molecule(Molecule(np.array([6, 6]), np.array([[0, 0, 0], [0, 0.3, 0]])))[
        0
    ].startswith("overlapping atoms 0 and 1")
    assert "inconsistent shapes" in check_molecule(Molecule(np.array([6, 6]), np.zeros((3, 3))))[0]


def test_validity_known_cases():
    two_waters = Molecule(
        np.concatenate([WATER.atomic_numbers, WATER.atomic_numbers]),
        np.concatenate([WATER.positions, WATER.positions + 5.0]),
    )
    methanol_frag = _embedded("CO")
    both = Molecule(
        np.concatenate([methanol_frag.atomic_numbers, WATER.atomic_numbers]),
        np.concatenate([methanol_frag.positions, WATER.positions + 6.0]),
    )
    mols = [METHANE, CH5, two_waters, both]
    res = rdkit_validity(mols, [_edm(m) for m in mols])
    assert res.valid.tolist() == [True, False, True, True]
    assert res.connected.tolist() == [True, False, False, False]
    assert res.num_fragments.tolist() == [1, 0, 2, 2]
    assert res.smiles_noh == ["C", "", "O", "CO"]  # largest fragment, hydrogens implicit
    assert res.smiles[0] == "[H]C([H])([H])[H]"  # as EDM writes it: explicit hydrogens kept
    assert "valence" in res.errors[1].lower()


def test_validity_with_charges_glycine_zwitterion():
    gly = _embedded("[NH3+]CC(=O)[O-]")
    a = np.zeros((gly.num_atoms, gly.num_atoms), np.int64)
    a[gly.bonds[:, 0], gly.bonds[:, 1]] = a[gly.bonds[:, 1], gly.bonds[:, 0]] = gly.bond_orders
    with_q = rdkit_validity([gly], [a], use_charges=True)
    without_q = rdkit_validity([gly], [a], use_charges=False)
    assert with_q.valid.tolist() == [True] and with_q.smiles_noh == [
        "NCC(=O)O".replace("N", "[NH3+]", 1).replace("O)O", "O)[O-]")
    ]
    assert without_q.valid.tolist() == [False]  # N with four bonds and no charge


def test_uniqueness_novelty_smiles():
    assert uniqueness(["C", "C", "CO", ""]) == pytest.approx(2 / 3)
    assert math.isnan(uniqueness(["", ""]))
    assert novelty(["C", "CO", "CO", "CCO"], {"C"}) == pytest.approx(2 / 3)
    assert canonical_smiles(["OC", "CO", "[C@H](O)(N)C", "junk("]) == {"CO", "CC(N)O"}


def test_type_names():
    assert bond_type_name(1, 6, 1) == "C-H" and bond_type_name(8, 6, 2) == "C=O"
    assert bond_type_name(7, 6, 3) == "C#N" and bond_type_name(1, 8, 1) == "O-H"
    assert angle_type_name(1, 6, 8) == "O-C-H" and angle_type_name(6, 6, 1) == "C-C-H"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_geometry_samples(dtype):
    p = pad_molecules([METHANE, WATER])
    pos = p.positions.astype(dtype)
    a = infer_bonds_edm(p.atomic_numbers, pos, p.mask)
    lengths = bond_length_samples(p.atomic_numbers, pos, a)
    assert sorted(lengths) == ["C-H", "O-H"]
    np.testing.assert_allclose(lengths["C-H"], 1.09, atol=1e-5)
    angles = bond_angle_samples(p.atomic_numbers, pos, a)
    assert len(angles["H-C-H"]) == 6 and len(angles["H-O-H"]) == 1
    np.testing.assert_allclose(angles["H-C-H"], np.degrees(np.arccos(-1 / 3)), atol=1e-3)
    counts = atom_count_samples(p.atomic_numbers, p.mask)
    assert counts["atoms"].tolist() == [5, 3] and counts["H"].tolist() == [4, 2]
    assert counts["C"].tolist() == [1, 0] and counts["O"].tolist() == [0, 1]


def test_wasserstein_and_tv():
    rng = np.random.default_rng(0)
    ref = {
        "C-C": rng.normal(1.5, 0.02, 500),
        "C-H": rng.normal(1.09, 0.01, 1000),
        "rare": np.ones(3),
    }
    same = wasserstein_by_type(ref, ref)
    assert same["C-C"] == 0 and same["mean"] == 0 and "rare" not in same
    shifted = wasserstein_by_type({k: v + 0.1 for k, v in ref.items()}, ref)
    assert shifted["C-C"] == pytest.approx(0.1) and shifted["mean"] == pytest.approx(0.1)
    missing = wasserstein_by_type({"C-H": ref["C-H"]}, ref)
    assert missing["C-C"] == math.inf and missing["mean"] == 0.0
    assert total_variation(
        {"C": np.array([2]), "H": np.array([2])}, {"C": np.array([1]), "H": np.array([3])}
    ) == pytest.approx(0.25)
    assert total_variation({"C": np.array([1])}, {"C": np.array([4])}) == 0.0


def test_mmff_strain():
    relaxed = _embedded("CCO")
    rng = np.random.default_rng(0)
    strained = Molecule(
        relaxed.atomic_numbers,
        relaxed.positions + rng.normal(0, 0.06, relaxed.positions.shape),
        bonds=relaxed.bonds,
        bond_orders=relaxed.bond_orders,
    )
    heavy_only = Molecule(np.array([6, 6, 8]), relaxed.positions[:3])
    mols = [relaxed, strained, CH5, heavy_only]
    res = mmff_strain(
        mols, [_edm(relaxed), _edm(relaxed), _edm(CH5), _edm(heavy_only)], max_iters=500
    )
    assert abs(res.strain[0]) < 0.05  # already at an MMFF minimum
    assert res.strain[1] > 2.0  # random displacement costs energy
    assert np.isnan(res.strain[2]) and res.reasons[2].startswith("not sanitizable")
    assert np.isnan(res.strain[3]) and res.reasons[3].startswith("implicit hydrogens")
    assert res.setup_rate == 0.5 and res.converged[:2].all()


def test_evaluate_known_molecules_and_bad_input():
    nan = Molecule(np.array([6, 1]), np.array([[0, 0, 0], [np.nan, 0, 0]]), name="nan")
    empty = Molecule(np.zeros(0, np.int64), np.zeros((0, 3)), name="empty")
    unknown = Molecule(np.array([6, 0]), np.array([[0.0, 0, 0], [1.5, 0, 0]]), name="unknown")
    overlap = Molecule(np.array([6, 6]), np.array([[0.0, 0, 0], [0.1, 0, 0]]), name="overlap")
    mols = [METHANE, METHANE, WATER, CH5, nan, empty, unknown, overlap]
    r = evaluate(
        mols,
        protocols=["edm", "mmff94-strain"],
        reference_smiles=["C", "CC"],
        max_strain_molecules=10,
    )
    assert isinstance(r, EvaluationReport) and r.num_molecules == 8
    assert r["edm/molecule_stability"] == pytest.approx(3 / 8)
    total_atoms = 5 + 5 + 3 + 6 + 2 + 0 + 2 + 2
    assert r["edm/atom_stability"] == pytest.approx((5 + 5 + 3 + 5) / total_atoms)
    assert r.metrics["edm/atom_stability"] == Metric(
        r["edm/atom_stability"], "edm", "1", total_atoms
    )
    # the close pair is scored, as EDM scores it: 0.1 Å is a C#C triple bond, valid in RDKit
    assert r["edm/validity"] == pytest.approx(4 / 8)
    assert r["edm/uniqueness"] == pytest.approx(3 / 4)  # CH4, CH4, H2O, C#C
    assert r["edm/valid_and_unique"] == pytest.approx(3 / 8)
    assert r["edm/novelty"] == pytest.approx(2 / 3)  # water and C#C are new, methane is not
    assert "midi/molecule_stability" not in r.metrics
    assert set(r.failures) == {3, 4, 5, 6, 7}
    assert any("atom 0 C has valence 5 (allowed 4)" in s for s in r.failures[3])
    assert r.failures[4] == ("not scorable: non-finite coordinates (1 atoms)",)
    assert r.failures[5] == ("not scorable: empty molecule (no atoms)",)
    assert r.failures[6] == ("not scorable: unknown element (atomic number 0)",)
    assert (
        r.failures[7][0] == "edm: unstable: atom 0 C has valence 3 (allowed 4); atom 1 C "
        "has valence 3 (allowed 4)"
    )
    assert r["mmff94-strain/mmff_setup_rate"] == pytest.approx(3 / 5)  # CH5, C#C without H
    d = r.to_dict()
    assert d["metrics"]["edm/molecule_stability"]["protocol"] == "edm"
    assert [f["name"] for f in d["failures"]] == ["CH5", "nan", "empty", "unknown", "overlap"]
    assert "molecule_stability" in r.table() and "not scorable" in r.table()


def test_evaluate_given_bonds_and_charges():
    gly = _embedded("[NH3+]CC(=O)[O-]")
    neutral_n = Molecule(
        gly.atomic_numbers,
        gly.positions,
        np.zeros_like(gly.charges),
        gly.bonds,
        gly.bond_orders,
        name="uncharged",
    )
    no_bonds = Molecule(WATER.atomic_numbers, WATER.positions, name="water without bonds")
    r = evaluate([gly, neutral_n, no_bonds], protocols=("midi", "symgen-charged-valence"))
    assert r["midi/molecule_stability"] == pytest.approx(1 / 3)
    assert r["midi/validity"] == pytest.approx(1 / 3)
    assert r["symgen-charged-valence/molecule_stability"] == pytest.approx(1 / 3)
    assert r.metrics["midi/molecule_stability"].protocol == "midi"
    assert "edm/atom_stability" not in r.metrics
    assert r.failures[2] == ("midi: no bonds given", "symgen-charged-valence: no bonds given")
    assert any("atom 0 N has valence 4 (allowed 2/3)" in s for s in r.failures[1])
    assert any("atom 0 N has valence 4 (allowed 3)" in s for s in r.failures[1])


def test_evaluate_geometry_against_reference():
    ref = [
        _embedded(s, seed=i)
        for i, s in enumerate(["CCO", "CCC", "CC=O", "CCN", "OCCO", "CC(C)O"] * 3)
    ]
    protocols = ["edm", "midi", "symgen-geometry-w1"]
    same = evaluate(ref, protocols=protocols, reference=ref)
    w1 = "symgen-geometry-w1/"
    assert same[w1 + "bond_length_w1"] == 0 and same[w1 + "bond_angle_w1"] == 0
    assert same[w1 + "atom_type_tv"] == 0
    assert same["edm/novelty"] == 0.0 and same["midi/novelty"] == 0.0
    stretched = [Molecule(m.atomic_numbers, m.positions * 1.05, name=m.name) for m in ref]
    far = evaluate(stretched, protocols=protocols, reference=ref)
    assert 0.04 < far[w1 + "bond_length_w1"] < 0.09  # ~5% of 1.1-1.5 Å bonds
    assert far.details[w1 + "bond_length_w1"]["C-H"] == pytest.approx(0.05 * 1.09, rel=0.05)
    assert far[w1 + "atom_count_w1"] == 0


def test_evaluate_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown protocol.*choose from edm, midi"):
        evaluate([WATER], protocols=("xyz",))
    with pytest.raises(ValueError, match="unknown protocol"):
        evaluate([WATER], protocols=())
    with pytest.raises(ValueError, match="max_strain_molecules"):
        evaluate([WATER], max_strain_molecules=-1)


def _qm9_test_molecules(count: int | None, seed: int = 0):
    from symgen.molecules.qm9 import load_qm9_split

    ds = load_qm9_split("test", progress=False)
    assert len(ds) == 13_083
    idx = (
        np.arange(len(ds))
        if count is None
        else np.sort(np.random.default_rng(seed).choice(len(ds), count, replace=False))
    )
    # geometry only: drop the dataset's bonds, as EDM scores raw coordinates
    return [Molecule(ds[int(i)].atomic_numbers, ds[int(i)].positions) for i in idx]


def test_qm9_data_row_subsample():
    """500 QM9 test molecules: EDM data-row figures with bounds a wrong table would miss."""
    r = evaluate(_qm9_test_molecules(500), protocols=["edm"])
    assert 0.988 <= r["edm/atom_stability"] <= 0.997
    assert 0.93 <= r["edm/molecule_stability"] <= 0.975
    assert 0.96 <= r["edm/validity"] <= 0.99
    assert r["edm/uniqueness"] >= 0.99


@pytest.mark.slow
def test_qm9_data_row_full_test_split():
    """EDM publishes 99.0 / 95.2 / 97.7 (atom stab. / mol. stab. / validity) for QM9 data."""
    r = evaluate(_qm9_test_molecules(None), protocols=["edm"])
    assert abs(r["edm/molecule_stability"] - 0.952) <= 0.003
    assert abs(r["edm/validity"] - 0.977) <= 0.003
    # EDM's own split and bond tables give 99.34 %, 0.34 points above the published 99.0, while
    # molecule stability (95.22 %) and validity (97.74 %) agree (see docs/benchmarks.md)
    assert abs(r["edm/atom_stability"] - 0.990) <= 0.005
    assert r["edm/uniqueness"] >= 0.999


def test_bond_angles_match_brute_force():
    rng = np.random.default_rng(3)
    b, n = 4, 7
    z = rng.choice([1, 6, 7, 8], size=(b, n))
    x = rng.normal(size=(b, n, 3))
    a = np.triu(rng.integers(0, 2, size=(b, n, n)) * rng.integers(1, 4, size=(b, n, n)), 1)
    a = a + np.swapaxes(a, 1, 2)
    got = bond_angle_samples(z, x, a)
    want: dict[str, list] = {}
    for m in range(b):
        for j in range(n):
            for i in range(n):
                for k in range(i + 1, n):
                    if a[m, j, i] and a[m, j, k]:
                        u, v = x[m, i] - x[m, j], x[m, k] - x[m, j]
                        c = u @ v / np.linalg.norm(u) / np.linalg.norm(v)
                        key = angle_type_name(int(z[m, i]), int(z[m, j]), int(z[m, k]))
                        want.setdefault(key, []).append(np.degrees(np.arccos(c)))
    assert sorted(got) == sorted(want)
    for key, values in want.items():
        np.testing.assert_allclose(np.sort(got[key]), np.sort(values), atol=1e-9)


def test_evaluate_accepts_a_molecule_dataset_reference():
    from symgen.molecules.dataset import MoleculeDataset

    mols = [_embedded(s, seed=i) for i, s in enumerate(["CCO", "CCN", "CC=O"])]
    ds = MoleculeDataset.from_molecules(mols)
    r = evaluate(mols[:2], protocols=["edm", "midi", "symgen-geometry-w1"], reference=ds)
    assert r["edm/novelty"] == 0.0 and r["midi/novelty"] == 0.0
    assert r["symgen-geometry-w1/atom_type_tv"] > 0


def test_corrupt_own_bonds_are_failures_not_crashes():
    ethanol = _embedded("CCO")
    bonds = ethanol.bonds.copy()
    bonds[0, 1] = ethanol.num_atoms + 3
    corrupt = Molecule(
        ethanol.atomic_numbers, ethanol.positions, ethanol.charges, bonds, ethanol.bond_orders
    )
    p = pad_molecules([corrupt, ethanol])
    assert p.has_bonds.tolist() == [False, True] and p.bonds[0].sum() == 0
    p = pad_molecules([corrupt], [_edm(corrupt)])
    assert p.has_bonds.tolist() == [True] and p.bonds[0].sum() == 16  # 8 bonds, EDM-inferred
    protocols = ["edm", "midi", "symgen-geometry-w1", "mmff94-strain"]
    r = evaluate(
        [ethanol, corrupt], protocols=protocols, reference=[corrupt], max_strain_molecules=5
    )
    assert r["edm/molecule_stability"] == 1.0  # geometry only: the own bonds play no part
    assert r["midi/molecule_stability"] == 0.5
    assert r.failures == {1: ("midi: bad bonds: bond index out of range for 9 atoms",)}
    assert r["edm/novelty"] == 0.0  # the corrupt reference molecule is read with EDM bonds: CCO
    w1 = "symgen-geometry-w1/"
    assert r[w1 + "atom_type_tv"] == 0.0 and r.details[w1 + "atom_count_w1"]["mean"] == 0.0
    # strain only on molecules with sound bonds
    assert r.metrics["mmff94-strain/mmff_setup_rate"].count == 1
    no_orders = Molecule(ethanol.atomic_numbers, ethanol.positions, bonds=ethanol.bonds)
    r = evaluate([no_orders], protocols=["midi"])
    assert r.failures == {0: ("midi: bad bonds: bonds given without bond_orders",)}
