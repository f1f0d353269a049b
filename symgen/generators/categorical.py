"""Token-level operations for discrete flow matching on one-hot channels (nodes and edges)."""

import torch
from jaxtyping import Float
from torch import Tensor

from symgen.masking import pair_mask, per_graph_mean, upper_pair_mask, upper_to_symmetric
from symgen.priors import CategoricalSpec
from symgen.shapes import NodeMask, PerGraph
from symgen.state import GeometricGraph

__all__ = [
    "mix_tokens",
    "token_cross_entropy",
    "jump_tokens",
    "argmax_tokens",
    "decode_categorical",
]


def _uniform(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.rand(shape, generator=generator, dtype=torch.float64, device=like.device)


def _edge_uniform(x: Tensor, generator: torch.Generator | None) -> Tensor:
    b, n = x.shape[:2]
    u = _uniform((b, n, n), x, generator)
    up = torch.triu(u, 1)
    return up + up.transpose(1, 2)


def mix_tokens(
    x0: Float[Tensor, "*lead k"],
    x1: Float[Tensor, "*lead k"],
    t: PerGraph,
    *,
    edges: bool,
    generator: torch.Generator | None = None,
) -> Float[Tensor, "*lead k"]:
    """Mixture path ``x_t = x1 with probability t, else x0``, independently per token.

    Node tokens have shape ``(b, n, k)``, edge tokens ``(b, n, n, k)``; an edge pair uses one
    draw for both orders, so edges stay symmetric.
    """
    u = _edge_uniform(x0, generator) if edges else _uniform(tuple(x0.shape[:2]), x0, generator)
    tt = t.to(torch.float64).reshape((-1,) + (1,) * (u.ndim - 1))
    take1 = (u < tt)[..., None]
    return torch.where(take1, x1, x0)


def token_cross_entropy(
    logits: Float[Tensor, "*lead k"],
    target: Float[Tensor, "*lead k"],
    mask: NodeMask,
    *,
    edges: bool,
    pairs: Tensor | None = None,
) -> Float[Tensor, ""]:
    """Cross-entropy ``-log softmax(logits)[class(target)]`` averaged per graph, then over graphs.

    Nodes: over the nodes of ``mask``. Edges: logits are symmetrized, ``(L_jk + L_kj) / 2``,
    and the mean is over unordered pairs of distinct real nodes (restricted to the symmetric
    ``(b, n, n)`` boolean ``pairs`` when given). ``target`` is one-hot.
    """
    if edges:
        logits = 0.5 * (logits + logits.transpose(1, 2))
        upper = upper_pair_mask(mask)
        w = (upper if pairs is None else upper & pairs).to(logits.dtype)
    else:
        w = mask.to(logits.dtype)
    nll = -(torch.log_softmax(logits, -1) * target).sum(-1)
    return per_graph_mean(nll * w, w)


def jump_tokens(
    x: Float[Tensor, "*lead k"],
    logits: Float[Tensor, "*lead k"],
    jump_prob: PerGraph,
    mask: NodeMask,
    *,
    edges: bool,
    generator: torch.Generator | None = None,
    source: Float[Tensor, "*lead k"] | None = None,
    source_prob: PerGraph | None = None,
) -> Float[Tensor, "*lead k"]:
    """One Euler step of the discrete flow: each token jumps with probability ``jump_prob`` to a
    class drawn from ``softmax(logits)`` (edges: from the symmetrized logits, one draw per pair).

    For the mixture path ``p_t = t δ_{x1} + (1 - t) p_0`` the rate towards ``y`` is
    ``p(x1 = y | x_t) / (1 - t)``, so a step of size ``h`` gives
    ``P(x_{t+h} = y) = (1 - h/(1-t)) δ_{x_t}(y) + h/(1-t) · p(x1 = y | x_t)`` (Campbell et al. 2024;
    Gat et al. 2024), the same rule for uniform, masked and marginal sources.

    With ``source`` (fresh prior tokens, symmetric for edges) a jumping token takes the source
    token instead of the posterior draw with probability ``source_prob``: the noise half of the
    detailed-balance term that the token sampler adds for error correction (``stochasticity``).
    """
    if edges:
        logits = 0.5 * (logits + logits.transpose(1, 2))
    probs = torch.softmax(logits.to(torch.float64), -1)
    cdf = torch.cumsum(probs, -1)
    k = x.shape[-1]
    u_cls = _edge_uniform(x, generator) if edges else _uniform(tuple(x.shape[:2]), x, generator)
    cls = (u_cls[..., None] > cdf).sum(-1).clamp_max(k - 1)
    new = torch.nn.functional.one_hot(cls, k).to(x.dtype)
    if source is not None and source_prob is not None:
        u_src = _edge_uniform(x, generator) if edges else _uniform(tuple(x.shape[:2]), x, generator)
        ps = source_prob.to(torch.float64).reshape((-1,) + (1,) * (u_src.ndim - 1))
        new = torch.where((u_src < ps)[..., None], source.to(x.dtype), new)
    u_jump = _edge_uniform(x, generator) if edges else _uniform(tuple(x.shape[:2]), x, generator)
    pj = jump_prob.to(torch.float64).reshape((-1,) + (1,) * (u_jump.ndim - 1))
    out = torch.where((u_jump < pj)[..., None], new, x)
    if edges:
        return upper_to_symmetric(out, mask)
    return out * mask[..., None].to(x.dtype)


def argmax_tokens(
    logits: Float[Tensor, "*lead k"], mask: NodeMask, *, edges: bool
) -> Float[Tensor, "*lead k"]:
    """One-hot of the most probable class, ``onehot(argmax_k logits)`` (edges: symmetrized logits).

    The read-out of the last sampling step, where every token jumps (``h / (1 - t) = 1``): taking
    the mode instead of a draw removes the independent per-token sampling noise that would
    otherwise break, for instance, the valence of one atom in a molecule with hundreds of pairs.

    Examples:
        >>> argmax_tokens(torch.tensor([[[0.1, 2.0], [3.0, 0.0]]]), torch.ones(1, 2, dtype=bool),
        ...               edges=False).tolist()
        [[[0.0, 1.0], [1.0, 0.0]]]
    """
    if edges:
        logits = 0.5 * (logits + logits.transpose(1, 2))
    out = torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
    if edges:
        return upper_to_symmetric(out, mask)
    return out * mask[..., None].to(logits.dtype)


def decode_categorical(x: GeometricGraph, spec: CategoricalSpec) -> GeometricGraph:
    """Round relaxed categorical channels to one-hot: argmax per node block and per edge pair.

    Edges are decoded from the symmetrized values and are zero on the diagonal and padding.
    Continuous node columns are left as they are.

    Examples:
        >>> x = GeometricGraph(torch.zeros(1, 2, 3), torch.tensor([[[0.2, 0.9], [0.7, 0.1]]]),
        ...                    torch.ones(1, 2, dtype=bool))
        >>> decode_categorical(x, CategoricalSpec((2,))).node.tolist()
        [[[0.0, 1.0], [1.0, 0.0]]]
    """
    spec.check(x)
    node = x.node.clone()
    m = x.mask[..., None].to(x.dtype)
    for sl in spec.block_slices():
        blk = node[..., sl]
        node[..., sl] = torch.nn.functional.one_hot(blk.argmax(-1), blk.shape[-1]).to(x.dtype) * m
    edge = x.edge
    if spec.edge_classes is not None and x.edge is not None:
        sym = 0.5 * (x.edge + x.edge.transpose(1, 2))
        oh = torch.nn.functional.one_hot(sym.argmax(-1), spec.edge_classes).to(x.dtype)
        edge = oh * pair_mask(x.mask)[..., None].to(x.dtype)
    return x.replace(node=node, edge=edge)
