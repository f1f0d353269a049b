"""Shape-annotated tensor aliases used across symgen.

Modules annotate tensors with these aliases (jaxtyping) where the shape is one of them; other
shapes are spelled out. Under pytest the whole package is instrumented with
``--jaxtyping-packages=symgen,beartype.beartype``, so a wrong shape or dtype fails loudly at the
call site.

Dimension names used throughout:

* ``b`` — batch size (number of graphs),
* ``n`` — padded number of nodes per graph,
* ``f`` — node feature width, ``e`` — edge feature width,
* ``3`` — Cartesian coordinates (row vectors).
"""

from jaxtyping import Bool, Float, Int
from torch import Tensor

__all__ = [
    "Positions",
    "NodeFeatures",
    "EdgeFeatures",
    "NodeMask",
    "Rotations",
    "Translations",
    "Permutations",
    "PerGraph",
    "PerGraphInt",
    "PerGraphBool",
]

Positions = Float[Tensor, "b n 3"]
NodeFeatures = Float[Tensor, "b n f"]
EdgeFeatures = Float[Tensor, "b n n e"]
NodeMask = Bool[Tensor, "b n"]
Rotations = Float[Tensor, "b 3 3"]
Translations = Float[Tensor, "b 3"]
Permutations = Int[Tensor, "b n"]
PerGraph = Float[Tensor, " b"]
PerGraphInt = Int[Tensor, " b"]
PerGraphBool = Bool[Tensor, " b"]
