"""Graph stores, canonical caches and their keys (symgen.data)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from symgen.canon import Canonicalization, Canonicalizer, geometric_spectral_canonicalizer
from symgen.data import (
    GraphStore,
    PaddedGraphs,
    cache_key,
    canonicalize_store,
    load_or_build,
)
from symgen.groups import DirectProduct, Permutation, SymmetricGroup, Translation, Translations
from symgen.masking import masked_mean
from symgen.state import GeometricGraph
from symgen.testing import geometric_graphs, make_graph


class ReverseAndCenter(Canonicalizer):
    """A user's canonicalizer for S_n × T(3): reverse the real nodes, move the centroid to 0."""

    def __init__(self) -> None:
        self.group = DirectProduct(SymmetricGroup(), Translations())

    def canonicalize(self, x: GeometricGraph) -> Canonicalization:
        k, n = x.num_nodes[:, None], x.max_nodes
        j = torch.arange(n)[None].expand(x.batch_size, n)
        perm = torch.where(x.mask, k - 1 - j, j)  # self-inverse
        centroid = masked_mean(x.pos, x.mask)
        moved = Translations().act(Translation(-centroid), x)
        rep = SymmetricGroup().act(Permutation(perm), moved)
        element = self.group.element_from_tensors({"perm": perm, "translation": centroid}, x)
        margin = x.num_nodes.to(x.dtype)
        return Canonicalization(rep, element, margin, margin < 3)


def _padded(graphs: list[GeometricGraph]) -> list[GeometricGraph]:
    return [g.zero_padding() for g in graphs]


@settings(max_examples=25, deadline=None)
@given(
    batches=st.lists(
        geometric_graphs(edge_features=st.sampled_from([0, 2])), min_size=1, max_size=3
    ),
    data=st.data(),
)
def test_store_batches_reproduce_the_graphs(batches: list[GeometricGraph], data) -> None:
    """Property: a store built from padded batches gives back every graph exactly (real nodes,
    pairs of real nodes, zero padding), in any selection and order."""
    batches = [b.to(dtype=torch.float64) for b in batches]
    widths = {(b.node.shape[-1], None if b.edge is None else b.edge.shape[-1]) for b in batches}
    if len(widths) > 1:  # a store holds one feature layout
        batches = batches[:1]
    store = GraphStore.from_graphs(batches)
    flat = [g for b in batches for g in b.unbatch()]
    assert len(store) == len(flat)
    idx = data.draw(st.lists(st.integers(0, len(flat) - 1), min_size=1, max_size=8))
    got = store.batch(torch.tensor(idx))
    for row, i in enumerate(idx):
        pos, node, edge = flat[i]
        k = pos.shape[0]
        assert int(got.num_nodes[row]) == k
        assert torch.equal(got.pos[row, :k], pos) and torch.equal(got.node[row, :k], node)
        assert float(got.pos[row, k:].abs().sum()) == 0.0
        if edge is not None:
            assert got.edge is not None and torch.equal(got.edge[row, :k, :k], edge)
    sub = store.subset(torch.tensor(idx))
    assert torch.equal(sub.batch(torch.arange(len(idx))).pos, got.pos)


