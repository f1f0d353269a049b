"""QM9 parsing, bond perception, caching and splits (default run uses the first 2,000 rows)."""

import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rdkit")

from rdkit import Chem  # noqa: E402

from symgen.molecules import cache as cache_mod  # noqa: E402
from symgen.molecules.cache import CacheFormatError, CacheNotFoundError  # noqa: E402
from symgen.molecules.dataset import STATUS_FAILED, STATUS_NAMES, STATUS_OK, MoleculeDataset  # noqa: E402
from symgen.molecules.elements import UnknownElementError  # noqa: E402
from symgen.molecules.featurize import allowed_valence, valence_errors  # noqa: E402
from symgen.molecules.qm9 import (  # noqa: E402
    QM9_SPLIT_SIZES,
    QM9FormatError,
    load_qm9,
    load_qm9_split,
    perceive_bonds,
    qm9_cache_path,
    qm9_splits,
    read_qm9_csv,
)

LIMIT = 2000


@pytest.fixture(scope="module")
def qm9_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("qm9cache")


@pytest.fixture(scope="module")
def qm9_small(qm9_dir: Path) -> MoleculeDataset:
    return load_qm9(qm9_dir, limit=LIMIT, progress=False)


def _by_id(ds: MoleculeDataset, qm9_index: int):
    (pos,) = np.nonzero(ds.ids == qm9_index)[0]
    return pos, ds[int(pos)]


def _bond_set(m) -> dict[tuple[int, int], int]:
    return {(int(i), int(j)): int(o) for (i, j), o in zip(m.bonds, m.bond_orders, strict=True)}


def test_raw_parse_matches_counts():
    raw = read_qm9_csv(limit=50)
    assert len(raw["ids"]) == 50 and raw["ids"][:3].tolist() == [1, 2, 3]
    assert raw["atom_offsets"][-1] == len(raw["atomic_numbers"]) == len(raw["positions"])
    # methane: C then four H, C-H distances ~1.09 Å
    z0 = raw["atomic_numbers"][:5].tolist()
    assert z0 == [6, 1, 1, 1, 1]
    d = np.linalg.norm(raw["positions"][1:5] - raw["positions"][0], axis=1)
    np.testing.assert_allclose(d, 1.09, atol=0.01)


def test_known_molecules(qm9_small: MoleculeDataset):
    ds = qm9_small
    assert len(ds) == LIMIT
    _, methane = _by_id(ds, 1)
    assert methane.atomic_numbers.tolist() == [6, 1, 1, 1, 1]
    assert _bond_set(methane) == {(0, 1): 1, (0, 2): 1, (0, 3): 1, (0, 4): 1}
    _, water = _by_id(ds, 3)
    assert water.atomic_numbers.tolist() == [8, 1, 1]
    assert _bond_set(water) == {(0, 1): 1, (0, 2): 1}
    # benzene (QM9 index 214): 6 C-C bonds alternating 1/2 (kekulized), 6 C-H singles
    _, benzene = _by_id(ds, 214)
    z = benzene.atomic_numbers
    cc = [(i, j, o) for (i, j), o in _bond_set(benzene).items() if z[i] == 6 and z[j] == 6]
    assert len(cc) == 6 and sorted(o for *_, o in cc) == [1, 1, 1, 2, 2, 2]
    pairs = np.array([[i, j] for i, j, _ in cc])
    assert np.all(np.bincount(pairs.ravel(), minlength=len(z))[z == 6] == 2)  # a 6-ring
    doubles = np.array([[i, j] for i, j, o in cc if o == 2])
    assert np.all(np.bincount(doubles.ravel(), minlength=len(z))[z == 6] == 1)  # alternating
    # zwitterion (QM9 index 271, [NH3+]CCC([O-])=O): N+ with 4 single bonds, one O- and one C=O
    _, zw = _by_id(ds, 271)
    z, q = zw.atomic_numbers, zw.charges
    assert q.sum() == 0
    (n_idx,) = np.nonzero(z == 7)[0]
    assert q[n_idx] == 1
    o_idx = np.nonzero(z == 8)[0]
    assert sorted(q[o_idx].tolist()) == [-1, 0]
    bonds = _bond_set(zw)
    o_orders = sorted(o for (i, j), o in bonds.items() if (i in o_idx or j in o_idx))
    assert o_orders == [1, 2]
    # CF4 (index 184)
    _, cf4 = _by_id(ds, 184)
    assert sorted(cf4.atomic_numbers.tolist()) == [6, 9, 9, 9, 9]


