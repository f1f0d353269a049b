"""GEOM-DRUG loader on a fixture written in the published rdkit_folder format."""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rdkit")

from rdkit import Chem  # noqa: E402
from rdkit.Chem import AllChem  # noqa: E402

from symgen.molecules import cache as cache_mod  # noqa: E402
from symgen.molecules.elements import UnknownElementError  # noqa: E402
from symgen.molecules.geom import GeomFormatError, load_geom_drugs  # noqa: E402

SMILES = [
    "CC(=O)Oc1ccccc1C(=O)O",  # aspirin
    "C[N+](C)(C)CC(=O)[O-]",  # betaine (zwitterion)
    "Clc1ccc(cc1)S(=O)(=O)N",  # 4-chlorobenzenesulfonamide
    "Brc1ccc2[nH]ccc2c1",  # 5-bromoindole
]


def _conformers(smi: str, n: int, seed: int) -> list[Chem.Mol]:
    mol = Chem.AddHs(Chem.MolFromSmiles(smi))
    params = AllChem.ETKDGv3()
    params.randomSeed = seed
    cids = list(AllChem.EmbedMultipleConfs(mol, numConfs=n, params=params))
    assert len(cids) == n
    out = []
    for cid in cids:
        single = Chem.Mol(mol, confId=cid)  # one conformer each, as in GEOM
        out.append(single)
    return out


def write_fixture(root: Path, energies_seed: int = 0, n_conf: int = 4) -> dict:
    """Write summary_drugs.json + drugs/*.pickle; return the expected conformers (sorted)."""
    rng = np.random.default_rng(energies_seed)
    (root / "drugs").mkdir(parents=True)
    summary, expected = {}, {}
    for k, smi in enumerate(SMILES):
        confs = _conformers(smi, n_conf, seed=100 + k)
        energies = rng.normal(-800.0, 0.01, size=n_conf)
        weights = np.exp(-(energies - energies.min()) * 627.5 / 0.593)
        weights /= weights.sum()
        data = {
            "smiles": smi,
            "charge": 0,
            "uniqueconfs": n_conf,
            "conformers": [
                {
                    "geom_id": 1000 * k + c,
                    "set": 1,
                    "degeneracy": 1,
                    "totalenergy": float(e),
                    "relativeenergy": float((e - energies.min()) * 627.5),
                    "boltzmannweight": float(w),
                    "conformerweights": [float(w)],
                    "rd_mol": m,
                }
                for c, (m, e, w) in enumerate(zip(confs, energies, weights, strict=True))
            ],
        }
        rel = f"drugs/mol{k}.pickle"
        with open(root / rel, "wb") as f:
            pickle.dump(data, f)
        summary[smi] = {
            "charge": 0,
            "uniqueconfs": n_conf,
            "pickle_path": rel,
            "lowestenergy": float(energies.min()),
        }
        expected[smi] = [confs[i] for i in np.argsort(energies, kind="stable")]
    summary["C1CC1 no pickle"] = {"charge": 0, "uniqueconfs": 0}  # as in the release
    (root / "summary_drugs.json").write_text(json.dumps(summary))
    return expected


def _graph(mol: Chem.Mol) -> tuple[list, list, list, np.ndarray]:
    m = Chem.Mol(mol)
    Chem.Kekulize(m, clearAromaticFlags=True)
    z = [a.GetAtomicNum() for a in m.GetAtoms()]
    q = [a.GetFormalCharge() for a in m.GetAtoms()]
    bonds = sorted(
        (
            min(b.GetBeginAtomIdx(), b.GetEndAtomIdx()),
            max(b.GetBeginAtomIdx(), b.GetEndAtomIdx()),
            int(b.GetBondTypeAsDouble()),
        )
        for b in m.GetBonds()
    )
    return z, q, bonds, m.GetConformer().GetPositions()


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("geom") / "rdkit_folder"
    return root, write_fixture(root)


