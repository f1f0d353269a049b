"""Tests of the offline drug-like 3D set builder (``symgen.molecules.moses3d``)."""

import numpy as np
import pytest

from symgen.molecules import moses3d
from symgen.molecules.dataset import MoleculeDataset
from symgen.molecules.moses3d import build_conformers, embed_smiles

Chem = pytest.importorskip("rdkit.Chem")

DRUGLIKE = [
    "CC(=O)Nc1ccc(O)cc1",
    "CN1CCC[C@H]1c1cccnc1",
    "Cc1ccc2oc(-c3cccc(NC(=O)c4nc[nH]n4)c3)nc2c1",
    "O=C(O)c1ccccc1OC(=O)C",
    "CC(C)Cc1ccc(C(C)C(=O)O)cc1",
    "Clc1ccc(C(c2ccccc2)n2ccnc2)cc1",
    "CS(=O)(=O)c1ccc(-c2ccc(F)cc2)cc1",
    "C[NH3+]",
    "not a smiles",
    "C[Se]C",
    "Brc1cccs1",
]


def test_embed_smiles_structure_causes_and_determinism():
    m, why = embed_smiles("CC(=O)Nc1ccc(O)cc1", seed=3, index=11)
    assert why == "" and m.num_atoms == 20 and m.bonds is not None
    assert set(m.bond_orders.tolist()) <= {1, 2, 3}  # kekulized
    from symgen.molecules.io import to_rdkit

    back = Chem.MolToSmiles(Chem.RemoveHs(to_rdkit(m, sanitize=True)))
    assert back == Chem.MolToSmiles(Chem.MolFromSmiles("CC(=O)Nc1ccc(O)cc1"))
    again, _ = embed_smiles("CC(=O)Nc1ccc(O)cc1", seed=3, index=11)
    other, _ = embed_smiles("CC(=O)Nc1ccc(O)cc1", seed=3, index=12)
    np.testing.assert_array_equal(m.positions, again.positions)  # reproducible per molecule
    assert not np.allclose(m.positions, other.positions)  # the index seeds the conformer
    charged, _ = embed_smiles("C[NH3+]")
    assert charged.charges.tolist().count(1) == 1
    assert embed_smiles("not a smiles") == (None, "parse")
    assert embed_smiles("C[Se]C") == (None, "element")  # outside the GEOM-DRUGS vocabulary


def _assert_same(a: MoleculeDataset, b: MoleculeDataset) -> None:
    for key, value in a.to_arrays().items():
        np.testing.assert_array_equal(value, b.to_arrays()[key], err_msg=key)


def test_interrupted_build_resumes_and_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    ids = list(range(100, 100 + len(DRUGLIKE)))
    whole = build_conformers(
        DRUGLIKE, tmp_path / "a" / "set.npz", ids=ids, workers=0, chunk_size=3, progress=False
    )
    assert len(whole) == len(DRUGLIKE) - 2
    assert whole.metadata["failures"]["parse"] == 1 and whole.metadata["failures"]["element"] == 1
    assert whole.metadata["requested"] == len(DRUGLIKE)
    assert sorted(set(whole.ids.tolist())) == [i for i in ids if i not in (108, 109)]

    class Stop(Exception):
        pass

    def stop_after_second(chunk: int) -> None:
        if chunk == 1:
            raise Stop

    out = tmp_path / "b" / "set.npz"
    with pytest.raises(Stop):
        build_conformers(
            DRUGLIKE, out, ids=ids, workers=0, chunk_size=3, progress=False,
            on_chunk=stop_after_second,
        )  # fmt: skip
    partial = out.with_name("set.npz.partial")
    assert not out.exists() and sorted(p.name for p in partial.iterdir()) == [
        "chunk_000000.npz",
        "chunk_000001.npz",
    ]
    (partial / "chunk_000001.npz").write_bytes(b"truncated")  # a chunk cut short is redone
    calls = []
    real = moses3d._embed_chunk

    def counting(task):
        calls.append(len(task[0]))
        return real(task)

    monkeypatch.setattr(moses3d, "_embed_chunk", counting)
    resumed = build_conformers(DRUGLIKE, out, ids=ids, workers=0, chunk_size=3, progress=False)
    assert calls == [3, 3, 2]  # chunks 1, 2 and 3; chunk 0 was reused
    assert out.exists() and not partial.exists()
    _assert_same(whole, resumed)
    calls.clear()
    _assert_same(whole, build_conformers(DRUGLIKE, out, ids=ids, workers=0, progress=False))
    assert calls == []  # the finished set is loaded, not rebuilt


