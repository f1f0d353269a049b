"""Feature layout, one-hot encoding of molecules and decoding back (QM9 sample + random graphs)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from symgen.molecules.dataset import MoleculeDataset
from symgen.molecules.elements import GEOM_ELEMENTS, UnknownElementError
from symgen.molecules.featurize import FeatureLayout, MolecularFeaturizer, valence_errors
from symgen.molecules.molecule import Molecule


@pytest.fixture(scope="module")
def qm9_sample(tmp_path_factory: pytest.TempPathFactory) -> MoleculeDataset:
    pytest.importorskip("rdkit")
    from symgen.molecules.qm9 import load_qm9

    return load_qm9(tmp_path_factory.mktemp("feat"), limit=400, progress=False)


def _assert_same(a: Molecule, b: Molecule, exact_pos: bool) -> None:
    np.testing.assert_array_equal(a.atomic_numbers, b.atomic_numbers)
    np.testing.assert_array_equal(a.charges, b.charges)
    np.testing.assert_array_equal(a.bonds, b.bonds)
    np.testing.assert_array_equal(a.bond_orders, b.bond_orders)
    if exact_pos:
        np.testing.assert_array_equal(a.positions, b.positions)
    else:
        np.testing.assert_allclose(a.positions, b.positions, atol=1e-5)


def test_layouts():
    q = FeatureLayout.qm9()
    assert (q.num_types, q.num_charges, q.node_dim, q.edge_dim) == (5, 3, 8, 4)
    assert q.atomic_numbers == (1, 6, 7, 8, 9)
    assert q.type_slice == slice(0, 5) and q.charge_slice == slice(5, 8)
    g = FeatureLayout.geom()
    assert g.elements == GEOM_ELEMENTS and g.node_dim == 22
    assert g.type_index(np.array([83, 1, 80])).tolist() == [15, 0, 14]
    with pytest.raises(UnknownElementError, match=r"\[17\]"):
        q.type_index(np.array([6, 17]))
    with pytest.raises(ValueError, match="charge 2"):
        q.charge_index(np.array([0, 2]))
    with pytest.raises(UnknownElementError):
        FeatureLayout(("C", "Qq"))
    with pytest.raises(ValueError, match="duplicate"):
        FeatureLayout(("C", "C"))
    with pytest.raises(ValueError, match="prefix"):
        FeatureLayout(bond_orders=(1, 2))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_qm9_roundtrip(qm9_sample: MoleculeDataset, dtype: torch.dtype):
    f = MolecularFeaturizer(dtype=dtype)
    idx = np.arange(0, 400, 7)
    g = f.batch_from_dataset(qm9_sample, idx)
    assert g.dtype == dtype and g.max_nodes == qm9_sample.num_atoms[idx].max()
    assert bool((g.num_nodes.numpy() < g.max_nodes).any())  # some padding
    dec = f.decode(g)
    for k, i in enumerate(idx):
        _assert_same(dec[k], qm9_sample[int(i)], exact_pos=False)
    # channel semantics
    node = g.node[g.mask]
    torch.testing.assert_close(node[:, :5].sum(-1), torch.ones(len(node), dtype=dtype))
    torch.testing.assert_close(node[:, 5:].sum(-1), torch.ones(len(node), dtype=dtype))
    assert float(g.node[~g.mask].abs().sum()) == 0.0
    e = g.edge
    torch.testing.assert_close(e, e.transpose(1, 2))
    assert float(torch.diagonal(e, dim1=1, dim2=2).abs().sum()) == 0.0
    em = g.edge_mask
    torch.testing.assert_close(e[em].sum(-1), torch.ones(int(em.sum()), dtype=dtype))
    assert float(e[~em].abs().sum()) == 0.0
    # water (index 3 -> row 2): O with two single bonds, everything else "none"
    w = f.batch([qm9_sample[2]])
    assert w.edge[0, 0, 1].tolist() == [0, 1, 0, 0] and w.edge[0, 1, 2].tolist() == [1, 0, 0, 0]
    assert w.node[0, 0].tolist() == [0, 0, 0, 1, 0, 0, 1, 0]  # O, charge 0


def test_float64_positions_exact(qm9_sample: MoleculeDataset):
    f = MolecularFeaturizer(dtype=torch.float64)
    g = f.batch([qm9_sample[5], qm9_sample[9]])
    dec = f.decode(g)
    _assert_same(dec[0], qm9_sample[5], exact_pos=True)


def test_zwitterion_charges_encoded(qm9_sample: MoleculeDataset):
    (i,) = np.nonzero(qm9_sample.ids == 271)[0]
    f = MolecularFeaturizer()
    g = f.batch_from_dataset(qm9_sample, [int(i)])
    q = g.node[0, g.mask[0]][:, f.layout.charge_slice].argmax(-1)
    assert sorted((q - 1).tolist()).count(1) == 1 and sorted((q - 1).tolist()).count(-1) == 1
    m = f.decode(g)[0]
    assert len(valence_errors(m.atomic_numbers, m.charges, m.bonds, m.bond_orders)) == 0


def test_decode_logits_and_errors(qm9_sample: MoleculeDataset):
    f = MolecularFeaturizer()
    g = f.batch_from_dataset(qm9_sample, [10, 20, 30])
    gen = torch.Generator().manual_seed(0)
    node_logits = 5 * g.node + 0.5 * torch.randn(g.node.shape, generator=gen)
    edge_logits = 5 * g.edge + 0.5 * torch.randn(g.edge.shape, generator=gen)
    for a, b in zip(f.decode(g, node_logits, edge_logits), f.decode(g), strict=True):
        _assert_same(a, b, exact_pos=True)
    with pytest.raises(ValueError, match="channels"):
        f.decode(g, node=torch.zeros(3, g.max_nodes, 7))
    no_edges = MolecularFeaturizer(with_edges=False).batch_from_dataset(qm9_sample, [1])
    assert no_edges.edge is None and f.decode(no_edges)[0].bonds is None
    bad = Molecule(
        np.array([6, 17]), np.zeros((2, 3)), np.zeros(2, int), np.array([[0, 1]]), np.array([1])
    )
    with pytest.raises(UnknownElementError, match="17"):
        f.batch([bad])
    with pytest.raises(ValueError, match="empty"):
        f.batch([])
    with pytest.raises(ValueError, match="max_nodes"):
        f.batch_from_dataset(qm9_sample, [10], max_nodes=2)


@st.composite
def random_molecules(draw: st.DrawFn) -> list[Molecule]:
    out = []
    for _ in range(draw(st.integers(1, 4))):
        k = draw(st.integers(1, 7))
        z = draw(st.lists(st.sampled_from([1, 6, 7, 8, 9]), min_size=k, max_size=k))
        q = draw(st.lists(st.sampled_from([-1, 0, 1]), min_size=k, max_size=k))
        pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
        chosen = (
            draw(st.lists(st.sampled_from(pairs), unique=True, max_size=len(pairs)))
            if pairs
            else []
        )
        chosen = sorted(chosen)
        orders = draw(st.lists(st.integers(1, 3), min_size=len(chosen), max_size=len(chosen)))
        pos = draw(st.lists(st.floats(-10, 10, width=32), min_size=3 * k, max_size=3 * k))
        out.append(
            Molecule(
                np.array(z),
                np.array(pos, dtype=np.float64).reshape(k, 3),
                np.array(q),
                np.array(chosen, dtype=np.int64).reshape(-1, 2),
                np.array(orders, dtype=np.int64),
            )
        )
    return out


@settings(max_examples=40, deadline=None)
@given(random_molecules())
def test_roundtrip_property(mols: list[Molecule]):
    f = MolecularFeaturizer(dtype=torch.float64)
    dec = f.decode(f.batch(mols))
    for a, b in zip(dec, mols, strict=True):
        _assert_same(a, b, exact_pos=True)


def test_geom_layout_roundtrip():
    f = MolecularFeaturizer(FeatureLayout.geom())
    m = Molecule(
        np.array([35, 6, 80, 83]),
        np.arange(12, dtype=float).reshape(4, 3),
        np.array([0, -2, 3, 0]),
        np.array([[0, 1], [1, 2]]),
        np.array([1, 2]),
    )
    _assert_same(f.decode(f.batch([m]))[0], m, exact_pos=False)
