"""CanonicalGenerator: canonicalizer, prior, coupling, process and network; symmetrized sampling."""

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from jaxtyping import Int
from torch import Tensor

from symgen.canon.base import Canonicalizer
from symgen.canon.relative import (
    canonicalize_fixed_part,
    canonicalize_relative,
    point_symmetries,
)
from symgen.conditioning import Context, ContextError, FixedPart, FixedPartError, drop_context
from symgen.couplings import Coupling, IndependentCoupling
from symgen.generators.base import Generator, LossOutput, NetworkAdapter, Process
from symgen.generators.sampling import FinalTokens, SamplerOptions, SolverName
from symgen.groups import Group, Permutation, SymmetricGroup, random_permutation
from symgen.masking import masked_center, pair_mask, prefix_mask
from symgen.network import (
    GraphNetwork,
    context_width,
    supports_fixed_nodes,
    supports_self_conditioning,
)
from symgen.precision import Precision
from symgen.priors import Prior
from symgen.shapes import NodeMask
from symgen.state import GeometricGraph, is_strict_validation

__all__ = ["CanonicalGenerator", "FixedPartSampler", "size_histogram"]


@runtime_checkable
class FixedPartSampler(Protocol):
    """Draws the fixed nodes of each training graph for a completion model.

    ``sampler(batch, generator)`` returns a ``(b, n)`` boolean mask of fixed real nodes, at
    least one and fewer than all real nodes per graph (e.g. a random connected fragment of a
    molecule, :class:`~symgen.molecules.fragments.FragmentSampler`).
    """

    def __call__(
        self, batch: GeometricGraph, generator: torch.Generator | None = None
    ) -> NodeMask: ...


def _pad_nodes(x: GeometricGraph, n: int) -> GeometricGraph:
    """``x`` with padding node slots appended up to ``n``."""
    extra = n - x.max_nodes
    edge = None if x.edge is None else torch.nn.functional.pad(x.edge, (0, 0, 0, extra, 0, extra))
    return GeometricGraph.unchecked(
        torch.nn.functional.pad(x.pos, (0, 0, 0, extra)),
        torch.nn.functional.pad(x.node, (0, 0, 0, extra)),
        torch.nn.functional.pad(x.mask, (0, extra)),
        edge,
    )


def _rotate_free_nodes(
    x: GeometricGraph, fixed: GeometricGraph, generator: torch.Generator | None
) -> GeometricGraph:
    """The free nodes of each graph rotated by a uniform rotational symmetry of its centred
    fixed part (``fixed.mask`` marks the fixed nodes; nothing moves for a generic part)."""
    pos = x.pos.clone()
    for i, k in enumerate(fixed.num_nodes.tolist()):
        edge = None if fixed.edge is None else fixed.edge[i, :k, :k].cpu()
        sym = point_symmetries(fixed.pos[i, :k].cpu(), fixed.node[i, :k].cpu(), edge)
        if len(sym.rotations) == 1 and sym.axis is None and not sym.every_rotation:
            continue
        R = sym.sample(generator).to(device=pos.device, dtype=pos.dtype)
        free = x.mask[i] & ~fixed.mask[i]
        pos[i, free] = pos[i, free] @ R.T
    return x.replace(pos=pos)


def size_histogram(data: GeometricGraph) -> Int[Tensor, " m"]:
    """Counts of graph sizes: ``hist[k]`` = number of graphs in ``data`` with ``k`` real nodes.

    Examples:
        >>> x = GeometricGraph(torch.zeros(3, 2, 3), torch.zeros(3, 2, 1),
        ...                    torch.tensor([[True, True], [True, False], [True, True]]))
        >>> size_histogram(x).tolist()
        [0, 1, 2]
    """
    return torch.bincount(data.num_nodes.cpu(), minlength=data.max_nodes + 1)


