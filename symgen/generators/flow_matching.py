"""Flow matching on the linear path, with discrete flow matching for categorical channels."""

from collections.abc import Mapping

import torch
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
    argmax_tokens,
    decode_categorical,
    jump_tokens,
    mix_tokens,
    token_cross_entropy,
)
from symgen.network import GraphNetwork, supports_self_conditioning
from symgen.priors import CategoricalSpec, Prior, symmetrize_edges
from symgen.shapes import PerGraph
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
    (see :func:`~symgen.generators.categorical.jump_tokens`). At the last step every token jumps;
    ``final_tokens="argmax"`` (default) reads out the most probable class there instead of a
    draw (:func:`~symgen.generators.categorical.argmax_tokens`), ``"sample"`` keeps the draw.
    ``stochasticity = η > 0`` adds the detailed-balance rate ``η p_t(y | x1)`` of the mixture
    path (Campbell et al. 2024), which leaves every marginal ``p_t`` unchanged but lets decided
    tokens be re-noised and re-decided: in expectation over ``x1`` a token jumps with rate
    ``(1/(1-t) + η t) p(x1 = y | x_t) + η (1-t) p_0(y)``, the last part drawn from the prior.
    ``token_exponent = k`` reveals tokens on the schedule ``κ(t) = t^k`` instead of ``t`` (each
    token equals its data value with probability ``κ(t)``; a step jumps with probability
    ``(κ(t+h) - κ(t)) / (1 - κ(t))``): ``k > 1`` decides atom types and bonds later than the
    positions, ``k < 1`` earlier. ``temperature`` divides the logits of the posterior draws
    (``< 1`` sharpens them; 1 is the learned posterior).

    ``self_conditioning=True`` (Chen et al. 2023) feeds the network its own previous estimate of
    the clean data, ``net(x_t, t, cond=x̂1)`` with ``x̂1`` = estimated positions and the
    probabilities of the categorical channels: in training, half of the batches first run the
    network without gradient to get ``x̂1`` (the others get no estimate); in sampling, each
    step passes the estimate of the previous step. "No estimate" is an all-zero estimate, so
    every parameter is used in every step (as DistributedDataParallel requires). The network
    must support it
    (:func:`symgen.network.supports_self_conditioning`).
    With ``categorical="continuous"``
    one-hot channels are treated as continuous (a relaxation, with a Gaussian prior on
    features), and decoded by argmax at the end of sampling.

    Edges are symmetric with a zero diagonal throughout: continuous edge predictions are
    symmetrized, discrete ones use one draw per unordered pair.

    Solvers (``num_steps`` steps on the grid ``t_k = (k / num_steps)^time_grid``: uniform by
    default, denser near ``t = 0`` for ``time_grid > 1``): ``"euler"``; ``"heun"``
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
        final_tokens: str = "argmax",
        stochasticity: float = 0.0,
        token_exponent: float = 1.0,
        self_conditioning: bool = False,
        time_grid: float = 1.0,
        temperature: float = 1.0,
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
        if final_tokens not in ("argmax", "sample"):
            raise ValueError(f"unknown final_tokens {final_tokens!r}; choose 'argmax' or 'sample'")
        if not token_exponent > 0:
            raise ValueError(f"token_exponent must be positive, got {token_exponent}")
        if not stochasticity >= 0:
            raise ValueError(f"stochasticity must be >= 0, got {stochasticity}")
        self.prediction = prediction
        self.final_tokens = final_tokens
        self.stochasticity = float(stochasticity)
        self.token_exponent = float(token_exponent)
        self.self_conditioning = bool(self_conditioning)
        if not time_grid > 0:
            raise ValueError(f"time_grid must be positive, got {time_grid}")
        self.time_grid = float(time_grid)
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = float(temperature)
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
    def _kappa(self, t: Tensor) -> Tensor:
        """Token schedule ``κ(t) = t^k``: probability that a token shows its data value."""
        return t if self.token_exponent == 1.0 else t.clamp(min=0.0) ** self.token_exponent

    def interpolate(
        self,
        x0: GeometricGraph,
        x1: GeometricGraph,
        t: PerGraph,
        *,
        generator: torch.Generator | None = None,
    ) -> GeometricGraph:
        """A path sample at time ``t``: linear for continuous channels, mixture for tokens."""
        tt = t[:, None, None]
        pos = (1 - tt) * x0.pos + tt * x1.pos
        node = (1 - tt) * x0.node + tt * x1.node
        kt = self._kappa(t)
        if self._discrete and self.spec is not None:
            parts = [
                mix_tokens(x0.node[..., sl], x1.node[..., sl], kt, edges=False, generator=generator)
                for sl in self.spec.block_slices()
            ]
            c = self._cont_start()
            node = torch.cat(parts + [node[..., c:]], -1)
        edge = None
        if x1.edge is not None and x0.edge is not None:
            if self._edge_discrete():
                edge = mix_tokens(x0.edge, x1.edge, kt, edges=True, generator=generator)
            else:
                t4 = t[:, None, None, None]
                edge = (1 - t4) * x0.edge + t4 * x1.edge
        m = x1.mask[..., None].to(x1.dtype)
        return GeometricGraph(pos=pos * m, node=node * m, mask=x1.mask, edge=edge)

    # ------------------------------------------------------------------ self-conditioning
    def _call(
        self, model: GraphNetwork, x: GeometricGraph, t: Tensor, cond: GeometricGraph | None
    ) -> GeometricGraph:
        if not self.self_conditioning:
            return model(x, t)
        if not supports_self_conditioning(model):
            raise ValueError(
                "self_conditioning=True needs a network that accepts cond= (its attribute "
                "self_conditioning is true), e.g. CanonTransformer(self_condition=True)"
            )
        if cond is None:  # "no estimate yet" is an all-zero estimate (Chen et al. 2023)
            cond = GeometricGraph(
                pos=torch.zeros_like(x.pos),
                node=torch.zeros_like(x.node),
                mask=x.mask,
                edge=None if x.edge is None else torch.zeros_like(x.edge),
            )
        return model(x, t, cond=cond)  # type: ignore[call-arg]

    def estimate(self, pred: GeometricGraph, x: GeometricGraph, t: Tensor) -> GeometricGraph:
        """The clean-data estimate ``x̂1`` behind a prediction (the self-conditioning input).

        Positions ``x_t + (1 - t) v̂`` (velocity prediction) or ``x̂1`` (data prediction);
        categorical blocks and edges as softmax probabilities; continuous columns like positions.
        """
        tt = (1 - t)[:, None, None]
        c = self._cont_start()
        if self.prediction == "velocity":
            pos = x.pos + tt * pred.pos
            cont = x.node[..., c:] + tt * pred.node[..., c:]
        else:
            pos, cont = pred.pos, pred.node[..., c:]
        parts = []
        if self._discrete and self.spec is not None:
            parts = [torch.softmax(pred.node[..., sl], -1) for sl in self.spec.block_slices()]
        node = torch.cat(parts + [cont], -1)
        edge = None
        if x.edge is not None and pred.edge is not None:
            e = symmetrize_edges(pred.edge, x.mask)
            if self._edge_discrete():
                e = torch.softmax(e, -1) * x.edge_mask[..., None].to(e.dtype)
            elif self.prediction == "velocity":
                e = x.edge + (1 - t)[:, None, None, None] * e
            edge = e
        m = x.mask[..., None].to(x.dtype)
        return GeometricGraph(
            pos=(pos * m).detach(),
            node=(node * m).detach(),
            mask=x.mask,
            edge=None if edge is None else edge.detach(),
        )

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
        cond = None
        if self.self_conditioning:
            coin = torch.rand((), generator=generator, dtype=torch.float64, device=x1.device)
            if float(coin) < 0.5:
                with torch.no_grad():
                    cond = self.estimate(self._call(model, xt, t, None), xt, t)
        pred = self._call(model, xt, t, cond)
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
        self, model: GraphNetwork, x: GeometricGraph, t: Tensor, cond: GeometricGraph | None = None
    ) -> tuple[GeometricGraph, GeometricGraph]:
        """Continuous velocity field (as a graph; token channels zero) and the raw prediction."""
        pred = self._call(model, x, t, cond)
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
        prior: Prior | None = None,
    ) -> GeometricGraph:
        if not self._discrete or self.spec is None:
            return x
        k = self.token_exponent
        k0, k1 = max(t, 0.0) ** k, min(t + h, 1.0) ** k
        p = 1.0 if t + h >= 1.0 - 1e-9 else min(1.0, (k1 - k0) / max(1.0 - k0, 1e-12))
        if p >= 1.0 and self.final_tokens == "argmax":
            node = x.node.clone()
            for sl in self.spec.block_slices():
                node[..., sl] = argmax_tokens(pred.node[..., sl], x.mask, edges=False)
            edge = x.edge
            if self._edge_discrete() and x.edge is not None:
                assert pred.edge is not None
                edge = argmax_tokens(pred.edge, x.mask, edges=True)
            return x.replace(node=node, edge=edge)
        source, source_p = None, None
        eta = self.stochasticity
        if eta > 0 and p < 1.0 and prior is not None:
            # jump masses of the step: towards the posterior, and the re-noising part
            w1, w0 = p + h * eta * k0, h * eta * (1.0 - k0)
            p = min(1.0, w1 + w0)
            source = prior.sample(x, generator=generator)
            source_p = torch.full((x.batch_size,), w0 / (w1 + w0), dtype=x.dtype, device=x.device)
        jp = torch.full((x.batch_size,), p, dtype=x.dtype, device=x.device)
        node = x.node.clone()
        for sl in self.spec.block_slices():
            node[..., sl] = jump_tokens(
                x.node[..., sl],
                pred.node[..., sl] / self.temperature,
                jp,
                x.mask,
                edges=False,
                generator=generator,
                source=None if source is None else source.node[..., sl],
                source_prob=source_p,
            )
        edge = x.edge
        if self._edge_discrete() and x.edge is not None:
            assert pred.edge is not None
            edge = jump_tokens(
                x.edge,
                pred.edge / self.temperature,
                jp,
                x.mask,
                edges=True,
                generator=generator,
                source=None if source is None else source.edge,
                source_prob=source_p,
            )
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
        grid = [(k / num_steps) ** self.time_grid for k in range(num_steps + 1)]
        cond: GeometricGraph | None = None
        for k in tqdm(
            range(num_steps), disable=not self.progress, desc="flow matching", leave=False
        ):
            t0, h = grid[k], grid[k + 1] - grid[k]
            tv = torch.full((b,), t0, dtype=x.dtype, device=x.device)
            v1, pred = self._velocity(model, x, tv, cond)
            if self.self_conditioning:
                cond = self.estimate(pred, x, tv)
            last_data_step = self.prediction == "data" and k == num_steps - 1
            if self.solver == "euler" or (self.solver == "heun" and last_data_step):
                new = self._axpy(x, h, v1)
            elif self.solver == "heun":
                v2, _ = self._velocity(model, self._axpy(x, h, v1), tv + h, cond)
                avg = GeometricGraph(
                    pos=0.5 * (v1.pos + v2.pos),
                    node=0.5 * (v1.node + v2.node),
                    mask=x.mask,
                    edge=None if v1.edge is None or v2.edge is None else 0.5 * (v1.edge + v2.edge),
                )
                new = self._axpy(x, h, avg)
            else:
                v2, _ = self._velocity(model, self._axpy(x, 0.5 * h, v1), tv + 0.5 * h, cond)
                new = self._axpy(x, h, v2)
            x = self._jump(new, pred, t0, h, generator, prior)
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
