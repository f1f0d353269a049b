"""Categorical priors for one-hot channels: uniform, masked (absorbing) and data marginals."""

import math
from collections.abc import Mapping, Sequence
from typing import Literal

import torch
from torch import Tensor

from symgen.masking import upper_pair_mask, upper_to_symmetric
from symgen.priors.base import Prior, PriorChannels
from symgen.priors.spec import (
    CategoricalSpec,
    _classes_to_one_hot,
)
from symgen.shapes import PerGraph
from symgen.state import GeometricGraph

__all__ = ["CategoricalPrior", "Source"]

#: The allowed ``source`` values of :class:`CategoricalPrior`.
Source = Literal["uniform", "masked", "marginal"]


def _draw(probs: Tensor, shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
    """Class indices of the given shape, i.i.d. from ``probs`` (inverse CDF of float64 uniforms)."""
    u = torch.rand(shape, generator=generator, dtype=torch.float64, device=probs.device)
    cdf = torch.cumsum(probs.to(torch.float64), 0)
    cdf = cdf / cdf[-1]
    return (
        torch.searchsorted(cdf, u.reshape(-1).contiguous(), right=True)
        .clamp_max(len(probs) - 1)
        .reshape(shape)
    )


class CategoricalPrior(Prior):
    """Independent categorical noise on the categorical channels described by a spec.

    Every real node gets one token per node block, and every unordered pair of distinct real
    nodes one edge token (mirrored to both orders), drawn i.i.d. from the source:

    * ``"uniform"``: ``p(c) = 1 / K``; tokens are one-hot;
    * ``"masked"``: the absorbing state with probability 1; tokens are all-zero vectors;
    * ``"marginal"``: ``p(c)`` = the data frequency of class ``c`` (see :meth:`from_data`).

    Node columns after the categorical blocks are continuous and get ``N(0, 1)`` noise.
    Positions are zero and not modelled (combine with a positional prior in
    :class:`~symgen.priors.ProductPrior`).

    ``log p(x) = Σ_tokens log p(token) [+ Σ log N(continuous; 0, 1)]``; an all-zero token has
    probability 1 under ``"masked"`` and 0 otherwise.

    Examples:
        >>> spec = CategoricalSpec(node_blocks=(3,))
        >>> t = GeometricGraph(torch.zeros(1, 4, 3), torch.zeros(1, 4, 3),
        ...                    torch.ones(1, 4, dtype=bool))
        >>> g = torch.Generator().manual_seed(0)
        >>> x = CategoricalPrior(spec, "uniform").sample(t, generator=g)
        >>> x.node.sum(-1).tolist()
        [[1.0, 1.0, 1.0, 1.0]]
    """

    def __init__(
        self,
        spec: CategoricalSpec,
        source: Source = "uniform",
        *,
        node_marginals: Sequence[Tensor] | None = None,
        edge_marginal: Tensor | None = None,
    ) -> None:
        if source not in ("uniform", "masked", "marginal"):
            raise ValueError(
                f"unknown categorical source {source!r}; choose uniform, masked or marginal"
            )
        self.spec = spec
        self.source = source
        if source == "marginal":
            if node_marginals is None or len(node_marginals) != len(spec.node_blocks):
                raise ValueError(
                    "source='marginal' needs one marginal per node block (use from_data)"
                )
            if spec.edge_classes is not None and edge_marginal is None:
                raise ValueError(
                    "source='marginal' needs edge_marginal when the spec has edge classes"
                )
        self.node_probs = [
            self._probs(k, None if node_marginals is None else node_marginals[i], f"node block {i}")
            for i, k in enumerate(spec.node_blocks)
        ]
        self.edge_probs = (
            None
            if spec.edge_classes is None
            else self._probs(spec.edge_classes, edge_marginal, "edges")
        )

    @property
    def channels(self) -> PriorChannels:
        edge = "categorical" if self.spec.edge_classes is not None else "none"
        return PriorChannels(pos="none", node="categorical", edge=edge)

    def state_dict(self) -> dict[str, Tensor]:
        """The class probabilities: ``node.<i>`` per node block and ``edge``."""
        out = {f"node.{i}": p.clone() for i, p in enumerate(self.node_probs)}
        if self.edge_probs is not None:
            out["edge"] = self.edge_probs.clone()
        return out

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        """Restore the class probabilities of :meth:`state_dict` (shapes must match the spec)."""
        want = set(self.state_dict())
        if set(state) != want:
            raise ValueError(
                f"categorical prior state needs keys {sorted(want)}, got {sorted(state)}"
            )
        self.node_probs = [
            self._checked(state[f"node.{i}"], k, f"node block {i}")
            for i, k in enumerate(self.spec.node_blocks)
        ]
        if self.edge_probs is not None:
            assert self.spec.edge_classes is not None
            self.edge_probs = self._checked(state["edge"], self.spec.edge_classes, "edges")

    @staticmethod
    def _checked(probs: Tensor, k: int, what: str) -> Tensor:
        p = torch.as_tensor(probs, dtype=torch.float64).flatten()
        if p.shape != (k,) or bool((p < 0).any()) or not float(p.sum()) > 0:
            raise ValueError(f"probabilities for {what} must be {k} non-negative numbers")
        return p / p.sum()

    def _probs(self, k: int, marginal: Tensor | None, what: str) -> Tensor:
        if self.source != "marginal":
            return torch.full((k,), 1.0 / k, dtype=torch.float64)
        assert marginal is not None
        return self._checked(marginal, k, f"the marginal of {what}")

    @classmethod
    def from_data(
        cls, data: GeometricGraph, spec: CategoricalSpec, *, pseudo_count: float = 0.0
    ) -> "CategoricalPrior":
        """The ``"marginal"`` prior with the class frequencies of ``data`` (+ ``pseudo_count``).

        ``p(c) = (count(c) + pseudo_count) / Σ_c' (count(c') + pseudo_count)`` over real nodes
        (node blocks) and unordered pairs of distinct real nodes (edges).
        """
        spec.check(data)
        m = data.mask[..., None].to(data.dtype)
        node_marginals = [
            (data.node[..., sl] * m).sum((0, 1)).double() + pseudo_count
            for sl in spec.block_slices()
        ]
        edge_marginal = None
        if spec.edge_classes is not None:
            assert data.edge is not None
            pm = upper_pair_mask(data.mask)[..., None].to(data.dtype)
            edge_marginal = (data.edge * pm).sum((0, 1, 2)).double() + pseudo_count
        return cls(spec, "marginal", node_marginals=node_marginals, edge_marginal=edge_marginal)

    def sample(
        self, template: GeometricGraph, *, generator: torch.Generator | None = None
    ) -> GeometricGraph:
        self.spec.check(template)
        b, n, f = template.node.shape
        dt = template.dtype
        m = template.mask[..., None].to(dt)
        parts = []
        for probs in self.node_probs:
            k = len(probs)
            if self.source == "masked":
                parts.append(torch.zeros(b, n, k, dtype=dt, device=template.device))
            else:
                cls_ = _draw(probs.to(template.device), (b, n), generator)
                parts.append(_classes_to_one_hot(cls_, k, dt))
        rest = f - self.spec.num_categorical_node_columns
        if rest > 0:
            parts.append(
                torch.randn(
                    b, n, rest, generator=generator, dtype=torch.float64, device=template.device
                ).to(dt)
            )
        node = (torch.cat(parts, -1) if parts else torch.zeros_like(template.node)) * m
        edge = None
        if template.edge is not None:
            if self.edge_probs is None:
                edge = torch.zeros_like(template.edge)
            elif self.source == "masked":
                edge = torch.zeros_like(template.edge)
            else:
                cls_ = _draw(self.edge_probs.to(template.device), (b, n, n), generator)
                edge = upper_to_symmetric(
                    _classes_to_one_hot(cls_, len(self.edge_probs), dt), template.mask
                )
        return GeometricGraph.unchecked(
            pos=torch.zeros_like(template.pos), node=node, mask=template.mask, edge=edge
        )

    def _token_log_prob(self, tokens: Tensor, probs: Tensor, what: str) -> Tensor:
        """Log-probability of each token (one-hot or all-zero) along the last axis."""
        total = tokens.sum(-1)
        is_zero = tokens.abs().sum(-1) == 0
        is_one_hot = ((tokens == 0) | (tokens == 1)).all(-1) & (total == 1)
        if not bool((is_zero | is_one_hot).all()):
            raise ValueError(f"{what} tokens must be one-hot or all-zero (masked) vectors")
        logp = torch.log(probs.to(device=tokens.device, dtype=tokens.dtype))
        neg_inf = torch.full_like(total, -math.inf)
        if self.source == "masked":
            return torch.where(is_zero, torch.zeros_like(total), neg_inf)
        return torch.where(is_zero, neg_inf, logp[tokens.argmax(-1)])

    def log_prob(self, x: GeometricGraph) -> PerGraph:
        self.spec.check(x)
        mask = x.mask
        lp = torch.zeros(x.batch_size, dtype=x.dtype, device=x.device)
        for sl, probs in zip(self.spec.block_slices(), self.node_probs, strict=True):
            tok = self._token_log_prob(x.node[..., sl], probs, "node")
            lp = lp + torch.where(mask, tok, torch.zeros_like(tok)).sum(1)
        rest = x.node[..., self.spec.num_categorical_node_columns :]
        if rest.shape[-1] > 0:
            m = mask[..., None].to(x.dtype)
            lp = (
                lp
                - 0.5 * ((rest * m) ** 2).sum((1, 2))
                - 0.5 * math.log(2 * math.pi) * (x.num_nodes.to(x.dtype) * rest.shape[-1])
            )
        if self.edge_probs is not None and x.edge is not None:
            pm = upper_pair_mask(mask)
            tok = self._token_log_prob(x.edge, self.edge_probs, "edge")
            lp = lp + torch.where(pm, tok, torch.zeros_like(tok)).sum((1, 2))
        return lp

    def __repr__(self) -> str:
        return f"CategoricalPrior({self.spec}, source={self.source!r})"
