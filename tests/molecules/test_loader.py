"""Size-bucketed batching, the padded-batch loader and featurized tensor stores."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from symgen.data import SizeBucketBatcher, padding_fraction
from symgen.molecules.dataset import MoleculeDataset
from symgen.molecules.featurize import MolecularFeaturizer
from symgen.molecules.loader import MoleculeLoader, featurize_store
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


# ---------------------------------------------------------------------------- featurized stores
def test_featurize_store_matches_the_featurizer(qm9_sample: MoleculeDataset):
    sub = qm9_sample.subset(np.arange(300))
    f = MolecularFeaturizer()
    store = featurize_store(sub, f, batch_size=64)
    assert len(store) == 300 and store.node.dtype == torch.uint8
    assert torch.equal(store.num_nodes, torch.from_numpy(sub.num_atoms))
    for idx in (np.array([0, 5, 299]), np.arange(40, 90), np.array([7])):
        got, ref = store.batch(idx), f.batch_from_dataset(sub, idx)
        assert torch.equal(got.pos, ref.pos) and torch.equal(got.node, ref.node)
        assert torch.equal(got.edge, ref.edge) and torch.equal(got.mask, ref.mask)
    assert store.graph_data["ids"].tolist() == sub.ids.tolist()


def test_canonical_store_of_molecules_reconstructs_the_data(qm9_sample: MoleculeDataset):
    """The canonical cache of real molecules: representatives in canonical form, and the stored
    group elements map them back onto the featurized molecules exactly."""
    from symgen.canon import geometric_spectral_canonicalizer
    from symgen.data import canonicalize_store

    sub = qm9_sample.subset(np.arange(200))
    store = featurize_store(sub, MolecularFeaturizer(dtype=torch.float64))
    canon = geometric_spectral_canonicalizer()
    out = canonicalize_store(store, canon, batch_size=48, progress=False)
    assert out.node.dtype == torch.uint8 and out.metadata["canonicalizer"] == canon.config()
    idx = np.arange(0, 200, 7)
    rep = out.batch(idx)
    x = store.batch(idx)
    back = canon.group.act(out.elements(idx, canon.group), rep)
    torch.testing.assert_close(back.pos, x.pos, atol=1e-9, rtol=0)
    assert torch.equal(back.node, x.node) and torch.equal(back.edge, x.edge)
    again = canon.canonicalize(x).representative
    torch.testing.assert_close(rep.pos, again.pos, atol=1e-9, rtol=0)
    assert out.graph_data["flagged"].dtype == torch.bool and len(out.graph_data["margin"]) == 200
