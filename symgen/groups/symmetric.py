"""The symmetric group S_n acting on node order (mask-aware)."""

from dataclasses import dataclass

import torch

from symgen.groups.base import Group
from symgen.masking import gather_edges, gather_nodes
from symgen.shapes import NodeMask, Permutations
from symgen.state import GeometricGraph

__all__ = ["Permutation", "SymmetricGroup", "random_permutation"]


@dataclass(frozen=True)
class Permutation:
    """A batch of permutations ``perm[i]`` of the node slots of graph ``i``.

    Action on nodes: ``x'[j] = x[perm[j]]``; on edges, on both node axes:
    ``e'[j, k] = e[perm[j], perm[k]]``. Padding slots are fixed points: ``perm[i, j] = j`` for
    ``j >= k_i``.

    Examples:
        >>> p = Permutation(torch.tensor([[1, 0, 2]]))
        >>> p.perm.shape
        torch.Size([1, 3])
    """

    perm: Permutations


def random_permutation(mask: NodeMask, *, generator: torch.Generator | None = None) -> Permutations:
    """Uniformly random permutations of the real slots of each row; padding slots fixed.

    Sorting i.i.d. uniform keys gives each of the ``k!`` orders of the real slots with equal
    probability; padding gets key ``+inf`` plus its index, so it stays in place.
    """
    b, n = mask.shape
    keys = torch.rand(b, n, generator=generator, device=mask.device, dtype=torch.float64)
    slots = torch.arange(n, device=mask.device, dtype=torch.float64)
    keys = torch.where(mask, keys, 2.0 + slots)
    return torch.argsort(keys, dim=1)


class SymmetricGroup(Group[Permutation]):
    """The symmetric group S_n permuting the real nodes of each graph.

    ``act(p, x)``: ``pos'[j] = pos[p[j]]``, ``node'[j] = node[p[j]]``,
    ``edge'[j, k] = edge[p[j], p[k]]``; ``compose(g, h)[j] = h[g[j]]``;
    ``inverse(p)[p[j]] = j``. The Haar measure is the uniform distribution over the ``k_i!``
    permutations of the real slots of graph ``i``; padding is never moved.

    Examples:
        >>> S = SymmetricGroup()
        >>> x = GeometricGraph(torch.arange(9.).reshape(1, 3, 3), torch.zeros(1, 3, 1),
        ...                    torch.tensor([[True, True, False]]))
        >>> S.act(Permutation(torch.tensor([[1, 0, 2]])), x).pos[0, :, 0].tolist()
        [3.0, 0.0, 6.0]
    """

    permutes_nodes = True
    node_indexed = frozenset({"perm"})

    def identity(self, x: GeometricGraph) -> Permutation:
        eye = torch.arange(x.max_nodes, device=x.device).expand(x.batch_size, -1).clone()
        return Permutation(eye)

    def sample(self, x: GeometricGraph, *, generator: torch.Generator | None = None) -> Permutation:
        return Permutation(random_permutation(x.mask, generator=generator))

    def compose(self, g: Permutation, h: Permutation) -> Permutation:
        return Permutation(torch.gather(h.perm, 1, g.perm))

    def inverse(self, g: Permutation) -> Permutation:
        return Permutation(torch.argsort(g.perm, dim=1))

    def act(self, g: Permutation, x: GeometricGraph) -> GeometricGraph:
        if g.perm.shape != x.mask.shape:
            raise ValueError(
                f"permutation shape {tuple(g.perm.shape)} does not match the batch "
                f"{tuple(x.mask.shape)}"
            )
        edge = None if x.edge is None else gather_edges(g.perm, x.edge)
        return GeometricGraph.unchecked(
            pos=gather_nodes(g.perm, x.pos),
            node=gather_nodes(g.perm, x.node),
            mask=x.mask,
            edge=edge,
        )

    def allclose(self, g: Permutation, h: Permutation, *, atol: float = 1e-5) -> bool:
        return bool(torch.equal(g.perm, h.perm))

    def testing_elements(self, x: GeometricGraph) -> list[Permutation]:
        k = x.num_nodes[:, None]
        j = torch.arange(x.max_nodes, device=x.device)[None, :].expand(x.batch_size, -1)
        real = x.mask
        reverse = torch.where(real, k - 1 - j, j)
        shift = torch.where(real, (j + 1) % k, j)
        swap01 = torch.where(real & (k >= 2) & (j < 2), (1 - j), j)
        return [Permutation(reverse), Permutation(shift), Permutation(swap01)]
