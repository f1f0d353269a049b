"""Fixed parts of molecules: ring scaffolds, connected fragments and the containment check."""

import numpy as np
import pytest
import torch

from symgen.molecules.featurize import FeatureLayout, MolecularFeaturizer
from symgen.molecules.fragments import (
    FragmentSampler,
    contains_substructure,
    heavy_adjacency,
    ring_scaffold,
    scaffold_molecule,
)
from symgen.molecules.molecule import Molecule


def _cycle(n: int) -> np.ndarray:
    adj = np.zeros((n, n), dtype=bool)
    for i in range(n):
        adj[i, (i + 1) % n] = adj[(i + 1) % n, i] = True
    return adj


def test_ring_scaffold_keeps_rings_and_linkers_only() -> None:
    """Two rings joined by a two-atom linker, with a chain hanging off one ring: the scaffold
    is both rings and the linker; an acyclic chain has none."""
    n = 3 + 3 + 2 + 2
    adj = np.zeros((n, n), dtype=bool)
    adj[:3, :3] = _cycle(3)
    adj[3:6, 3:6] = _cycle(3)
    for i, j in ((0, 6), (6, 7), (7, 3), (1, 8), (8, 9)):
        adj[i, j] = adj[j, i] = True
    keep = ring_scaffold(np.ones(n, dtype=bool), adj)
    assert keep.nonzero()[0].tolist() == [0, 1, 2, 3, 4, 5, 6, 7]
    chain = np.zeros((4, 4), dtype=bool)
    for i in range(3):
        chain[i, i + 1] = chain[i + 1, i] = True
    assert not ring_scaffold(np.ones(4, dtype=bool), chain).any()


@pytest.fixture(scope="module")
def qm9_molecules(tmp_path_factory) -> list[Molecule]:
    from symgen.molecules.qm9 import load_qm9

    return list(load_qm9(tmp_path_factory.mktemp("qm9"), limit=300, progress=False))


@pytest.fixture(scope="module")
def qm9_batch(qm9_molecules):
    layout = FeatureLayout.qm9()
    return qm9_molecules, MolecularFeaturizer(layout).batch(qm9_molecules), layout


def test_fragment_sampler_draws_connected_heavy_fragments(qm9_batch) -> None:
    """Every draw fixes heavy atoms only (for molecules with at least 3), at least 3 of them
    and fewer than all atoms, connected by bonds; both kinds (scaffold, random fragment)
    occur."""
    mols, x, layout = qm9_batch
    sampler = FragmentSampler(layout, scaffold_share=0.5)
    fixed = sampler(x, torch.Generator().manual_seed(0)).numpy()
    node, edge = x.node.numpy(), x.edge.numpy()
    scaffolds = 0
    for i, mol in enumerate(mols):
        k = mol.num_atoms
        heavy, adj = heavy_adjacency(node[i], edge[i], k, layout)
        f = fixed[i, :k]
        assert not fixed[i, k:].any() and 1 <= f.sum() < k
        assert not (f & ~heavy).any()
        if heavy.sum() >= 3:
            assert f.sum() >= 3
            seen, todo = {int(np.flatnonzero(f)[0])}, [int(np.flatnonzero(f)[0])]
            while todo:  # connected within the fixed atoms
                j = todo.pop()
                for m in np.flatnonzero(adj[j] & f):
                    if int(m) not in seen:
                        seen.add(int(m))
                        todo.append(int(m))
            if np.array_equal(f, ring_scaffold(heavy, adj)):
                scaffolds += 1
            else:
                assert len(seen) == f.sum()
    assert 0.2 * len(mols) < scaffolds < 0.8 * len(mols)


def test_scaffolds_of_real_molecules_are_contained_in_them(qm9_molecules) -> None:
    """The containment check accepts almost every real molecule with its own scaffold, and
    rejects it with another molecule's scaffold of different composition."""
    mols = qm9_molecules
    pairs = [(m, s) for m in mols if (s := scaffold_molecule(m)) is not None]
    assert len(pairs) > 100
    hits = [contains_substructure(m, s) for m, s in pairs]
    assert np.mean(hits) > 0.9
    benzene_like = [s for _, s in pairs if s.num_atoms >= 6]
    small = [m for m, s in pairs if m.num_atoms < 9]
    assert benzene_like and small
    assert not contains_substructure(small[0], benzene_like[0])
    for m, s in pairs[:20]:
        k = s.num_atoms
        assert s.bonds is not None and (s.bonds < k).all()
        assert set(s.atomic_numbers.tolist()) <= set(m.atomic_numbers.tolist()) - {1}
