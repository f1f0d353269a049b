"""Validation of the batched state type: each bad input gets an error naming the problem."""

import pytest
import torch
from hypothesis import given, settings

from symgen.state import GeometricGraph, StateError, prefix_mask
from symgen.testing import geometric_graphs


def _ok(**kw):
    base = dict(
        pos=torch.zeros(2, 3, 3),
        node=torch.zeros(2, 3, 4),
        mask=prefix_mask(torch.tensor([2, 3]), 3),
    )
    base.update(kw)
    return GeometricGraph(**base)


def test_valid_state_properties():
    g = _ok(edge=torch.zeros(2, 3, 3, 2))
    assert g.batch_size == 2 and g.max_nodes == 3
    assert g.num_nodes.tolist() == [2, 3]
    assert g.edge_mask[0].sum() == 2 and g.edge_mask[1].sum() == 6


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(pos=torch.zeros(2, 3, 2)), "pos must have shape"),
        (
            dict(
                pos=torch.zeros(0, 3, 3),
                node=torch.zeros(0, 3, 4),
                mask=torch.zeros(0, 3, dtype=torch.bool),
            ),
            "empty batch",
        ),
        (dict(node=torch.zeros(2, 4, 4)), "node must have shape"),
        (dict(mask=torch.ones(2, 4, dtype=torch.bool)), "mask must have shape"),
        (dict(mask=torch.ones(2, 3)), "mask must be a bool"),
        (dict(node=torch.zeros(2, 3, 4, dtype=torch.float64)), "dtype"),
        (dict(edge=torch.zeros(2, 3, 2, 1)), "edge must have shape"),
        (dict(pos=torch.tensor(float("nan")).expand(2, 3, 3).clone()), "NaN or inf"),
        (dict(node=torch.full((2, 3, 4), float("inf"))), "node contains NaN or inf"),
        (dict(mask=torch.tensor([[True, False, True], [True, True, True]])), "not a prefix mask"),
        (dict(mask=torch.tensor([[False, False, False], [True, True, True]])), "empty graph"),
        (dict(pos=torch.zeros(2, 3, 3, dtype=torch.int64)), "floating point"),
    ],
)
def test_bad_input_is_named(kw, message):
    with pytest.raises(StateError, match=message):
        _ok(**kw)


def test_from_graphs_pads_and_checks():
    g = GeometricGraph.from_graphs(
        [torch.ones(2, 3), torch.ones(4, 3)], [torch.ones(2, 1), torch.ones(4, 1)]
    )
    assert g.mask.sum().item() == 6 and g.pos[0, 2:].abs().sum() == 0
    with pytest.raises(StateError, match="smaller than the largest"):
        GeometricGraph.from_graphs([torch.ones(4, 3)], [torch.ones(4, 1)], max_nodes=2)
    with pytest.raises(StateError, match="no graphs"):
        GeometricGraph.from_graphs([], [])


@given(x=geometric_graphs(edge_features=2, pad_value=5.0))
@settings(deadline=None, max_examples=20)
def test_zero_padding_trim_unbatch_roundtrip(x):
    z = x.zero_padding()
    assert z.pos[~x.mask].abs().sum() == 0 and z.node[~x.mask].abs().sum() == 0
    t = z.trim()
    assert t.max_nodes == int(x.num_nodes.max())
    again = GeometricGraph.from_graphs(
        *zip(*[(p, n) for p, n, _ in x.unbatch()]), edge=[e for *_, e in x.unbatch()]
    )
    torch.testing.assert_close(again.pos, t.pos)
    torch.testing.assert_close(again.edge, t.edge)


def test_to_and_index():
    g = _ok().to(dtype=torch.float64)
    assert g.dtype == torch.float64
    assert g.index([1]).num_nodes.tolist() == [3]
