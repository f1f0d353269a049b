"""Size-bucketed batching and the padded-batch loader."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from symgen.molecules.dataset import MoleculeDataset
from symgen.molecules.featurize import MolecularFeaturizer
from symgen.molecules.loader import MoleculeLoader, SizeBucketBatcher, padding_fraction
from symgen.molecules.molecule import Molecule
from symgen.state import GeometricGraph


@pytest.fixture(scope="module")
def qm9_sample(tmp_path_factory: pytest.TempPathFactory) -> MoleculeDataset:
    pytest.importorskip("rdkit")
    from symgen.molecules.qm9 import load_qm9

    return load_qm9(tmp_path_factory.mktemp("loader"), limit=2000, progress=False)


@settings(max_examples=50, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 30), min_size=1, max_size=200),
    batch_size=st.integers(1, 17),
    bucket=st.integers(1, 8),
    seed=st.integers(0, 2**31),
)
def test_epoch_covers_each_index_once(sizes: list[int], batch_size: int, bucket: int, seed: int):
    b = SizeBucketBatcher(np.array(sizes), batch_size, bucket_batches=bucket)
    batches = b.epoch(torch.Generator().manual_seed(seed))
    assert len(batches) == len(b)
    assert np.array_equal(np.sort(np.concatenate(batches)), np.arange(len(sizes)))
    assert sum(len(x) < batch_size for x in batches) <= 1
    again = b.epoch(torch.Generator().manual_seed(seed))
    assert all(np.array_equal(x, y) for x, y in zip(batches, again, strict=True))


def test_drop_last_and_no_shuffle():
    sizes = np.arange(1, 11)
    b = SizeBucketBatcher(sizes, 3, drop_last=True)
    batches = b.epoch(torch.Generator().manual_seed(1))
    assert len(batches) == len(b) == 3 and all(len(x) == 3 for x in batches)
    seq = SizeBucketBatcher(sizes, 4, shuffle=False).epoch()
    assert [x.tolist() for x in seq] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    with pytest.raises(ValueError, match="batch_size"):
        SizeBucketBatcher(sizes, 0)
    with pytest.raises(ValueError, match="empty"):
        SizeBucketBatcher(np.zeros(0), 2)


def test_bucketing_reduces_padding(qm9_sample: MoleculeDataset):
    sizes = qm9_sample.num_atoms
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    rand = padding_fraction(sizes, SizeBucketBatcher(sizes, 64, bucket_batches=1).epoch(gen()))
    buck = padding_fraction(sizes, SizeBucketBatcher(sizes, 64, bucket_batches=16).epoch(gen()))
    assert rand > 0.15 and buck < rand / 3, (rand, buck)
    e1 = SizeBucketBatcher(sizes, 64).epoch(torch.Generator().manual_seed(0))
    e2 = SizeBucketBatcher(sizes, 64).epoch(torch.Generator().manual_seed(1))
    assert not all(np.array_equal(x, y) for x, y in zip(e1, e2, strict=True))


def test_loader_batches_match_featurizer(qm9_sample: MoleculeDataset):
    sub = qm9_sample.subset(np.arange(300))
    f = MolecularFeaturizer(dtype=torch.float64)
    loader = MoleculeLoader(
        sub, 32, f, bucket_batches=4, generator=torch.Generator().manual_seed(3)
    )
    seen = []
    for idx, g in loader.iter_with_indices():
        assert isinstance(g, GeometricGraph) and g.batch_size == len(idx)
        ref = f.batch([sub[int(i)] for i in idx])
        torch.testing.assert_close(g.pos, ref.pos)
        torch.testing.assert_close(g.node, ref.node)
        torch.testing.assert_close(g.edge, ref.edge)
        seen.extend(idx.tolist())
    assert sorted(seen) == list(range(300)) and len(loader) == 10
    # successive epochs from one generator differ but are reproducible
    ep1 = [i.tolist() for i, _ in loader.iter_with_indices()]
    loader2 = MoleculeLoader(
        sub, 32, f, bucket_batches=4, generator=torch.Generator().manual_seed(3)
    )
    list(loader2)
    assert [i.tolist() for i, _ in loader2.iter_with_indices()] == ep1


def test_loader_tiny_dataset():
    m = Molecule(
        np.array([8, 1, 1]),
        np.zeros((3, 3)),
        np.zeros(3, int),
        np.array([[0, 1], [0, 2]]),
        np.array([1, 1]),
    )
    c = Molecule(
        np.array([6]), np.ones((1, 3)), np.zeros(1, int), np.zeros((0, 2), int), np.zeros(0, int)
    )
    ds = MoleculeDataset.from_molecules([m, c, m])
    graphs = list(
        MoleculeLoader(ds, 2, generator=torch.Generator().manual_seed(0), bucket_batches=1)
    )
    assert sorted(g.batch_size for g in graphs) == [1, 2]
    total = sum(int(g.num_nodes.sum()) for g in graphs)
    assert total == 7


# ---------------------------------------------------------------------------- canonicalized cache
from types import SimpleNamespace  # noqa: E402

from symgen.molecules.cache import CacheFormatError, CacheNotFoundError  # noqa: E402
from symgen.molecules.loader import CanonicalizedDataset, canonicalize_dataset  # noqa: E402


def _reverse_and_center(x: GeometricGraph) -> SimpleNamespace:
    """Reverse the order of real atoms, subtract the centroid; element = (perm, translation)."""
    from symgen.groups.euclidean import Translation
    from symgen.groups.product import ProductElement
    from symgen.groups.symmetric import Permutation

    b, n = x.mask.shape
    k = x.num_nodes
    ar = torch.arange(n)[None].expand(b, n)
    perm = torch.where(x.mask, k[:, None] - 1 - ar, ar)  # self-inverse
    m = x.mask[..., None].to(x.dtype)
    centroid = (x.pos * m).sum(1) / k[:, None].to(x.dtype)
    take = lambda t: torch.gather(t, 1, perm[..., None].expand_as(t))  # noqa: E731
    edge = torch.gather(x.edge, 1, perm[:, :, None, None].expand_as(x.edge))
    edge = torch.gather(edge, 2, perm[:, None, :, None].expand_as(edge))
    rep = GeometricGraph(
        pos=(take(x.pos) - centroid[:, None]) * m, node=take(x.node), mask=x.mask, edge=edge
    )
    return SimpleNamespace(
        representative=rep,
        element=ProductElement((Permutation(perm), Translation(centroid))),
        margin=k.to(torch.float64),
        flagged=k < 4,
    )


def test_canonicalized_cache(qm9_sample: MoleculeDataset, tmp_path):
    sub = qm9_sample.subset(np.arange(150))
    path = tmp_path / "canon.npz"
    out = canonicalize_dataset(sub, _reverse_and_center, batch_size=32, progress=False, path=path)
    assert out.rotation is None and out.permutation is not None and out.translation is not None
    np.testing.assert_array_equal(out.flagged, sub.num_atoms < 4)
    np.testing.assert_array_equal(out.margin, sub.num_atoms)
    loaded = CanonicalizedDataset.load(path)
    for name in ("margin", "flagged", "permutation", "translation"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(out, name))
    for i in (0, 3, 77, 149):
        orig, rep = sub[i], loaded.representatives[i]
        k = orig.num_atoms
        a0 = loaded.representatives.atom_offsets[i]
        perm = loaded.permutation[a0 : a0 + k]
        assert perm.tolist() == list(range(k - 1, -1, -1))
        np.testing.assert_array_equal(rep.atomic_numbers, orig.atomic_numbers[::-1])
        # reconstruct: x[j] = rep[perm[j]] + t
        np.testing.assert_allclose(
            rep.positions[perm] + loaded.translation[i], orig.positions, atol=1e-5
        )
        mapped = sorted(
            tuple(sorted((k - 1 - a, k - 1 - b))) + (o,)
            for (a, b), o in zip(orig.bonds.tolist(), orig.bond_orders.tolist(), strict=True)
        )
        assert [
            tuple(b) + (o,)
            for b, o in zip(rep.bonds.tolist(), rep.bond_orders.tolist(), strict=True)
        ] == mapped
        np.testing.assert_array_equal(rep.charges, orig.charges[::-1])
    assert loaded.representatives.smiles == sub.smiles


def test_canonicalized_cache_errors(qm9_sample: MoleculeDataset, tmp_path):
    sub = qm9_sample.subset(np.arange(100))
    calls = {"n": 0}

    def failing(x):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("canonicalizer crashed")
        return _reverse_and_center(x)

    path = tmp_path / "canon.npz"
    with pytest.raises(RuntimeError, match="crashed"):
        canonicalize_dataset(sub, failing, batch_size=16, progress=False, path=path)
    assert list(tmp_path.iterdir()) == []  # nothing half-written
    with pytest.raises(CacheNotFoundError):
        CanonicalizedDataset.load(path)
    sub.save(path)  # a file of another format
    with pytest.raises(CacheFormatError, match="format"):
        CanonicalizedDataset.load(path)
    with pytest.raises(TypeError, match="representative"):
        canonicalize_dataset(sub, lambda x: SimpleNamespace(margin=None), progress=False)

    def bad_mask(x):
        r = _reverse_and_center(x)
        r.representative = r.representative.index([0] * x.batch_size)
        return r

    with pytest.raises(ValueError, match="mask"):
        canonicalize_dataset(sub, bad_mask, batch_size=16, progress=False)