def test_subset_consistency(qm9_small: MoleculeDataset):
    """Atom counts match the SMILES formula and every assigned molecule satisfies valences."""
    ds = qm9_small
    assert set(np.unique(ds.atomic_numbers).tolist()) <= {1, 6, 7, 8, 9}
    counts = ds.status_counts()
    assert counts["ok"] >= 0.99 * len(ds)
    for i in range(len(ds)):
        m = ds[i]
        ref = Chem.AddHs(Chem.MolFromSmiles(ds.smiles[i]))
        assert sorted(a.GetAtomicNum() for a in ref.GetAtoms()) == sorted(m.atomic_numbers.tolist())
        if ds.status[i] != STATUS_FAILED:
            assert len(valence_errors(m.atomic_numbers, m.charges, m.bonds, m.bond_orders)) == 0, i
            assert m.charges.sum() == 0
        if ds.status[i] == STATUS_OK:
            ref_q = sorted(a.GetFormalCharge() for a in ref.GetAtoms())
            assert sorted(m.charges.tolist()) == ref_q


def test_perception_rejects_mismatching_geometry():
    # ethane-like geometry labelled as ethene: the SMILES graph has one bond fewer than the
    # geometry implies, so SMILES transfer must not be reported as "ok".
    z = np.array([6, 6, 1, 1, 1, 1, 1, 1])
    pos = np.array(
        [
            [0, 0, 0],
            [1.53, 0, 0],
            [-0.4, 1.0, 0],
            [-0.4, -0.5, 0.87],
            [-0.4, -0.5, -0.87],
            [1.93, 1.0, 0],
            [1.93, -0.5, 0.87],
            [1.93, -0.5, -0.87],
        ],
        dtype=float,
    )
    b, o, q, s = perceive_bonds(z, pos, "CC")
    assert s == STATUS_OK and len(b) == 7 and o.tolist() == [1] * 7
    b, o, q, s = perceive_bonds(z, pos, "C=C")  # formula C2H4 != C2H6
    assert s != STATUS_OK
    assert len(valence_errors(z, q, b, o)) == 0  # geometry route finds ethane


def test_allowed_valence_table():
    assert [allowed_valence(z) for z in (1, 6, 7, 8, 9)] == [1, 4, 3, 2, 1]
    assert (
        allowed_valence(7, 1) == 4 and allowed_valence(8, -1) == 1 and allowed_valence(6, -1) == 3
    )


def test_cache_roundtrip_and_fast_load(qm9_small: MoleculeDataset, qm9_dir: Path):
    path = qm9_cache_path(qm9_dir, limit=LIMIT)
    assert path.is_file()
    again = load_qm9(qm9_dir, limit=LIMIT, progress=False)
    for name, arr in qm9_small.to_arrays().items():
        np.testing.assert_array_equal(arr, again.to_arrays()[name], err_msg=name)
    assert again.smiles == qm9_small.smiles


def test_corrupt_cache_is_rebuilt(tmp_path: Path):
    path = qm9_cache_path(tmp_path, limit=20)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a zip file at all")
    with pytest.warns(UserWarning, match="corrupt"):
        ds = load_qm9(tmp_path, limit=20, progress=False)
    assert len(ds) == 20
    assert len(MoleculeDataset.load(path)) == 20


