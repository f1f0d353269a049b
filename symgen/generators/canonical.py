"""CanonicalGenerator: canonicalizer, prior, coupling, process and network; symmetrized sampling."""

from collections.abc import Sequence

import torch
from jaxtyping import Int
from torch import Tensor

from symgen.canon.base import Canonicalizer
from symgen.couplings import Coupling, IndependentCoupling
from symgen.generators.base import Generator, LossOutput, Process, ZeroCoMNetwork
from symgen.generators.flow_matching import FlowMatching
from symgen.groups import DirectProduct, Group, Permutation, SymmetricGroup, random_permutation
from symgen.network import GraphNetwork, supports_self_conditioning
from symgen.priors import (
    AlignedPrior,
    CategoricalPrior,
    GaussianPrior,
    Prior,
    ProductPrior,
    center_positions,
)
from symgen.state import GeometricGraph, prefix_mask

__all__ = ["CanonicalGenerator", "size_histogram"]


def size_histogram(data: GeometricGraph) -> Int[Tensor, " m"]:
    """Counts of graph sizes: ``hist[k]`` = number of graphs in ``data`` with ``k`` real nodes.

    Examples:
        >>> x = GeometricGraph(torch.zeros(3, 2, 3), torch.zeros(3, 2, 1),
        ...                    torch.tensor([[True, True], [True, False], [True, True]]))
        >>> size_histogram(x).tolist()
        [0, 1, 2]
    """
    return torch.bincount(data.num_nodes.cpu(), minlength=data.max_nodes + 1)


def _check_channels(prior: Prior, process: Process) -> None:
    """Reject prior/process pairs whose categorical channels do not fit together."""
    inner = prior.base if isinstance(prior, AlignedPrior) else prior
    features = inner.features if isinstance(inner, ProductPrior) else inner
    features = features.base if isinstance(features, AlignedPrior) else features
    spec = getattr(process, "spec", None)
    if spec is None:
        return
    discrete = isinstance(process, FlowMatching) and process.categorical == "discrete"
    if discrete and not isinstance(features, CategoricalPrior):
        raise ValueError(
            "discrete flow matching needs a CategoricalPrior for the node/edge channels, e.g. "
            "ProductPrior(CenteredGaussianPrior(features=False), CategoricalPrior(spec, 'masked'))"
        )
    gaussian = isinstance(features, GaussianPrior) and features.features
    if not discrete and not gaussian:
        raise ValueError(
            f"{type(process).__name__} treats categorical channels as continuous one-hot vectors "
            "(relaxation): use a Gaussian prior on features, e.g. CenteredGaussianPrior()"
        )


def _has_permutations(group: Group) -> bool:
    if isinstance(group, SymmetricGroup):
        return True
    return isinstance(group, DirectProduct) and any(_has_permutations(g) for g in group.factors)


