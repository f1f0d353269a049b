"""Runs the code of docs/tutorials/custom-canonicalizer.md, block by block, as a test module.

The Python blocks of the page are executed into this module's namespace at import time, so the
``CanonicalizerContract`` subclass that the page defines (``TestInertialSort``) is collected by
pytest like any other test class; the tests below check what the page's prose promises.
"""

import re
from pathlib import Path

import torch

PAGE = Path(__file__).resolve().parents[1] / "docs" / "tutorials" / "custom-canonicalizer.md"
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)

assert len(BLOCKS) >= 4, f"expected the tutorial's code blocks in {PAGE}, found {len(BLOCKS)}"
for _i, _code in enumerate(BLOCKS):
    exec(compile(_code, f"{PAGE.name}[block {_i}]", "exec"), globals())  # noqa: S102

InertialSortCanonicalizer = globals()["InertialSortCanonicalizer"]
TestInertialSort = globals()["TestInertialSort"]


def test_page_defined_the_pieces():
    assert issubclass(InertialSortCanonicalizer, __import__("symgen.canon").canon.Canonicalizer)
    assert samples.pos.shape == (16, 13, 3)  # noqa: F821 (defined by the page)


def test_generic_cloud_is_unflagged_and_invariant():
    from symgen.state import GeometricGraph

    g = torch.Generator().manual_seed(3)
    pos = torch.randn(8, 13, 3, generator=g, dtype=torch.float64) * torch.tensor([2.0, 1.0, 0.5])
    x = GeometricGraph(
        pos, torch.zeros(8, 13, 1, dtype=torch.float64), torch.ones(8, 13, dtype=torch.bool)
    )
    canon = InertialSortCanonicalizer()
    out = canon(x)
    G = canon.group
    moved = G.act(G.sample(x, generator=g), x)
    out2 = canon(moved)
    keep = ~(out.flagged | out2.flagged)
    assert int(keep.sum()) >= 6  # anisotropic random clouds are rarely near a tie
    torch.testing.assert_close(out.representative.pos[keep], out2.representative.pos[keep])
    # the canonical pose: centred, principal axes along x, y, z with decreasing spread
    rep = out.representative.pos
    torch.testing.assert_close(
        rep.mean(1), torch.zeros(8, 3, dtype=torch.float64), atol=1e-12, rtol=0
    )
    var = rep.var(1)
    assert bool((var[:, 0] >= var[:, 1]).all() and (var[:, 1] >= var[:, 2]).all())
    # sorted along the first axis
    assert bool((rep[..., 0].diff(dim=1) >= 0).all())


def test_mirror_images_stay_distinct():
    """The frame is a proper rotation: a chiral cloud and its mirror image get different forms."""
    from symgen.state import GeometricGraph

    g = torch.Generator().manual_seed(5)
    pos = torch.randn(1, 9, 3, generator=g, dtype=torch.float64) * torch.tensor([2.0, 1.0, 0.5])
    mirror = pos * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    node = torch.zeros(1, 9, 1, dtype=torch.float64)
    mask = torch.ones(1, 9, dtype=torch.bool)
    canon = InertialSortCanonicalizer()
    a, b = canon(GeometricGraph(pos, node, mask)), canon(GeometricGraph(mirror, node, mask))
    assert not bool(a.flagged[0] or b.flagged[0])
    assert float((a.representative.pos - b.representative.pos).abs().max()) > 1e-3
    det = torch.linalg.det(a.element.parts[1].rotation)
    torch.testing.assert_close(det, torch.ones_like(det))