def _histogram(sizes: Tensor | Sequence[int]) -> Tensor:
    hist = torch.as_tensor(sizes, dtype=torch.float64).flatten().clone()
    if hist.numel() < 2 or bool((hist < 0).any()) or float(hist[1:].sum()) <= 0:
        raise ValueError(
            "sizes must be a histogram of graph sizes (index k = count of k-node graphs)"
        )
    hist[0] = 0.0
    return hist


def _size_table(counts: Tensor | Sequence[Sequence[int]]) -> Tensor:
    table = torch.as_tensor(counts, dtype=torch.float64).clone()
    if table.dim() != 2 or bool((table < 0).any()) or not bool(torch.isfinite(table).all()):
        raise ValueError(
            "fixed_sizes must be a 2-D table of counts: [k, n] = graphs of n nodes drawn with "
            "k fixed nodes"
        )
    return table


class CanonicalGenerator(Generator, torch.nn.Module):
    """Generative model on the canonical slice, symmetrized at generation (CanonFlow).

    Training (:meth:`loss`): ``s = κ(x)`` (skipped with ``assume_canonical=True`` for a
    precomputed canonical cache) → ``x0 ~ prior`` shaped like ``s`` → ``(x0, s)`` coupled →
    ``t`` and the path sample drawn by the process → loss on ``model(x_t, t)``.

    Sampling (:meth:`sample`): sizes (template, list, or drawn from the size histogram) →
    prior → the process's sampler (solver, steps, time grid and token settings: the
    generator's defaults :attr:`sampler`, overridden per call) → ``g · s`` with ``g``
    Haar-random in ``canonicalizer.group`` (a uniform permutation is added when that group has
    no node permutations, unless ``permute_nodes=False`` for data whose node order means
    something) → positions centred. The output distribution is then exactly invariant under
    the group, whatever the network, since ``g·s`` with ``g ~ Haar`` independent of ``s`` is.

    Variants through the same pipeline:

    * equivariant baseline: ``canonicalizer=None``, a centred (invariant) prior and an
      equivariant network; samples are returned as the network produces them;
    * augmentation: ``canonicalizer=None, augment_group=G``: each training batch gets a random
      ``g ∈ G`` (e.g. ``permutation_rigid_group()``); samples are symmetrized with ``G``.

    The prior must fit the process (``process.check_prior``: e.g. discrete tokens need
    categorical noise on those channels), else ``ValueError``. The process calls the network
    through a :class:`NetworkAdapter`: with a centred prior its positional output is centred
    (and the data are centred), so positions stay zero-CoM along the whole path; and it runs at
    :attr:`precision` (``"float32"``, or ``"bfloat16"`` autocast with float32 weights, for
    training and sampling alike).

    Conditioning (``context_dim = c > 0``, the network must take ``context=`` with the same
    width): :meth:`loss` and :meth:`sample` take a per-graph
    :class:`~symgen.conditioning.Context` of ``c`` targets (``None``: no target given). Training
    masks whole contexts with probability ``context_dropout`` and single targets with
    ``target_dropout`` (:func:`~symgen.conditioning.drop_context`), so one network learns the
    conditional and the unconditional model; sampling mixes them with the classifier-free
    ``guidance`` scale (1: conditional, 0: unconditional). The context is a property of the
    whole graph: the canonicalizer and the symmetrizing group element never touch it, so the
    conditional distribution is invariant under the group exactly as the unconditional one.
    With :class:`~symgen.couplings.MinibatchOTCoupling` the noise is paired to the data without
    looking at the context, which makes the noise of a graph slightly dependent on its context
    within a batch; :class:`~symgen.couplings.IndependentCoupling` avoids this.

    Completion (``fixed_parts=sampler``, a :class:`FixedPartSampler`; needs a canonicalizer, an
    uncentred prior and a network that takes ``fixed=``): the model generates the rest of a
    graph around given nodes. Training draws each batch's fixed nodes with the sampler (or
    takes ``loss(batch, fixed=mask)``) and expresses every graph in the canonical frame and
    order of its fixed part (:func:`~symgen.canon.relative.canonicalize_relative`); the process
    holds the fixed entries and trains on the others. :meth:`sample` with ``fixed=F``
    canonicalizes each given part, generates around ``κ(F)``, maps the result back with the
    fixed part's element ``g_F`` and shuffles the generated nodes: the first ``k_i`` nodes of
    every sample are ``F`` exactly as given, and completions of ``h·F`` are distributed as
    ``h·`` completions of ``F`` for every group element ``h`` (exact when the canonicalizer
    does not flag ``F``). A fixed part with rotational symmetries of its own (a benzene ring)
    is flagged, and its frame is one of several equivalent ones: with
    ``symmetrize_fixed=True`` (for canonicalizers whose group contains the rotations and
    whose representatives are centred, as the molecular one) the generated nodes are rotated
    by a uniformly drawn symmetry of ``κ(F)``
    (:func:`~symgen.canon.relative.point_symmetries`), which makes the completions exactly
    invariant under the symmetries that keep ``F``. Sizes are drawn from
    ``p(n | k)`` of ``fixed_sizes`` (counts ``[k, n]``; default: the size histogram
    restricted to ``n > k``).

    State: besides the network weights, :meth:`state_dict` carries the size histogram, the
    prior's fitted parameters (e.g. categorical marginals), the sampler defaults and free-form
    ``metadata`` (e.g. the featurization), so that a generator rebuilt with the same
    components and loaded from a checkpoint samples without the training data.

    Examples:
        >>> from symgen.priors import CenteredGaussianPrior
        >>> from symgen.generators import FlowMatching
        >>> class Zero(torch.nn.Module):
        ...     def forward(self, x, t):
        ...         return x.replace(pos=torch.zeros_like(x.pos), node=torch.zeros_like(x.node))
        >>> prior = CenteredGaussianPrior(features=False)
        >>> gen = CanonicalGenerator(None, prior, None, FlowMatching(), Zero(),
        ...                          node_dim=1)
        >>> x = gen.sample([3, 5], steps=2, generator=torch.Generator().manual_seed(0))
        >>> x.num_nodes.tolist()
        [3, 5]
    """

    def __init__(
        self,
        canonicalizer: Canonicalizer | None,
        prior: Prior,
        coupling: Coupling | None,
        process: Process,
        model: GraphNetwork,
        *,
        assume_canonical: bool = False,
        augment_group: Group | None = None,
        symmetrize: bool = True,
        sizes: Tensor | Sequence[int] | None = None,
        node_dim: int | None = None,
        edge_dim: int | None = None,
        permute_nodes: bool = True,
        sampler: SamplerOptions | None = None,
        metadata: Mapping[str, Any] | None = None,
        precision: Precision = "float32",
        context_dim: int = 0,
        context_dropout: float = 0.1,
        target_dropout: float = 0.0,
        fixed_parts: FixedPartSampler | None = None,
        fixed_sizes: Tensor | None = None,
        fixed_clash: float = 0.0,
        symmetrize_fixed: bool = False,
    ) -> None:
        torch.nn.Module.__init__(self)
        if fixed_parts is not None:
            if canonicalizer is None:
                raise ValueError(
                    "fixed_parts needs a canonicalizer: the fixed part's canonical frame is the "
                    "frame of the whole graph"
                )
            if prior.centered:
                raise ValueError(
                    "fixed_parts needs an uncentred prior (the fixed part sets the frame), e.g. "
                    "GaussianPrior(features=False) instead of CenteredGaussianPrior"
                )
            if not supports_fixed_nodes(model):
                raise ValueError(
                    "fixed_parts needs a network that accepts fixed= (its fixed_nodes_input is "
                    "true), e.g. CanonTransformer(fixed_nodes=True)"
                )
            if getattr(process, "shortcut", 0.0) > 0:
                raise ValueError("fixed_parts does not support shortcut training")
        if fixed_clash < 0:
            raise ValueError(f"fixed_clash must be >= 0, got {fixed_clash}")
        self.fixed_parts = fixed_parts
        self.fixed_sizes: Tensor | None = None if fixed_sizes is None else _size_table(fixed_sizes)
        self.fixed_clash = float(fixed_clash)
        self.symmetrize_fixed = bool(symmetrize_fixed)
        if canonicalizer is not None and augment_group is not None:
            raise ValueError("use either a canonicalizer or augment_group, not both")
        if assume_canonical and canonicalizer is None:
            raise ValueError(
                "assume_canonical=True needs the canonicalizer (its group symmetrizes samples)"
            )
        process.check_prior(prior)
        if process.self_conditioning and not supports_self_conditioning(model):
            raise ValueError(
                f"{process!r} uses self-conditioning but the network does not accept cond= "
                "(e.g. build CanonTransformer with self_condition=True)"
            )
        if context_dim < 0:
            raise ValueError(f"context_dim must be >= 0, got {context_dim}")
        if context_width(model) != context_dim:
            raise ValueError(
                f"context_dim={context_dim} but the network takes {context_width(model)} context "
                "targets (build it with the same context_dim)"
            )
        for name, p in (("context_dropout", context_dropout), ("target_dropout", target_dropout)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p}")
        self.context_dim = int(context_dim)
        self.context_dropout = float(context_dropout)
        self.target_dropout = float(target_dropout)
        self.canonicalizer = canonicalizer
        self.prior = prior
        self.coupling = coupling if coupling is not None else IndependentCoupling()
        self.process = process
        self.model = model
        self.network = NetworkAdapter(model, center=prior.centered, precision=precision)
        self.assume_canonical = bool(assume_canonical)
        self.augment_group = augment_group
        self.symmetrize = bool(symmetrize)
        self.permute_nodes = bool(permute_nodes)
        self.node_dim = node_dim
        self.edge_dim = edge_dim
        self.size_probs: Tensor | None = None if sizes is None else _histogram(sizes)
        self.sampler = (
            sampler if sampler is not None else SamplerOptions(solver=process.default_solver)
        )
        self.metadata: dict[str, Any] = dict(metadata or {})

    @property
    def precision(self) -> Precision:
        """The network's precision: ``"float32"`` or ``"bfloat16"`` (autocast, float32 weights)."""
        return self.network.precision

    @precision.setter
    def precision(self, value: Precision) -> None:
        self.network.precision = value  # checked by the adapter

    def compile_network(self, enabled: bool = True) -> None:
        """Run the network through ``torch.compile`` (training and sampling); see
        :meth:`NetworkAdapter.use_compile`."""
        self.network.use_compile(enabled)

    @property
    def group(self) -> Group | None:
        """The group whose Haar-random element symmetrizes samples (``None`` for the baseline)."""
        if self.canonicalizer is not None:
            return self.canonicalizer.group
        return self.augment_group

    # ------------------------------------------------------------------ state
    def get_extra_state(self) -> dict[str, Any]:
        """Size histogram, prior parameters, sampler defaults and metadata (for checkpoints)."""
        return {
            "sizes": None if self.size_probs is None else self.size_probs.clone(),
            "prior": self.prior.state_dict(),
            "sampler": self.sampler.to_dict(),
            "metadata": dict(self.metadata),
            "node_dim": self.node_dim,
            "edge_dim": self.edge_dim,
            "fixed_sizes": None if self.fixed_sizes is None else self.fixed_sizes.clone(),
        }

    def set_extra_state(self, state: Any) -> None:
        """Restore :meth:`get_extra_state` (called by ``load_state_dict``)."""
        sizes = state.get("sizes")
        self.size_probs = None if sizes is None else _histogram(sizes)
        self.prior.load_state_dict(state.get("prior", {}))
        self.sampler = SamplerOptions.from_dict(state.get("sampler", {}))
        self.metadata = dict(state.get("metadata", {}))
        self.node_dim = state.get("node_dim", self.node_dim)
        self.edge_dim = state.get("edge_dim", self.edge_dim)
        table = state.get("fixed_sizes")
        self.fixed_sizes = None if table is None else _size_table(table)

    # ------------------------------------------------------------------ training
    def prepare(
        self, batch: GeometricGraph, *, generator: torch.Generator | None = None
    ) -> GeometricGraph:
        """The batch the process trains on: canonicalized, augmented or as is; centred if needed."""
        x = batch.zero_padding()
        if self.augment_group is not None:
            x = self.augment_group.act(self.augment_group.sample(x, generator=generator), x)
        elif self.canonicalizer is not None and not self.assume_canonical:
            x = self.canonicalizer.canonicalize(x).representative.zero_padding()
        if self.prior.centered:
            x = x.replace(pos=masked_center(x.pos, x.mask))
        return x

    def check_context(
        self, context: Context | None, batch_size: int, *, values: bool = True
    ) -> Context | None:
        """``context`` checked against the model and a batch of ``batch_size`` graphs
        (:class:`~symgen.conditioning.ContextError` naming the problem); ``None`` stays ``None``
        for an unconditional model and becomes the all-masked context for a conditional one."""
        if self.context_dim == 0:
            if context is not None:
                raise ContextError(
                    "this generator is unconditional (context_dim=0) but a context was given"
                )
            return None
        if context is None:
            _, device = self._network_dtype_device()
            return Context.empty(batch_size, self.context_dim, device=device)
        if not isinstance(context, Context):
            raise ContextError(f"context must be a symgen Context, got {type(context).__name__}")
        context.check(batch_size, self.context_dim, values=values)
        return context

    def loss(
        self,
        batch: GeometricGraph,
        *,
        generator: torch.Generator | None = None,
        context: Context | None = None,
        fixed: NodeMask | None = None,
    ) -> LossOutput:
        """Flow-matching / diffusion loss of the (canonicalized) batch; see the class docstring.

        ``context``: the batch's targets (conditional models); dropped at random as set by
        ``context_dropout`` and ``target_dropout``. ``fixed``: the fixed nodes of each graph
        (completion models; default: drawn by the ``fixed_parts`` sampler).
        """
        ctx = self.check_context(context, batch.batch_size, values=is_strict_validation())
        part: FixedPart | None = None
        if self.fixed_parts is None:
            if fixed is not None:
                raise FixedPartError(
                    "this generator was built without fixed_parts, so it cannot train on fixed "
                    "nodes"
                )
            x1 = self.prepare(batch, generator=generator)
        else:
            x1, part = self._relative_batch(batch, fixed, generator)
        x0 = self.prior.sample(x1, generator=generator)
        coupled = self.coupling.couple(x0, x1, generator=generator)
        extra: dict[str, Any] = {}
        if part is not None:
            extra["fixed"] = FixedPart(part.mask[coupled.target_index], coupled.x1)
        if ctx is not None:
            extra["context"] = drop_context(
                ctx.to(device=x1.device).index(coupled.target_index),
                self.context_dropout,
                self.target_dropout,
                generator=generator,
            )
        return self.process.loss(self.network, coupled.x0, coupled.x1, generator=generator, **extra)

    def _relative_batch(
        self, batch: GeometricGraph, fixed: NodeMask | None, generator: torch.Generator | None
    ) -> tuple[GeometricGraph, FixedPart]:
        """The batch in the frame and order of each graph's fixed part, and that part."""
        assert self.canonicalizer is not None and self.fixed_parts is not None
        x = batch.zero_padding()
        if fixed is None:
            fixed = self.fixed_parts(x, generator)
        if fixed.shape != x.mask.shape or fixed.dtype != torch.bool:
            raise FixedPartError(
                f"fixed must be a bool mask shaped like the batch {tuple(x.mask.shape)}, got "
                f"{fixed.dtype} {tuple(fixed.shape)}"
            )
        if bool(((fixed.to(x.device) & x.mask).sum(1) == 0).any()):
            raise FixedPartError("every graph of a completion model needs at least one fixed node")
        rel = canonicalize_relative(self.canonicalizer, x, fixed.to(x.device))
        part = FixedPart(rel.fixed, rel.representative)
        part.check(rel.representative)
        return rel.representative, part

    # ------------------------------------------------------------------ sampling
    def _network_dtype_device(self) -> tuple[torch.dtype, torch.device]:
        """The network's parameter dtype and device (defaults for a parameter-free network)."""
        ref = (
            next(iter(self.model.parameters()), None)
            if isinstance(self.model, torch.nn.Module)
            else None
        )
        if ref is None:
            return torch.get_default_dtype(), torch.device("cpu")
        return ref.dtype, ref.device

    def draw_sizes(self, num: int, *, generator: torch.Generator | None = None) -> Tensor:
        """``num`` node counts drawn from the size histogram (on ``generator``'s device).

        ``sample(num)`` draws its sizes with this; a caller that batches many samples can draw
        them first and pass them on (e.g. sorted, so that each batch pads less).

        Raises:
            ValueError: no size histogram, or ``num < 1``.
        """
        if self.size_probs is None:
            raise ValueError(
                "sample(num_samples) needs the size histogram: pass sizes= to the constructor"
            )
        if num < 1:
            raise ValueError(f"number of samples must be >= 1, got {num}")
        # the histogram lives on the CPU; a CUDA generator draws on its own device
        probs = self.size_probs if generator is None else self.size_probs.to(generator.device)
        return torch.multinomial(probs, num, replacement=True, generator=generator)

    def _template(
        self, spec: GeometricGraph | Sequence[int] | Tensor | int, generator: torch.Generator | None
    ) -> GeometricGraph:
        if isinstance(spec, GeometricGraph):
            return spec.validate().zero_padding()
        if isinstance(spec, int):
            counts = self.draw_sizes(spec, generator=generator)
        else:
            counts = torch.as_tensor(spec, dtype=torch.long).flatten()
            if counts.numel() == 0 or bool((counts < 1).any()):
                raise ValueError(f"sizes must be positive node counts, got {counts.tolist()}")
        if self.node_dim is None:
            raise ValueError(
                "sampling from sizes needs node_dim (and edge_dim if graphs have edges)"
            )
        dtype, device = self._network_dtype_device()
        b, n = counts.numel(), int(counts.max())
        mask = prefix_mask(counts.to(device), n)
        edge = (
            None
            if self.edge_dim is None
            else torch.zeros(b, n, n, self.edge_dim, dtype=dtype, device=device)
        )
        return GeometricGraph(
            pos=torch.zeros(b, n, 3, dtype=dtype, device=device),
            node=torch.zeros(b, n, self.node_dim, dtype=dtype, device=device),
            mask=mask,
            edge=edge,
        )

    @torch.no_grad()
    def sample(
        self,
        template_or_sizes: GeometricGraph | Sequence[int] | Tensor | int,
        *,
        steps: int | None = None,
        solver: SolverName | None = None,
        time_grid: float | Sequence[float] | None = None,
        temperature: float | None = None,
        stochasticity: float | None = None,
        final_tokens: FinalTokens | None = None,
        generator: torch.Generator | None = None,
        progress: bool = False,
        precision: Precision | None = None,
        symmetrize: bool | None = None,
        context: Context | None = None,
        guidance: float = 1.0,
        fixed: GeometricGraph | None = None,
    ) -> GeometricGraph:
        """Draw graphs, symmetrized and centred (completions: see ``fixed``).

        Args:
            template_or_sizes: a template batch (its mask and widths), a list of sizes, or a
                number of samples with sizes drawn from the size histogram.
            steps, solver, time_grid, temperature, stochasticity, final_tokens: sampler
                settings for this call (``None``: the generator's :attr:`sampler` defaults);
                see :class:`~symgen.generators.SamplerOptions`.
            generator: source of all randomness.
            progress: show a progress bar over the solver steps.
            precision: the network's precision for this call (default: :attr:`precision`).
            symmetrize: ``False`` returns the raw canonical-slice samples (for diagnostics).
            context: per-graph targets, one row per sample (conditional models; ``None``:
                unconditional).
            guidance: classifier-free guidance scale ``w``: outputs ``u + w (c - u)`` from the
                conditional ``c`` and unconditional ``u`` predictions (1: conditional only).
            fixed: completion models only: the given part of each sample, one graph per
                sample (its nodes' positions, features and the edges among them). Sample
                ``i`` starts with these ``k_i`` nodes unchanged and in place, followed by the
                generated nodes in random order; positions are not centred. With a number of
                samples it must equal ``fixed.batch_size``, and sizes are drawn from
                ``p(n | k)``; given sizes must exceed ``k_i``.
        """
        options = self.sampler.replace(
            steps=steps,
            solver=solver,
            time_grid=time_grid,
            temperature=temperature,
            stochasticity=stochasticity,
            final_tokens=final_tokens,
        )
        if self.fixed_parts is not None:
            if fixed is None:
                raise FixedPartError(
                    "this generator completes fixed parts: pass fixed= (one given part per sample)"
                )
            template_or_sizes = self._completion_sizes(template_or_sizes, fixed, generator)
        elif fixed is not None:
            raise FixedPartError(
                "this generator was built without fixed_parts, so it cannot complete a fixed part"
            )
        template = self._template(template_or_sizes, generator)
        ctx = self.check_context(context, template.batch_size)
        if ctx is not None:
            ctx = ctx.to(device=template.device)
        if not math.isfinite(guidance):
            raise ValueError(f"guidance must be a finite number, got {guidance}")
        default = self.precision
        self.precision = default if precision is None else precision
        try:
            extra: dict[str, Any] = {} if ctx is None else {"context": ctx, "guidance": guidance}
            if fixed is not None:
                return self._complete(fixed, template, options, generator, progress, extra)
            x = self.process.sample(
                self.network,
                self.prior,
                template,
                options,
                generator=generator,
                progress=progress,
                **extra,
            )
        finally:
            self.precision = default
        do_sym = self.symmetrize if symmetrize is None else symmetrize
        group = self.group
        if do_sym and group is not None:
            x = group.act(group.sample(x, generator=generator), x)
            if self.permute_nodes and not group.permutes_nodes:
                x = SymmetricGroup().act(
                    Permutation(random_permutation(x.mask, generator=generator)), x
                )
        return x.replace(pos=masked_center(x.pos, x.mask)).zero_padding()

    # ------------------------------------------------------------------ completion
    def _completion_sizes(
        self,
        spec: GeometricGraph | Sequence[int] | Tensor | int,
        fixed: GeometricGraph,
        generator: torch.Generator | None,
    ) -> Tensor:
        """Sizes of the completions of ``fixed``: checked, or drawn from ``p(n | k)``."""
        if not isinstance(fixed, GeometricGraph):
            raise FixedPartError(f"fixed must be a GeometricGraph, got {type(fixed).__name__}")
        k = fixed.num_nodes.cpu()
        b = fixed.batch_size
        if isinstance(spec, GeometricGraph):
            sizes = spec.num_nodes.cpu()
        elif isinstance(spec, int):
            if spec != b:
                raise FixedPartError(
                    f"asked for {spec} samples but gave {b} fixed parts (one per sample)"
                )
            sizes = torch.stack([self._draw_size(int(ki), generator) for ki in k])
        else:
            sizes = torch.as_tensor(spec, dtype=torch.long).flatten().cpu()
        if sizes.numel() != b:
            raise FixedPartError(f"{sizes.numel()} sizes for {b} fixed parts (one per sample)")
        small = (sizes <= k).nonzero().flatten()
        if len(small):
            i = int(small[0])
            raise FixedPartError(
                f"fixed part {i} has {int(k[i])} nodes but its sample has {int(sizes[i])}: the "
                "fixed part must be smaller than the graph"
            )
        return sizes

    def _draw_size(self, k: int, generator: torch.Generator | None) -> Tensor:
        """One size ``n > k`` from ``p(n | k)`` (the table's row, else the size histogram)."""
        row = None
        if self.fixed_sizes is not None and k < self.fixed_sizes.shape[0]:
            row = self.fixed_sizes[k].clone()
        if row is None or float(row[k + 1 :].sum()) <= 0:
            if self.size_probs is None:
                raise FixedPartError(
                    "drawing sizes needs the size histogram or fixed_sizes: pass sizes"
                )
            row = self.size_probs.clone()
        row[: k + 1] = 0.0
        if float(row.sum()) <= 0:
            raise FixedPartError(
                f"no training graph had more than {k} nodes: pass the sizes of the completions"
            )
        probs = row if generator is None else row.to(generator.device)
        return torch.multinomial(probs, 1, generator=generator).cpu()[0]

    def _complete(
        self,
        fixed: GeometricGraph,
        template: GeometricGraph,
        options: SamplerOptions,
        generator: torch.Generator | None,
        progress: bool,
        extra: dict[str, Any],
    ) -> GeometricGraph:
        """Generate around each canonicalized fixed part and map back with its element."""
        assert self.canonicalizer is not None
        given = fixed.to(device=template.device, dtype=template.dtype)
        if given.max_nodes > template.max_nodes:
            given = given.trim()
        if given.max_nodes < template.max_nodes:
            given = _pad_nodes(given, template.max_nodes)
        given = given.validate().zero_padding()
        k = given.num_nodes
        self._check_fixed(given, template)
        canon = canonicalize_fixed_part(self.canonicalizer, given, k)
        rep = canon.representative
        edge = template.edge if rep.edge is None else rep.edge
        start = GeometricGraph.unchecked(rep.pos, rep.node, template.mask, edge)
        part = FixedPart(rep.mask, start)
        x = self.process.sample(
            self.network,
            self.prior,
            start,
            options,
            generator=generator,
            progress=progress,
            fixed=part,
            **extra,
        )
        if self.symmetrize_fixed:
            x = _rotate_free_nodes(x, rep, generator)
        group = self.canonicalizer.group
        x = group.act(canon.element, x)
        # the given values exactly, not their round trip through the frame
        x = FixedPart(given.mask, given.replace(mask=template.mask)).clamp(x)
        keys = torch.rand(x.mask.shape, generator=generator, dtype=torch.float64, device=x.device)
        slots = torch.arange(x.max_nodes, device=x.device, dtype=torch.float64)
        keys = torch.where(given.mask, slots - x.max_nodes - 1.0, keys)  # fixed: first, in order
        keys = torch.where(x.mask, keys, 2.0 + slots)  # padding: last, in place
        x = SymmetricGroup().act(Permutation(torch.argsort(keys, dim=1)), x)
        return x.zero_padding()

    def _check_fixed(self, given: GeometricGraph, template: GeometricGraph) -> None:
        """The fixed parts fit the samples (widths, sizes), and no two fixed nodes are closer
        than ``fixed_clash``."""
        FixedPart(given.mask, given).check(template)
        if self.fixed_clash > 0:
            d = torch.cdist(given.pos.double(), given.pos.double())
            pairs = pair_mask(given.mask)
            d = torch.where(pairs, d, torch.full_like(d, math.inf))
            closest = d.flatten(1).min(1).values
            bad = (closest < self.fixed_clash).nonzero().flatten()
            if len(bad):
                i = int(bad[0])
                raise FixedPartError(
                    f"fixed part {i} has two nodes {float(closest[i]):.3g} apart, closer than "
                    f"fixed_clash={self.fixed_clash:g}: its atoms clash"
                )

    def __repr__(self) -> str:
        return (
            f"CanonicalGenerator(canonicalizer={self.canonicalizer!r}, prior={self.prior!r}, "
            f"coupling={self.coupling!r}, process={self.process!r})"
        )