class CanonicalGenerator(Generator, torch.nn.Module):
    """Generative model on the canonical slice, symmetrized at generation (CanonFlow).

    Training (:meth:`loss`): ``s = κ(x)`` (skipped with ``assume_canonical=True`` for a
    precomputed canonical cache) → ``x0 ~ prior`` shaped like ``s`` → ``(x0, s)`` coupled →
    ``t`` and the path sample drawn by the process → loss on ``model(x_t, t)``.

    Sampling (:meth:`sample`): sizes (template, list, or drawn from the size histogram) →
    prior → ``num_steps`` solver steps → ``g · s`` with ``g`` Haar-random in
    ``canonicalizer.group`` (a uniform permutation is added when that group has no S_n
    factor, unless ``permute_nodes=False`` for data whose node order means something) →
    positions centred. The output distribution is then exactly invariant under the
    group, whatever the network, since ``g·s`` with ``g ~ Haar`` independent of ``s`` is.

    Variants through the same pipeline:

    * equivariant baseline: ``canonicalizer=None``, a centred (invariant) prior and an
      equivariant network; samples are returned as the network produces them;
    * augmentation: ``canonicalizer=None, augment_group=G``: each training batch gets a random
      ``g ∈ G`` (e.g. ``permutation_rigid_group()``); samples are symmetrized with ``G``.

    Channels must fit the process: discrete flow matching needs a
    :class:`~symgen.priors.CategoricalPrior` on the categorical channels (inside a
    :class:`~symgen.priors.ProductPrior`), diffusion and the continuous relaxation a Gaussian
    prior with ``features=True``; other pairs raise ``ValueError``.

    With a centred prior the network is wrapped in :class:`ZeroCoMNetwork` and the data are
    centred, so positions stay zero-CoM along the whole path.

    Examples:
        >>> from symgen.priors import CenteredGaussianPrior
        >>> from symgen.generators import FlowMatching
        >>> class Zero(torch.nn.Module):
        ...     def forward(self, x, t):
        ...         return x.replace(pos=torch.zeros_like(x.pos), node=torch.zeros_like(x.node))
        >>> prior = CenteredGaussianPrior(features=False)
        >>> gen = CanonicalGenerator(None, prior, None, FlowMatching(), Zero(),
        ...                          node_dim=1)
        >>> x = gen.sample([3, 5], num_steps=2, generator=torch.Generator().manual_seed(0))
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
    ) -> None:
        torch.nn.Module.__init__(self)
        if canonicalizer is not None and augment_group is not None:
            raise ValueError("use either a canonicalizer or augment_group, not both")
        if assume_canonical and canonicalizer is None:
            raise ValueError(
                "assume_canonical=True needs the canonicalizer (its group symmetrizes samples)"
            )
        _check_channels(prior, process)
        if getattr(process, "self_conditioning", False) and not supports_self_conditioning(model):
            raise ValueError(
                f"{process!r} uses self-conditioning but the network does not accept cond= "
                "(e.g. build CanonTransformer with self_condition=True)"
            )
        self.canonicalizer = canonicalizer
        self.prior = prior
        self.coupling = coupling if coupling is not None else IndependentCoupling()
        self.process = process
        self.model = model
        self.network: GraphNetwork = ZeroCoMNetwork(model) if prior.centered else model
        self.assume_canonical = bool(assume_canonical)
        self.augment_group = augment_group
        self.symmetrize = bool(symmetrize)
        self.permute_nodes = bool(permute_nodes)
        self.node_dim = node_dim
        self.edge_dim = edge_dim
        hist = None
        if sizes is not None:
            hist = torch.as_tensor(sizes, dtype=torch.float64).flatten()
            if hist.numel() < 2 or bool((hist < 0).any()) or float(hist[1:].sum()) <= 0:
                raise ValueError(
                    "sizes must be a histogram of graph sizes (index k = count of k-node graphs)"
                )
            hist[0] = 0.0
        self.size_probs = hist

    @property
    def group(self) -> Group | None:
        """The group whose Haar-random element symmetrizes samples (``None`` for the baseline)."""
        if self.canonicalizer is not None:
            return self.canonicalizer.group
        return self.augment_group

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
            x = x.replace(pos=center_positions(x.pos, x.mask))
        return x

    def loss(
        self, batch: GeometricGraph, *, generator: torch.Generator | None = None
    ) -> LossOutput:
        """Flow-matching / diffusion loss of the (canonicalized) batch; see the class docstring."""
        x1 = self.prepare(batch, generator=generator)
        x0 = self.prior.sample(x1, generator=generator)
        coupled = self.coupling.couple(x0, x1, generator=generator)
        return self.process.loss(self.network, coupled.x0, coupled.x1, generator=generator)

    # ------------------------------------------------------------------ sampling
    def _template(
        self, spec: GeometricGraph | Sequence[int] | Tensor | int, generator: torch.Generator | None
    ) -> GeometricGraph:
        if isinstance(spec, GeometricGraph):
            return spec.zero_padding()
        if isinstance(spec, int):
            if self.size_probs is None:
                raise ValueError(
                    "sample(num_samples) needs the size histogram: pass sizes= to the constructor"
                )
            if spec < 1:
                raise ValueError(f"number of samples must be >= 1, got {spec}")
            counts = torch.multinomial(self.size_probs, spec, replacement=True, generator=generator)
        else:
            counts = torch.as_tensor(spec, dtype=torch.long).flatten()
            if counts.numel() == 0 or bool((counts < 1).any()):
                raise ValueError(f"sizes must be positive node counts, got {counts.tolist()}")
        if self.node_dim is None:
            raise ValueError(
                "sampling from sizes needs node_dim (and edge_dim if graphs have edges)"
            )
        ref = (
            next(iter(self.model.parameters()), None)
            if isinstance(self.model, torch.nn.Module)
            else None
        )
        dtype = ref.dtype if ref is not None else torch.get_default_dtype()
        device = ref.device if ref is not None else torch.device("cpu")
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
        num_steps: int,
        generator: torch.Generator | None = None,
        symmetrize: bool | None = None,
    ) -> GeometricGraph:
        """Draw graphs: a template batch (its mask and widths), a list of sizes, or a number of
        samples with sizes from the histogram; ``num_steps`` solver steps; symmetrized and centred.

        ``symmetrize=False`` returns the raw canonical-slice samples (for diagnostics).
        """
        template = self._template(template_or_sizes, generator)
        x = self.process.sample(
            self.network, self.prior, template, num_steps=num_steps, generator=generator
        )
        do_sym = self.symmetrize if symmetrize is None else symmetrize
        group = self.group
        if do_sym and group is not None:
            x = group.act(group.sample(x, generator=generator), x)
            if self.permute_nodes and not _has_permutations(group):
                x = SymmetricGroup().act(
                    Permutation(random_permutation(x.mask, generator=generator)), x
                )
        return x.replace(pos=center_positions(x.pos, x.mask)).zero_padding()

    def __repr__(self) -> str:
        return (
            f"CanonicalGenerator(canonicalizer={self.canonicalizer!r}, prior={self.prior!r}, "
            f"coupling={self.coupling!r}, process={self.process!r})"
        )