def test_roundtrip_exact(fixture_dir):
    root, expected = fixture_dir
    ds = load_geom_drugs(root, max_conformers=2, progress=False)
    assert len(ds) == 2 * len(SMILES)
    assert ds.metadata["skipped"]["no_pickle_path"] == 1
    assert ds.ids.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    for i in range(len(ds)):
        smi = ds.smiles[i]
        ref = expected[smi][i % 2]
        z, q, bonds, pos = _graph(ref)
        m = ds[i]
        assert m.atomic_numbers.tolist() == z
        assert m.charges.tolist() == q
        got = zip(m.bonds.tolist(), m.bond_orders.tolist(), strict=True)
        assert [tuple(b) + (o,) for b, o in got] == bonds
        np.testing.assert_array_equal(m.positions, pos.astype(np.float32).astype(np.float64))
    betaine = ds[2]
    assert sorted(betaine.charges.tolist()) == [-1] + [0] * (betaine.num_atoms - 2) + [1]
    assert {35, 17, 16} <= set(ds.atomic_numbers.tolist())


def test_conformer_selection_and_options(fixture_dir):
    root, _ = fixture_dir
    all_confs = load_geom_drugs(root, max_conformers=None, progress=False)
    assert len(all_confs) == 4 * len(SMILES)
    limited = load_geom_drugs(root, max_conformers=1, limit=2, progress=False)
    assert len(limited) == 2 and limited.smiles == SMILES[:2]
    heavy = load_geom_drugs(root, max_conformers=1, remove_h=True, progress=False)
    assert not np.any(heavy.atomic_numbers == 1)
    assert heavy[0].num_atoms == Chem.MolFromSmiles(SMILES[0]).GetNumAtoms()
    with pytest.raises(ValueError, match="max_conformers"):
        load_geom_drugs(root, max_conformers=0)


def test_cache(fixture_dir, tmp_path: Path):
    root, _ = fixture_dir
    a = load_geom_drugs(root, max_conformers=3, progress=False, cache_dir=tmp_path, use_cache=True)
    files = list((tmp_path / "geom").glob("*.npz"))
    assert len(files) == 1
    b = load_geom_drugs(root, max_conformers=3, progress=False, cache_dir=tmp_path, use_cache=True)
    for k, v in a.to_arrays().items():
        np.testing.assert_array_equal(v, b.to_arrays()[k])
    files[0].write_bytes(b"garbage")
    c = load_geom_drugs(root, max_conformers=3, progress=False, cache_dir=tmp_path, use_cache=True)
    assert len(c) == len(a)
    assert cache_mod.load_arrays(files[0], format_tag="symgen-molecule-dataset/1")


def test_bad_inputs(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="summary"):
        load_geom_drugs(tmp_path, progress=False)
    (tmp_path / "summary_drugs.json").write_text("{not json")
    with pytest.raises(GeomFormatError, match="JSON"):
        load_geom_drugs(tmp_path, progress=False)
    (tmp_path / "summary_drugs.json").write_text(
        json.dumps({"CCO": {"pickle_path": "drugs/x.pickle"}})
    )
    with pytest.raises(FileNotFoundError, match="x.pickle"):
        load_geom_drugs(tmp_path, progress=False)
    with pytest.raises(GeomFormatError, match="no conformers found"):
        load_geom_drugs(tmp_path, progress=False, skip_missing=True)
    (tmp_path / "drugs").mkdir()
    with open(tmp_path / "drugs/x.pickle", "wb") as f:
        pickle.dump({"smiles": "CCO"}, f)
    with pytest.raises(GeomFormatError, match="conformers"):
        load_geom_drugs(tmp_path, progress=False)
    (tmp_path / "drugs/x.pickle").write_bytes(b"\x80\x04truncated")
    with pytest.raises(GeomFormatError, match="pickle"):
        load_geom_drugs(tmp_path, progress=False)
    se = _conformers("C[Se]C", 1, seed=1)[0]
    with open(tmp_path / "drugs/x.pickle", "wb") as f:
        pickle.dump({"conformers": [{"rd_mol": se, "totalenergy": -1.0}]}, f)
    with pytest.raises(UnknownElementError, match="34"):
        load_geom_drugs(tmp_path, progress=False)


