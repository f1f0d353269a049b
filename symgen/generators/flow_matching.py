"""Flow matching on the linear path, with discrete flow matching for categorical channels."""

from collections.abc import Mapping

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from symgen.generators.base import (
    LossOutput,
    Process,
    check_prediction,
    masked_edge_mse,
    masked_node_mse,
)
from symgen.generators.categorical import (
    decode_categorical,
    jump_tokens,
    mix_tokens,
    token_cross_entropy,
)
from symgen.network import GraphNetwork
from symgen.priors import CategoricalSpec, Prior, symmetrize_edges
from symgen.state import GeometricGraph

__all__ = ["FlowMatching"]


def _draw_time(b: int, like: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.rand(b, generator=generator, dtype=torch.float64, device=like.device).to(
        like.dtype
    )


class FlowMatching(Process):
    """Conditional flow matching on the straight path ``x_t = (1 - t) x0 + t x1``.

    Continuous channels (positions, continuous node columns, and all features when there is no
    discrete spec) regress the conditional velocity ``u = x1 - x0``:

    * ``prediction="velocity"``: the network returns ``v̂(x_t, t)``; loss ``|v̂ - u|²``;
    * ``prediction="data"``: the network returns ``x̂1(x_t, t)``; loss ``|x̂1 - x1|²`` and the
      sampler uses ``v̂ = (x̂1 - x_t) / (1 - t)`` (with ``1 - t ≥ time_eps``).

    Categorical channels (``spec`` given and ``categorical="discrete"``): discrete flow
    matching on the mixture path, each token equal to its data value with probability ``t`` and
    to its prior value otherwise (uniform, masked or marginal source, from the prior). The
    network returns logits for the data token; the loss is their cross-entropy, and the sampler
    jumps each token with probability ``h / (1 - t)`` to a draw from ``softmax(logits)``
    (see :func:`~symgen.generators.categorical.jump_tokens`). With ``categorical="continuous"``
    one-hot channels are treated as continuous (a relaxation, with a Gaussian prior on
    features), and decoded by argmax at the end of sampling.

    Edges are symmetric with a zero diagonal throughout: continuous edge predictions are
    symmetrized, discrete ones use one draw per unordered pair.

    Solvers (``num_steps`` uniform steps of size ``h``): ``"euler"``; ``"heun"``
    (``x + h/2 (v(x, t) + v(x + h v, t + h))``); ``"midpoint"`` (``x + h v(x + h/2 v, t + h/2)``).
    Categorical tokens take one jump per step, from the logits at the step's start. With
    ``prediction="data"`` Heun's last step is an Euler step (the velocity is singular at t = 1).

    Examples:
        >>> fm = FlowMatching(prediction="velocity", solver="heun")
        >>> fm
        FlowMatching(prediction='velocity', solver='heun', spec=None, categorical='discrete')
    """

    def __init__(
        self,
        *,
        prediction: str = "velocity",
        solver: str = "euler",
        spec: CategoricalSpec | None = None,
        categorical: str = "discrete",
        weights: Mapping[str, float] | None = None,
        time_eps: float = 1e-3,
        progress: bool = False,
    ) -> None:
        if prediction not in ("velocity", "data"):
            raise ValueError(f"unknown prediction {prediction!r}; choose 'velocity' or 'data'")
        if solver not in ("euler", "heun", "midpoint"):
            raise ValueError(f"unknown solver {solver!r}; choose 'euler', 'heun' or 'midpoint'")
        if categorical not in ("discrete", "continuous"):
            raise ValueError(
                f"unknown categorical mode {categorical!r}; choose 'discrete' or 'continuous'"
            )
        self.prediction = prediction
        self.solver = solver
        self.spec = spec
        self.categorical = categorical
        self.weights = {"pos": 1.0, "node": 1.0, "edge": 1.0, **(weights or {})}
        self.time_eps = float(time_eps)
        self.progress = progress

    # ------------------------------------------------------------------ channel layout
    @property
    def _discrete(self) -> bool:
        return self.spec is not None and self.categorical == "discrete"

    def _cont_start(self) -> int:
        return (
            self.spec.num_categorical_node_columns
            if self._discrete and self.spec is not None
            else 0
        )

    def _edge_discrete(self) -> bool:
        return self._discrete and self.spec is not None and self.spec.edge_classes is not None

    # ------------------------------------------------------------------ path
    def interpolate(
        self,
        x0: GeometricGraph,
        x1: GeometricGraph,
        t: Float[Tensor, " b"],
        *,
        generator: torch.Generator | None = None,
    ) -> GeometricGraph:
        """A path sample at time ``t``: linear for continuous channels, mixture for tokens."""
        tt = t[:, None, None]
        pos = (1 - tt) * x0.pos + tt * x1.pos
        node = (1 - tt) * x0.node + tt * x1.node
        if self._discrete and self.spec is not None:
            parts = [
                mix_tokens(x0.node[..., sl], x1.node[..., sl], t, edges=False, generator=generator)
                for sl in self.spec.block_slices()
            ]
            c = self._cont_start()
            node = torch.cat(parts + [node[..., c:]], -1)
        edge = None
        if x1.edge is not None and x0.edge is not None:
            if self._edge_discrete():
                edge = mix_tokens(x0.edge, x1.edge, t, edges=True, generator=generator)
            else:
                t4 = t[:, None, None, None]
                edge = (1 - t4) * x0.edge + t4 * x1.edge
        m = x1.mask[..., None].to(x1.dtype)
        return GeometricGraph(pos=pos * m, node=node * m, mask=x1.mask, edge=edge)

    # ------------------------------------------------------------------ loss
    def loss(
        self,
        model: GraphNetwork,
        x0: GeometricGraph,
        x1: GeometricGraph,
        *,
        generator: torch.Generator | None = None,
    ) -> LossOutput:
        if self.spec is not None:
            self.spec.check(x1)
        t = _draw_time(x1.batch_size, x1.pos, generator)
        xt = self.interpolate(x0, x1, t, generator=generator)
        pred = model(xt, t)
        check_prediction(pred, xt)
        mask = x1.mask
        c = self._cont_start()
        if self.prediction == "velocity":
            tgt_pos, tgt_node = x1.pos - x0.pos, x1.node[..., c:] - x0.node[..., c:]
        else:
            tgt_pos, tgt_node = x1.pos, x1.node[..., c:]
        terms: dict[str, Tensor] = {"pos": masked_node_mse(pred.pos, tgt_pos, mask)}
        node_terms = []
        if self._discrete and self.spec is not None:
            for sl in self.spec.block_slices():
                node_terms.append(
                    token_cross_entropy(pred.node[..., sl], x1.node[..., sl], mask, edges=False)
                )
        if x1.node.shape[-1] > c:
            node_terms.append(masked_node_mse(pred.node[..., c:], tgt_node, mask))
        if node_terms:
            terms["node"] = torch.stack(node_terms).sum()
        if x1.edge is not None and x0.edge is not None:
            assert pred.edge is not None
            if self._edge_discrete():
                terms["edge"] = token_cross_entropy(pred.edge, x1.edge, mask, edges=True)
            else:
                tgt = x1.edge - x0.edge if self.prediction == "velocity" else x1.edge
                terms["edge"] = masked_edge_mse(symmetrize_edges(pred.edge, mask), tgt, mask)
        total = sum(self.weights[k] * v for k, v in terms.items())
        assert isinstance(total, Tensor)
        return LossOutput(total=total, terms=terms)

    # ------------------------------------------------------------------ sampling
    def _velocity(
        self, model: GraphNetwork, x: GeometricGraph, t: Tensor
    ) -> tuple[GeometricGraph, GeometricGraph]:
        """Continuous velocity field (as a graph; token channels zero) and the raw prediction."""
        pred = model(x, t)
        check_prediction(pred, x)
        c = self._cont_start()
        node_v = torch.zeros_like(x.node)
        edge_v = None if x.edge is None else torch.zeros_like(x.edge)
        pred_edge = None if pred.edge is None else symmetrize_edges(pred.edge, x.mask)
        if self.prediction == "velocity":
            pos_v = pred.pos
            node_v[..., c:] = pred.node[..., c:]
            if x.edge is not None and not self._edge_discrete():
                edge_v = pred_edge
        else:
            denom = (1 - t).clamp_min(self.time_eps)
            pos_v = (pred.pos - x.pos) / denom[:, None, None]
            node_v[..., c:] = (pred.node[..., c:] - x.node[..., c:]) / denom[:, None, None]
            if x.edge is not None and not self._edge_discrete():
                assert pred_edge is not None
                edge_v = (pred_edge - x.edge) / denom[:, None, None, None]
        m = x.mask[..., None].to(x.dtype)
        v = GeometricGraph(pos=pos_v * m, node=node_v * m, mask=x.mask, edge=edge_v)
        return v, pred

    @staticmethod
    def _axpy(x: GeometricGraph, h: float, v: GeometricGraph) -> GeometricGraph:
        edge = None if x.edge is None or v.edge is None else x.edge + h * v.edge
        return GeometricGraph(
            pos=x.pos + h * v.pos,
            node=x.node + h * v.node,
            mask=x.mask,
            edge=edge if edge is not None else x.edge,
        )

    def _jump(
        self,
        x: GeometricGraph,
        pred: GeometricGraph,
        t: float,
        h: float,
        generator: torch.Generator | None,
    ) -> GeometricGraph:
        if not self._discrete or self.spec is None:
            return x
        p = min(1.0, h / max(1.0 - t, 1e-12))
        jp = torch.full((x.batch_size,), p, dtype=x.dtype, device=x.device)
        node = x.node.clone()
        for sl in self.spec.block_slices():
            node[..., sl] = jump_tokens(
                x.node[..., sl], pred.node[..., sl], jp, x.mask, edges=False, generator=generator
            )
        edge = x.edge
        if self._edge_discrete() and x.edge is not None:
            assert pred.edge is not None
            edge = jump_tokens(x.edge, pred.edge, jp, x.mask, edges=True, generator=generator)
        return x.replace(node=node, edge=edge)

    @torch.no_grad()
    def sample(
        self,
        model: GraphNetwork,
        prior: Prior,
        template: GeometricGraph,
        *,
        num_steps: int,
        generator: torch.Generator | None = None,
    ) -> GeometricGraph:
        """Integrate the learned flow from ``prior.sample(template)`` at t = 0 to t = 1."""
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        x = prior.sample(template, generator=generator)
        b = x.batch_size
        h = 1.0 / num_steps
        for k in tqdm(
            range(num_steps), disable=not self.progress, desc="flow matching", leave=False
        ):
            t0 = k * h
            tv = torch.full((b,), t0, dtype=x.dtype, device=x.device)
            v1, pred = self._velocity(model, x, tv)
            last_data_step = self.prediction == "data" and k == num_steps - 1
            if self.solver == "euler" or (self.solver == "heun" and last_data_step):
                new = self._axpy(x, h, v1)
            elif self.solver == "heun":
                v2, _ = self._velocity(model, self._axpy(x, h, v1), tv + h)
                avg = GeometricGraph(
                    pos=0.5 * (v1.pos + v2.pos),
                    node=0.5 * (v1.node + v2.node),
                    mask=x.mask,
                    edge=None if v1.edge is None or v2.edge is None else 0.5 * (v1.edge + v2.edge),
                )
                new = self._axpy(x, h, avg)
            else:
                v2, _ = self._velocity(model, self._axpy(x, 0.5 * h, v1), tv + 0.5 * h)
                new = self._axpy(x, h, v2)
            x = self._jump(new, pred, t0, h, generator)
        x = x.zero_padding()
        if self.spec is not None and self.categorical == "continuous":
            x = decode_categorical(x, self.spec)
        return x

    def __repr__(self) -> str:
        return (
            f"FlowMatching(prediction={self.prediction!r}, solver={self.solver!r}, "
            f"spec={self.spec}, "
            f"categorical={self.categorical!r})"
        )