def test_store_save_load_and_errors(tmp_path) -> None:
    x = make_graph([3, 5, 2], num_types=3, edge_features=2, seed=1)
    store = GraphStore.from_graphs(
        [x], graph_data=[{"label": torch.arange(3)}], node_dtype=torch.uint8, metadata={"a": 1}
    )
    path = tmp_path / "s.pt"
    store.save(path)
    back = GraphStore.load(path)
    assert back.metadata == {"a": 1} and back.graph_data["label"].tolist() == [0, 1, 2]
    assert torch.equal(back.batch([2, 0]).node, store.batch([2, 0]).node)
    with pytest.raises(FileNotFoundError):
        GraphStore.load(tmp_path / "missing.pt")
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="format"):
        GraphStore.load(tmp_path / "other.pt")
    (tmp_path / "torn.pt").write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="not a readable graph store"):
        GraphStore.load(tmp_path / "torn.pt")
    with pytest.raises(ValueError, match="NaN"):
        GraphStore(
            pos=torch.full((2, 3), float("nan")),
            node=torch.zeros(2, 1),
            node_offsets=torch.tensor([0, 2]),
        )
    with pytest.raises(ValueError, match="at least one node"):
        GraphStore(
            pos=torch.zeros(2, 3), node=torch.zeros(2, 1), node_offsets=torch.tensor([0, 0, 2])
        )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_canonicalize_store_keeps_elements_that_reconstruct(dtype: torch.dtype) -> None:
    """The cache holds representatives and, through the group's own tensor description, the
    elements: act(element, representative) is the input, for a user's canonicalizer too."""
    x = make_graph(
        [4, 2, 6, 1, 5], num_types=3, edge_features=2, seed=3, dtype=dtype
    ).zero_padding()
    store = GraphStore.from_graphs([x])
    canon = ReverseAndCenter()
    out = canonicalize_store(store, canon, batch_size=2, progress=False)
    assert sorted(out.graph_data) == ["flagged", "margin", "translation"]
    assert sorted(out.node_data) == ["perm"]
    assert out.graph_data["flagged"].tolist() == [False, True, False, True, False]
    idx = torch.tensor([4, 0, 3])
    rep, orig = out.batch(idx), store.batch(idx)
    back = canon.group.act(out.elements(idx, canon.group), rep)
    torch.testing.assert_close(back.pos, orig.pos)
    assert torch.equal(back.node, orig.node) and torch.equal(back.edge, orig.edge)
    expected = canon.canonicalize(orig).representative.zero_padding()
    torch.testing.assert_close(rep.pos, expected.pos)


def test_load_or_build_rebuilds_when_the_key_changes(tmp_path) -> None:
    """A stale cache is never reused: a changed canonicalizer setting is a new key and rebuilds;
    the same key is read back without building."""
    x = make_graph([5, 6, 4], num_types=3, seed=2).zero_padding()
    source = GraphStore.from_graphs([x])
    builds = []

    def cached(canon: Canonicalizer) -> tuple[GraphStore, bool]:
        def build() -> GraphStore:
            builds.append(canon.config())
            return canonicalize_store(source, canon, progress=False)

        return load_or_build(tmp_path, "canonical", {"canon": canon.config(), "data": 1}, build)

    _, built = cached(geometric_spectral_canonicalizer())
    assert built
    _, built = cached(geometric_spectral_canonicalizer())
    assert not built and len(builds) == 1
    _, built = cached(geometric_spectral_canonicalizer(order_threshold=1e-3))
    assert built and len(builds) == 2
    _, built = cached(geometric_spectral_canonicalizer(workers=1))  # speed only: same key
    assert not built
    assert len(list(tmp_path.glob("canonical-*.pt"))) == 2

    # a file under a key's name whose recorded key differs (a hand copy) is rebuilt, not trusted
    def path(canon: Canonicalizer) -> object:
        return tmp_path / f"canonical-{cache_key({'canon': canon.config(), 'data': 1})}.pt"

    other = geometric_spectral_canonicalizer(order_threshold=1e-3)
    path(other).write_bytes(path(geometric_spectral_canonicalizer()).read_bytes())
    _, built = cached(other)
    assert built and len(builds) == 3


def test_failed_build_leaves_no_file(tmp_path) -> None:
    def broken() -> GraphStore:
        raise RuntimeError("killed while building")

    with pytest.raises(RuntimeError, match="killed"):
        load_or_build(tmp_path, "x", {"k": 1}, broken)
    assert list(tmp_path.iterdir()) == []


def test_padded_graphs_source_trims_batches() -> None:
    x = make_graph([2, 7, 3], seed=0)
    src = PaddedGraphs(x)
    assert src.num_nodes.tolist() == [2, 7, 3] and len(src) == 3
    b = src.batch(torch.tensor([2, 0]))
    assert b.max_nodes == 3 and b.num_nodes.tolist() == [3, 2]
    assert np.array_equal(b.pos.numpy(), x.index([2, 0]).trim().pos.numpy())