def test_missing_and_bad_cache_errors(tmp_path: Path):
    with pytest.raises(CacheNotFoundError, match="not found"):
        MoleculeDataset.load(tmp_path / "nope.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(CacheFormatError):
        MoleculeDataset.load(bad)
    other = tmp_path / "other.npz"
    cache_mod.save_arrays(other, {"a": np.zeros(2)}, format_tag="something-else/9")
    with pytest.raises(CacheFormatError, match="format"):
        MoleculeDataset.load(other)


def test_interrupted_write_leaves_no_corrupt_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, qm9_small: MoleculeDataset
):
    path = tmp_path / "ds.npz"
    small = qm9_small.subset(np.arange(10))
    small.save(path)
    before = path.read_bytes()

    def exploding(handle, arrays):
        handle.write(b"PK\x03\x04 half an archive")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(cache_mod, "_write_npz", exploding)
    with pytest.raises(RuntimeError, match="disk on fire"):
        qm9_small.subset(np.arange(50)).save(path)
    assert path.read_bytes() == before  # previous cache untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds.npz"]  # no temp file left
    with pytest.raises(RuntimeError):
        qm9_small.save(tmp_path / "fresh.npz")
    assert not (tmp_path / "fresh.npz").exists()
    monkeypatch.undo()
    assert len(MoleculeDataset.load(path)) == 10


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    import csv

    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["XYZ_file", "Index", "SMILES", "N_atoms", "Elements", "XYZ_Ang"])
        w.writerows(rows)


def test_malformed_csv_errors(tmp_path: Path):
    good = ["a.xyz", "1", "O", "3", "['O','H','H']", "[[0,0,0],[0.96,0,0],[-0.24,0.93,0]]"]
    p = tmp_path / "ok.csv"
    _write_csv(p, [good])
    raw = read_qm9_csv([p])
    assert raw["atomic_numbers"].tolist() == [8, 1, 1]
    p = tmp_path / "count.csv"
    _write_csv(p, [good[:3] + ["4"] + good[4:]])
    with pytest.raises(QM9FormatError, match="N_atoms=4"):
        read_qm9_csv([p])
    p = tmp_path / "xyz.csv"
    _write_csv(p, [good[:5] + ["[[0,0,0],[0.96,0,0]]"]])
    with pytest.raises(QM9FormatError, match="XYZ_Ang"):
        read_qm9_csv([p])
    p = tmp_path / "elem.csv"
    _write_csv(p, [good[:4] + ["['Cl','H','H']"] + good[5:]])
    with pytest.raises(UnknownElementError, match="Cl"):
        read_qm9_csv([p])
    p = tmp_path / "elem2.csv"
    _write_csv(p, [good[:4] + ["['Xx','H','H']"] + good[5:]])
    with pytest.raises(UnknownElementError):
        read_qm9_csv([p])
    p = tmp_path / "num.csv"
    _write_csv(p, [good[:5] + ["[[0,0,0],[0.96,zz,0],[-0.24,0.93,0]]"]])
    with pytest.raises(QM9FormatError, match="non-numeric"):
        read_qm9_csv([p])


def test_splits_standard_and_deterministic():
    s = qm9_splits()
    assert {k: len(v) for k, v in s.items()} == QM9_SPLIT_SIZES
    allidx = np.concatenate(list(s.values()))
    assert np.array_equal(np.sort(allidx), np.arange(130_831))
    # the Cormorant/EDM split: numpy.random.seed(0); permutation(130831); split at 100k, 117,748
    perm = np.random.RandomState(0).permutation(130_831)
    assert np.array_equal(s["test"], perm[117_748:]) and np.array_equal(s["train"], perm[:100_000])
    s2 = qm9_splits()
    for k in s:
        assert np.array_equal(s[k], s2[k])
    s3 = qm9_splits(seed=7)
    assert not np.array_equal(s["train"], s3["train"])
    small = qm9_splits(1000)
    assert (
        sum(len(v) for v in small.values()) == 1000 and len(small["test"]) == 1000 * 13083 // 130831
    )