def test_stale_and_empty_chunks(tmp_path):
    out = tmp_path / "set.npz"
    partial = out.with_name("set.npz.partial")
    partial.mkdir()
    # a chunk left by a build of other molecules is not taken for this build's chunk 0
    stale = build_conformers(["CCO", "CCN"], tmp_path / "other.npz", workers=0, progress=False)
    stale.metadata = {"failures": {}, "fingerprint": "from another build"}
    stale.save(partial / "chunk_000000.npz")
    ds = build_conformers(
        ["c1ccccc1", "CCCl", "bad", "also bad"], out, workers=0, chunk_size=2, progress=False
    )
    assert [m.name for m in ds] == ["c1ccccc1", "CCCl"]  # an all-failed chunk adds nothing
    assert ds.metadata["failures"]["parse"] == 2


def test_worker_processes_give_the_same_set(tmp_path):
    serial = build_conformers(DRUGLIKE[:6], tmp_path / "s.npz", workers=0, chunk_size=2,
                              progress=False)  # fmt: skip
    pooled = build_conformers(DRUGLIKE[:6], tmp_path / "p.npz", workers=2, chunk_size=2,
                              progress=False)  # fmt: skip
    _assert_same(serial, pooled)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="chunk_size"):
        build_conformers(["C"], tmp_path / "x.npz", chunk_size=0)
    with pytest.raises(ValueError, match="2 ids for 1 SMILES"):
        build_conformers(["C"], tmp_path / "x.npz", ids=[1, 2])
    with pytest.raises(ValueError, match="unknown MOSES split"):
        moses3d.moses_smiles("valid")


def test_moses_smiles_from_the_wheel():
    from importlib.util import find_spec

    if find_spec("moses") is None:
        pytest.skip("molsets not installed (pip install --no-deps molsets)")
    test = moses3d.moses_smiles("test")
    assert len(test) == 176_074 and Chem.MolFromSmiles(test[0]) is not None


def test_drug_like_featurization_round_trip():
    """Features -> RDKit molecule -> the same SMILES, on drug-like molecules with aromatic rings,
    charges, halogens and sulfur, with the GEOM-DRUGS layout (issue 16)."""
    from symgen.molecules.featurize import FeatureLayout, MolecularFeaturizer
    from symgen.molecules.io import to_rdkit

    smiles = [
        "CC(=O)Nc1ccc(O)cc1",
        "C[N+](C)(C)CC(=O)[O-]",
        "Clc1ccc(cc1)S(=O)(=O)N",
        "Brc1ccc2[nH]ccc2c1",
        "O=[N+]([O-])c1ccc(F)cc1",
        "CC(C)Cc1ccc(C(C)C(=O)O)cc1",
    ]
    molecules = [embed_smiles(s, index=i)[0] for i, s in enumerate(smiles)]
    featurizer = MolecularFeaturizer(FeatureLayout.geom())
    decoded = featurizer.decode(featurizer.batch(molecules))
    for s, m in zip(smiles, decoded, strict=True):
        back = Chem.MolToSmiles(Chem.RemoveHs(to_rdkit(m, sanitize=True)))
        assert back == Chem.MolToSmiles(Chem.MolFromSmiles(s)), s
