"""Plug-in canonicalizers: a user-defined one inherits the contract suite from symgen.testing."""

import torch

from symgen.canon import Canonicalization, Canonicalizer
from symgen.groups import (
    DirectProduct,
    Permutation,
    ProductElement,
    SymmetricGroup,
    Translation,
    Translations,
)
from symgen.state import GeometricGraph
from symgen.testing import CanonicalizerContract, make_graph


class XSortCanonicalizer(Canonicalizer):
    """T(3) × S_n on point clouds: centre, then sort points by their x coordinate.

    Margin: the smallest gap between consecutive x values (coincident points are flagged).
    """

    threshold = 1e-6

    def __init__(self) -> None:
        self.group = DirectProduct(Translations(), SymmetricGroup())

    def canonicalize(self, x: GeometricGraph) -> Canonicalization:
        m = x.mask[..., None].to(x.dtype)
        mu = (x.pos * m).sum(1) / m.sum(1)
        centred = torch.where(x.mask[..., None], x.pos - mu[:, None], x.pos)
        key = torch.where(x.mask, centred[..., 0], torch.full_like(centred[..., 0], float("inf")))
        key_sorted, order = torch.sort(key, dim=1, stable=True)
        inf = torch.full_like(key_sorted[:, :1], float("inf"))
        gaps = torch.cat(
            [key_sorted[:, 1:] - key_sorted[:, :-1], inf], 1
        )  # (the contract caught n = 1)
        both = torch.cat([x.mask[:, 1:] & x.mask[:, :-1], x.mask[:, :1]], 1)
        margin = torch.where(both, gaps, torch.full_like(gaps, float("inf"))).amin(-1)
        rep = SymmetricGroup().act(Permutation(order), x.replace(pos=centred))
        element = ProductElement((Translation(mu), Permutation(torch.argsort(order, dim=1))))
        return Canonicalization(rep, element, margin, margin < self.threshold)


class TestXSortPlugin(CanonicalizerContract):
    """Everything the built-in canonicalizers are tested for, for free."""

    def make_canonicalizer(self):
        return XSortCanonicalizer()


def test_plugin_flags_ties():
    x = make_graph([4], kind="coincident", dtype=torch.float64)
    assert bool(XSortCanonicalizer().canonicalize(x).flagged[0])