def test_load_split_and_histogram(qm9_small: MoleculeDataset, qm9_dir: Path):
    train = load_qm9_split("train", qm9_dir, limit=LIMIT, progress=False)
    idx = qm9_splits(LIMIT)["train"]
    assert np.array_equal(train.ids, qm9_small.ids[idx])
    hist = train.size_histogram()
    assert hist.sum() == len(train) and np.array_equal(
        np.nonzero(hist)[0], np.unique(train.num_atoms)
    )
    with pytest.raises(ValueError, match="unknown QM9 split"):
        load_qm9_split("training", qm9_dir, limit=LIMIT)


def test_remove_hydrogens(qm9_small: MoleculeDataset):
    heavy = qm9_small.remove_hydrogens()
    assert not np.any(heavy.atomic_numbers == 1)
    assert np.array_equal(heavy.num_atoms, [int((m.atomic_numbers != 1).sum()) for m in qm9_small])
    _, benzene = _by_id(heavy, 214)
    assert benzene.num_atoms == 6 and len(benzene.bonds) == 6
    _, zw = _by_id(heavy, 271)
    assert sorted(zw.charges.tolist()) == [-1, 0, 0, 0, 0, 1]


def test_subset_concatenate_roundtrip(qm9_small: MoleculeDataset):
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(qm9_small))[:300]
    sub = qm9_small.subset(idx)
    for k in (0, 17, 299):
        a, b = sub[k], qm9_small[int(idx[k])]
        np.testing.assert_array_equal(a.positions, b.positions)
        np.testing.assert_array_equal(a.bonds, b.bonds)
        np.testing.assert_array_equal(a.charges, b.charges)
    both = MoleculeDataset.concatenate(
        [sub.subset(np.arange(100)), sub.subset(np.arange(100, 300))]
    )
    for name, arr in sub.to_arrays().items():
        np.testing.assert_array_equal(arr, both.to_arrays()[name], err_msg=name)
    with pytest.raises(IndexError):
        qm9_small[len(qm9_small)]
    with pytest.raises(IndexError):
        qm9_small.subset([len(qm9_small)])


@pytest.mark.slow
def test_full_qm9_consistency(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
):
    """The whole set: 130,831 molecules, every non-failed one passes the valence check."""
    if "slow" not in (request.config.option.markexpr or ""):
        pytest.skip("slow (builds the full QM9 cache, ~3 min): run with -m slow")
    folder = tmp_path_factory.mktemp("full")
    ds = load_qm9(folder, progress=False)
    assert len(ds) == 130_831
    assert int(ds.num_atoms.max()) == 29
    counts = ds.status_counts()
    assert counts["failed"] <= 50, counts
    assert counts["ok"] >= 0.99 * len(ds), counts
    checked = ds.status != STATUS_FAILED
    for i in np.nonzero(checked)[0]:
        m = ds[int(i)]
        assert len(valence_errors(m.atomic_numbers, m.charges, m.bonds, m.bond_orders)) == 0, i
    assert STATUS_NAMES[0] == "ok"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_qm9_split("test", folder, progress=False)) == 13_083  # from cache


def test_cache_is_used_unchecked_without_qm9pack(
    qm9_small: MoleculeDataset, qm9_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    """A cache copied to a machine without the qm9pack wheel loads, with a warning; without a
    cache the missing package is named."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "qm9pack" else real(name, *a)
    )
    with pytest.warns(UserWarning, match="qm9pack is not installed"):
        again = load_qm9(qm9_dir, limit=len(qm9_small), progress=False)
    np.testing.assert_array_equal(again.positions, qm9_small.positions)
    with pytest.raises(ModuleNotFoundError, match="qm9pack"):
        load_qm9(qm9_dir / "elsewhere", limit=len(qm9_small), progress=False)