# ---- MiDi's split pickles: lists of (SMILES, conformers)
def test_split_pickles(tmp_path):
    import pickle

    from symgen.molecules.geom import load_geom_split

    entries = [
        (smi, _conformers(smi, 6 if k == 0 else 2, seed=10 + k)) for k, smi in enumerate(SMILES)
    ]
    se = Chem.AddHs(Chem.MolFromSmiles("C[Se]C"))  # an element outside the GEOM vocabulary
    AllChem.EmbedMolecule(se, randomSeed=0)
    entries += [("C[Se]C", [se]), ("CC", [])]
    for split in ("train", "val", "test"):
        with open(tmp_path / f"{split}_data.pickle", "wb") as f:
            pickle.dump(entries, f)
    ds = load_geom_split(tmp_path, "val", max_conformers=5, progress=False)
    assert len(ds) == 5 + 2 + 2 + 2  # the first five conformers of the first molecule
    assert ds.ids.tolist() == [0] * 5 + [1, 1, 2, 2, 3, 3]
    assert ds.metadata["skipped"] == {"kekulize": 0, "element": 1, "no_conformers": 1}
    first = entries[0][1][0]
    np.testing.assert_allclose(ds[0].positions, first.GetConformer().GetPositions(), atol=1e-5)
    betaine = ds[5]
    assert betaine.charges.tolist().count(1) == 1 and betaine.charges.tolist().count(-1) == 1
    back = Chem.MolToSmiles(Chem.RemoveHs(to_rdkit_sanitized(betaine)))
    assert back == Chem.MolToSmiles(Chem.MolFromSmiles(SMILES[1]))  # charges and bonds kept
    assert len(load_geom_split(tmp_path, "test", max_conformers=None, progress=False)) == 12
    assert len(load_geom_split(tmp_path, "train", limit=1, progress=False)) == 5

    # the recipe's data source: train_limit counts conformers; validation takes one conformer
    # of each of the first val_limit molecules
    from symgen.molecules.sources import load_training_data

    data = load_training_data(f"geom:{tmp_path}", train_limit=3, val_limit=2, progress=False)
    assert (data.name, len(data.train), len(data.valid)) == ("geom-drugs", 3, 1)
    assert data.reference_smiles == [SMILES[0]] * 3
    assert data.key["train_conformers"] == 3 and data.key["train_limit"] == 3
    assert data.layout.charges == (0,)  # the first three conformers are neutral
    assert data.notes["valid_dropped"] == 1  # the betaine's charges are outside that layout
    full = load_training_data(f"geom:{tmp_path}", progress=False)
    assert len(full.train) == 11 and full.layout.charges == (-1, 0, 1)


def to_rdkit_sanitized(m):
    from symgen.molecules.io import to_rdkit

    return to_rdkit(m, sanitize=True)


def test_split_pickles_errors(tmp_path):
    from symgen.molecules.geom import load_geom_split

    with pytest.raises(FileNotFoundError, match="no such folder.*train_data.pickle, val_data"):
        load_geom_split(tmp_path / "absent", progress=False)
    (tmp_path / "train_data.pickle").write_bytes(b"not a pickle")
    with pytest.raises(FileNotFoundError, match=r"the folder holds \['train_data.pickle'\]"):
        load_geom_split(tmp_path, "test", progress=False)
    with pytest.raises(GeomFormatError, match="not a readable pickle"):
        load_geom_split(tmp_path, "train", progress=False)
    import pickle

    (tmp_path / "val_data.pickle").write_bytes(pickle.dumps({"not": "a list"}))
    with pytest.raises(GeomFormatError, match="list of \\(smiles, conformers\\) pairs"):
        load_geom_split(tmp_path, "val", progress=False)
    with pytest.raises(ValueError, match="unknown split"):
        load_geom_split(tmp_path, "valid", progress=False)
