"""Graph datasets for training: ragged tensor storage, size-bucketed batches, canonical caches.

* :class:`GraphSource` — what the training loop reads: graph sizes and padded batches by index.
  A :class:`GraphStore` is one; so is any padded :class:`~symgen.state.GeometricGraph` wrapped
  in :class:`PaddedGraphs` (a user's own tensors).
* :class:`GraphStore` — ``N`` graphs stored back to back as tensors (nodes in ``(A, ·)``
  arrays, edges as per-graph ``k × k`` blocks), with optional per-graph and per-node extras;
  validated once when built or loaded, then batched without further checks; saved atomically.
* :class:`GraphsWithContext` — a source whose graphs carry per-graph targets
  (:class:`~symgen.conditioning.Context`), which the training loop passes to a conditional
  generator's loss; :func:`batch_context` reads them from any source that has them.
* :func:`canonicalize_store` — every graph mapped once through a canonicalizer, as tensors:
  the representatives, the group elements (the group's own tensor description), the margins
  and flags.
* :func:`load_or_build` — a store cached on disk under a key that covers everything that
  determines it (data version, featurization, the canonicalizer's full configuration), so a
  changed setting rebuilds instead of reusing a stale file.
* :class:`SizeBucketBatcher` — random, complete epochs whose batches hold graphs of similar
  size (less padding).
"""

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from symgen.canon.base import Canonicalizer
from symgen.conditioning import Context, ContextError
from symgen.files import atomic_write
from symgen.groups import Group
from symgen.masking import pair_mask, prefix_mask
from symgen.state import GeometricGraph

__all__ = [
    "GraphSource",
    "PaddedGraphs",
    "GraphsWithContext",
    "batch_context",
    "GraphStore",
    "STORE_FORMAT",
    "canonicalize_store",
    "cache_key",
    "load_or_build",
    "SizeBucketBatcher",
    "padding_fraction",
]

#: Format tag of saved :class:`GraphStore` files; bump when the layout changes.
STORE_FORMAT = "symgen-graph-store/1"


@runtime_checkable
class GraphSource(Protocol):
    """A dataset of graphs the training loop can batch.

    ``num_nodes`` is a ``(N,)`` int64 CPU tensor of graph sizes; ``batch(indices)`` returns
    the graphs ``indices`` as one padded :class:`GeometricGraph` (padded to its largest
    member).
    """

    @property
    def num_nodes(self) -> Tensor: ...

    def __len__(self) -> int: ...

    def batch(self, indices: Tensor) -> GeometricGraph: ...


class PaddedGraphs:
    """A padded :class:`GeometricGraph` of a whole dataset, as a :class:`GraphSource`.

    Examples:
        >>> x = GeometricGraph(torch.zeros(3, 4, 3), torch.zeros(3, 4, 1),
        ...                    prefix_mask(torch.tensor([2, 4, 1]), 4))
        >>> src = PaddedGraphs(x)
        >>> len(src), src.batch(torch.tensor([0, 2])).max_nodes
        (3, 2)
    """

    def __init__(self, graphs: GeometricGraph) -> None:
        self.graphs = graphs.validate()
        self._num_nodes = graphs.num_nodes.cpu()

    @property
    def num_nodes(self) -> Tensor:
        return self._num_nodes

    def __len__(self) -> int:
        return self.graphs.batch_size

    def batch(self, indices: Tensor) -> GeometricGraph:
        idx = torch.as_tensor(indices, dtype=torch.long, device=self.graphs.device)
        return self.graphs.index(idx).trim()


class GraphsWithContext:
    """A :class:`GraphSource` whose graphs carry per-graph targets for conditional training.

    ``batch(indices)`` is the wrapped source's; ``context(indices)`` returns the targets of the
    same graphs as a :class:`~symgen.conditioning.Context` (``mask`` marks which targets are
    known; default all). The training loop passes it to the generator's ``loss``.

    Args:
        source: the graphs (any :class:`GraphSource`, or a padded :class:`GeometricGraph`).
        values: ``(N, c)`` target values, one row per graph, as the model sees them (normalized).
        mask: ``(N, c)`` boolean, ``True`` where a target is known (default: all).

    Raises:
        ContextError: rows that do not match the number of graphs, or non-finite known values.

    Examples:
        >>> x = GeometricGraph(torch.zeros(3, 2, 3), torch.zeros(3, 2, 1),
        ...                    torch.ones(3, 2, dtype=torch.bool))
        >>> src = GraphsWithContext(x, torch.tensor([[0.5], [1.5], [2.5]]))
        >>> src.context(torch.tensor([2, 0])).values.tolist()
        [[2.5], [0.5]]
    """

    def __init__(
        self,
        source: "GraphSource | GeometricGraph",
        values: Tensor,
        mask: Tensor | None = None,
    ) -> None:
        self.source = PaddedGraphs(source) if isinstance(source, GeometricGraph) else source
        values = torch.as_tensor(values).cpu()
        if not values.is_floating_point():
            values = values.to(torch.get_default_dtype())
        mask = torch.ones_like(values, dtype=torch.bool) if mask is None else mask.cpu()
        ctx = Context(values, mask)  # checks shapes and dtypes
        if ctx.batch_size != len(self.source):
            raise ContextError(
                f"{ctx.batch_size} context rows for {len(self.source)} graphs (one row per graph)"
            )
        ctx.check(ctx.batch_size, ctx.width)
        self._context = ctx

    @property
    def width(self) -> int:
        """Number of targets per graph."""
        return self._context.width

    @property
    def num_nodes(self) -> Tensor:
        return self.source.num_nodes

    def __len__(self) -> int:
        return len(self.source)

    def batch(self, indices: Tensor) -> GeometricGraph:
        return self.source.batch(indices)

    def context(self, indices: Tensor) -> Context:
        """The targets of the graphs ``indices``, in that order."""
        return self._context.index(torch.as_tensor(indices, dtype=torch.long).cpu())


def batch_context(source: object, indices: Tensor) -> Context | None:
    """``source.context(indices)`` for a source with targets (e.g. :class:`GraphsWithContext`),
    else ``None``."""
    read = getattr(source, "context", None)
    return read(indices) if callable(read) else None


def _ragged_index(offsets: Tensor, counts: Tensor, indices: Tensor) -> tuple[Tensor, Tensor]:
    """Flat indices of the segments ``indices`` (starting at ``offsets``, ``counts`` long) and
    each element's position inside its segment."""
    total = int(counts.sum())
    starts = torch.cumsum(counts, 0) - counts
    within = torch.arange(total) - torch.repeat_interleave(starts, counts)
    return torch.repeat_interleave(offsets[indices], counts) + within, within


def _floating(t: Tensor | None) -> bool:
    return t is not None and t.is_floating_point()


@dataclass(eq=False)
class GraphStore:
    """``N`` graphs as ragged tensors: nodes back to back, edges as per-graph ``k × k`` blocks.

    Attributes:
        pos: ``(A, 3)`` positions of all nodes (``A = Σ k_i``).
        node: ``(A, f)`` node features, in any dtype (one-hot features can be stored as
            ``uint8``); batches cast them to the positions' dtype.
        node_offsets: ``(N + 1,)`` int64; graph ``i`` owns nodes ``[off[i], off[i + 1])``.
        edge: ``(P, e)`` edge features, graph ``i``'s ``k_i × k_i`` block row-major
            (``P = Σ k_i²``), or ``None``.
        graph_data: per-graph extras, each ``(N, ...)`` (e.g. group elements, margins).
        node_data: per-node extras, each ``(A, ...)`` (e.g. node permutations).
        metadata: JSON-ready provenance, saved alongside.

    Construction checks the layout and that float values are finite, once; :meth:`batch` then
    builds padded batches without checking values again.

    Examples:
        >>> x = GeometricGraph(torch.randn(2, 3, 3), torch.ones(2, 3, 1),
        ...                    prefix_mask(torch.tensor([3, 2]), 3), torch.zeros(2, 3, 3, 2))
        >>> store = GraphStore.from_graphs([x])
        >>> store.num_nodes.tolist(), store.edge.shape
        ([3, 2], torch.Size([13, 2]))
        >>> torch.equal(store.batch(torch.tensor([0, 1])).pos, x.zero_padding().pos)
        True
    """

    pos: Tensor
    node: Tensor
    node_offsets: Tensor
    edge: Tensor | None = None
    graph_data: dict[str, Tensor] = field(default_factory=dict)
    node_data: dict[str, Tensor] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        off = self.node_offsets = torch.as_tensor(self.node_offsets, dtype=torch.long)
        if off.ndim != 1 or len(off) < 2 or int(off[0]) != 0:
            raise ValueError("node_offsets must be (N + 1,) starting at 0 with N >= 1")
        counts = off.diff()
        if bool((counts < 1).any()):
            raise ValueError("every graph needs at least one node (node_offsets must increase)")
        a, n = int(off[-1]), len(off) - 1
        if self.pos.shape != (a, 3) or not self.pos.is_floating_point():
            raise ValueError(f"pos must be a float ({a}, 3) tensor, got {tuple(self.pos.shape)}")
        if self.node.ndim != 2 or self.node.shape[0] != a:
            raise ValueError(f"node must be ({a}, f), got {tuple(self.node.shape)}")
        self._edge_offsets = torch.cat([torch.zeros(1, dtype=torch.long), (counts**2).cumsum(0)])
        if self.edge is not None:
            p = int(self._edge_offsets[-1])
            if self.edge.ndim != 2 or self.edge.shape[0] != p:
                raise ValueError(f"edge must be (Σ k², e) = ({p}, e), got {tuple(self.edge.shape)}")
        for name, value in self.graph_data.items():
            if value.shape[:1] != (n,):
                raise ValueError(f"graph_data[{name!r}] must have {n} rows")
        for name, value in self.node_data.items():
            if value.shape[:1] != (a,):
                raise ValueError(f"node_data[{name!r}] must have {a} rows")
        for name, value in (("pos", self.pos), ("node", self.node), ("edge", self.edge)):
            if _floating(value) and not bool(torch.isfinite(value).all()):  # type: ignore[arg-type]
                raise ValueError(f"{name} contains NaN or inf")

    # ------------------------------------------------------------------ reading
    @property
    def num_nodes(self) -> Tensor:
        """``(N,)`` int64 graph sizes."""
        return self.node_offsets.diff()

    def __len__(self) -> int:
        return len(self.node_offsets) - 1

    def batch(
        self,
        indices: Tensor | Sequence[int] | np.ndarray,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> GeometricGraph:
        """Graphs ``indices`` as one padded batch (floats in ``dtype``, default: ``pos``'s)."""
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long).reshape(-1)
        if idx.numel() == 0:
            raise ValueError("cannot build an empty batch")
        dtype = self.pos.dtype if dtype is None else dtype
        k = self.num_nodes[idx]
        b, n = len(idx), int(k.max())
        src, within = _ragged_index(self.node_offsets, k, idx)
        rows = torch.repeat_interleave(torch.arange(b), k)
        pos = torch.zeros(b, n, 3, dtype=dtype)
        pos[rows, within] = self.pos[src].to(dtype)
        node = torch.zeros(b, n, self.node.shape[1], dtype=dtype)
        node[rows, within] = self.node[src].to(dtype)
        edge = None
        if self.edge is not None:
            kk = k * k
            esrc, ewithin = _ragged_index(self._edge_offsets, kk, idx)
            erows = torch.repeat_interleave(torch.arange(b), kk)
            kr = torch.repeat_interleave(k, kk)
            edge = torch.zeros(b, n, n, self.edge.shape[1], dtype=dtype)
            edge[erows, ewithin // kr, ewithin % kr] = self.edge[esrc].to(dtype)
        out = GeometricGraph.unchecked(pos, node, prefix_mask(k, n), edge)
        return out if device is None else out.to(device=device)

    def elements(self, indices: Tensor | Sequence[int] | np.ndarray, group: Group) -> Any:
        """The stored group elements of graphs ``indices`` (see :func:`canonicalize_store`).

        Components are read from ``graph_data`` and, for the group's node-indexed components,
        ``node_data``; padding slots take the identity's values. With ``rep = batch(indices)``
        of a canonicalized store, ``group.act(elements, rep)`` is the original batch.
        """
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long).reshape(-1)
        x = self.batch(idx)
        tensors = group.element_to_tensors(group.identity(x))
        k = self.num_nodes[idx]
        src, within = _ragged_index(self.node_offsets, k, idx)
        rows = torch.repeat_interleave(torch.arange(len(idx)), k)
        for name, template in tensors.items():
            if name in group.node_indexed:
                value = template.clone()
                value[rows, within] = self.node_data[name][src].to(value.dtype)
            else:
                value = self.graph_data[name][idx].to(template.dtype)
            tensors[name] = value
        return group.element_from_tensors(tensors, x)

    def subset(self, indices: Tensor | Sequence[int] | np.ndarray) -> "GraphStore":
        """A new store with the graphs ``indices`` (in that order)."""
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long).reshape(-1)
        k = self.num_nodes[idx]
        src, _ = _ragged_index(self.node_offsets, k, idx)
        edge = None
        if self.edge is not None:
            esrc, _ = _ragged_index(self._edge_offsets, k * k, idx)
            edge = self.edge[esrc]
        return GraphStore(
            pos=self.pos[src],
            node=self.node[src],
            node_offsets=torch.cat([torch.zeros(1, dtype=torch.long), k.cumsum(0)]),
            edge=edge,
            graph_data={name: v[idx] for name, v in self.graph_data.items()},
            node_data={name: v[src] for name, v in self.node_data.items()},
            metadata=dict(self.metadata),
        )

    # ------------------------------------------------------------------ building
    @classmethod
    def from_graphs(
        cls,
        batches: Iterable[GeometricGraph],
        *,
        graph_data: Iterable[Mapping[str, Tensor]] | None = None,
        node_data: Iterable[Mapping[str, Tensor]] | None = None,
        node_dtype: torch.dtype | None = None,
        edge_dtype: torch.dtype | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> "GraphStore":
        """Concatenate padded batches (in order) into one store.

        Args:
            batches: padded batches with the same feature widths.
            graph_data: per batch, per-graph extras ``(b, ...)``.
            node_data: per batch, per-node extras ``(b, n, ...)`` (node axis second).
            node_dtype: storage dtype of node features (default: as given).
            edge_dtype: storage dtype of edge features (default: as given).
            metadata: provenance.
        """
        pos, node, edge, counts = [], [], [], []
        gdata: dict[str, list[Tensor]] = {}
        ndata: dict[str, list[Tensor]] = {}
        extras_g = iter(graph_data) if graph_data is not None else None
        extras_n = iter(node_data) if node_data is not None else None
        for x in batches:
            m = x.mask.cpu()
            pos.append(x.pos.detach().cpu()[m])
            node.append(x.node.detach().cpu()[m].to(node_dtype or x.node.dtype))
            if x.edge is not None:
                pm = pair_mask(m, self_loops=True)
                edge.append(x.edge.detach().cpu()[pm].to(edge_dtype or x.edge.dtype))
            counts.append(m.sum(-1))
            if extras_g is not None:
                for name, v in next(extras_g).items():
                    gdata.setdefault(name, []).append(v.detach().cpu())
            if extras_n is not None:
                for name, v in next(extras_n).items():
                    ndata.setdefault(name, []).append(v.detach().cpu()[m])
        if not counts:
            raise ValueError("GraphStore.from_graphs got no batches")
        if edge and len(edge) != len(counts):
            raise ValueError("either every batch has edges or none does")
        k = torch.cat(counts)
        return cls(
            pos=torch.cat(pos),
            node=torch.cat(node),
            node_offsets=torch.cat([torch.zeros(1, dtype=torch.long), k.cumsum(0)]),
            edge=torch.cat(edge) if edge else None,
            graph_data={name: torch.cat(v) for name, v in gdata.items()},
            node_data={name: torch.cat(v) for name, v in ndata.items()},
            metadata=dict(metadata or {}),
        )

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the store atomically (``torch.save`` of plain tensors, format tag included)."""
        payload = {
            "format": STORE_FORMAT,
            "pos": self.pos,
            "node": self.node,
            "node_offsets": self.node_offsets,
            "edge": self.edge,
            "graph_data": self.graph_data,
            "node_data": self.node_data,
            "metadata": json.dumps(self.metadata, sort_keys=True, default=str),
        }
        atomic_write(path, lambda f: torch.save(payload, f))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "GraphStore":
        """Read a file written by :meth:`save`.

        Raises:
            FileNotFoundError: no such file.
            ValueError: not a graph store, another format version, or inconsistent contents.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no graph store at {path}")
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # a truncated or foreign file: name it, keep the cause
            raise ValueError(f"{path} is not a readable graph store: {err}") from err
        if not isinstance(raw, dict) or raw.get("format") != STORE_FORMAT:
            found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
            raise ValueError(f"{path} has format {found!r}, expected {STORE_FORMAT!r}")
        return cls(
            pos=raw["pos"],
            node=raw["node"],
            node_offsets=raw["node_offsets"],
            edge=raw["edge"],
            graph_data=dict(raw["graph_data"]),
            node_data=dict(raw["node_data"]),
            metadata=json.loads(raw["metadata"]),
        )


# ---------------------------------------------------------------------------- canonical cache
def canonicalize_store(
    store: GraphStore,
    canonicalizer: Canonicalizer,
    *,
    batch_size: int = 1024,
    progress: bool = True,
    dtype: torch.dtype | None = None,
) -> GraphStore:
    """Every graph of ``store`` through ``canonicalizer`` (in float64), kept as tensors.

    The result holds the representatives (same order, node and edge features in the input's
    storage dtypes: canonicalization only permutes them), and as extras the canonicalizer's
    ``margin`` and ``flagged`` per graph and the group element in the group's own tensor
    description (:meth:`~symgen.groups.Group.element_to_tensors`; node-indexed components such
    as a permutation are stored per node). ``metadata["canonicalizer"]`` is its config.
    Representative positions are stored in ``dtype`` (default: the input's).

    Examples:
        >>> from symgen.canon import CentroidCanonicalizer
        >>> x = GeometricGraph(torch.ones(1, 2, 3), torch.zeros(1, 2, 1),
        ...                    torch.ones(1, 2, dtype=torch.bool))
        >>> out = canonicalize_store(GraphStore.from_graphs([x]), CentroidCanonicalizer(),
        ...                          progress=False)
        >>> out.pos.abs().max().item(), sorted(out.graph_data)
        (0.0, ['flagged', 'margin', 'translation'])
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    group = canonicalizer.group
    order = torch.argsort(store.num_nodes, stable=True)
    chunks = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    reps, gdata, ndata = [], [], []
    for idx in tqdm(chunks, desc="canonicalizing", disable=not progress, unit="batch"):
        x = store.batch(idx, dtype=torch.float64)
        out = canonicalizer.canonicalize(x)
        rep = out.representative
        reps.append(rep.to(dtype=store.pos.dtype if dtype is None else dtype))
        tensors = group.element_to_tensors(out.element)
        extra = {"margin": out.margin.to(torch.float64), "flagged": out.flagged}
        extra.update({k: v for k, v in tensors.items() if k not in group.node_indexed})
        gdata.append(extra)
        ndata.append({k: v for k, v in tensors.items() if k in group.node_indexed})
    result = GraphStore.from_graphs(
        reps,
        graph_data=gdata,
        node_data=ndata,
        node_dtype=store.node.dtype,
        edge_dtype=None if store.edge is None else store.edge.dtype,
        metadata={**store.metadata, "canonicalizer": canonicalizer.config()},
    )
    return result.subset(torch.argsort(order))


def cache_key(parts: Mapping[str, Any]) -> str:
    """A short stable hash of JSON-ready ``parts`` (key order does not matter).

    Examples:
        >>> cache_key({"a": 1, "b": [2, 3]}) == cache_key({"b": [2, 3], "a": 1})
        True
        >>> cache_key({"a": 1}) == cache_key({"a": 2})
        False
    """
    text = json.dumps(dict(parts), sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def load_or_build(
    folder: str | os.PathLike[str],
    name: str,
    key: Mapping[str, Any],
    build: Callable[[], GraphStore],
) -> tuple[GraphStore, bool]:
    """The store cached as ``folder/name-<cache_key(key)>.pt``, built and saved if missing.

    ``key`` must cover everything that determines the store; the key is also written into the
    store's metadata (``metadata["cache_key"]``) and checked on load, so a file that does not
    belong to the key is rebuilt, never reused. Returns ``(store, built)``.
    """
    digest = cache_key(key)
    path = Path(folder) / f"{name}-{digest}.pt"
    if path.is_file():
        try:
            store = GraphStore.load(path)
            if store.metadata.get("cache_key") == digest:
                return store, False
        except ValueError:
            pass  # unreadable or foreign: rebuild below
    store = build()
    store.metadata = {**store.metadata, "cache_key": digest, "cache_parts": dict(key)}
    store.save(path)
    return store, True


# ---------------------------------------------------------------------------- batching
def padding_fraction(num_nodes: np.ndarray, batches: Sequence[np.ndarray]) -> float:
    """Fraction of padded node slots: ``1 - Σ_batches Σ k_i / Σ_batches (b · max k_i)``.

    Examples:
        >>> round(padding_fraction(np.array([1, 3]), [np.array([0, 1])]), 4)
        0.3333
    """
    sizes = np.asarray(num_nodes)
    real = sum(int(sizes[b].sum()) for b in batches)
    slots = sum(int(len(b) * sizes[b].max()) for b in batches if len(b))
    return 1.0 - real / slots if slots else 0.0


class SizeBucketBatcher:
    """Batches of graph indices with similar sizes, random and complete per epoch.

    1. draw a random permutation of all graphs (``torch.randperm`` with the given generator);
    2. cut it into pools of ``batch_size * bucket_batches`` graphs and stably sort each pool by
       size (ties keep their random order);
    3. cut the concatenated pools into batches of ``batch_size`` and shuffle the batch order.

    Every graph appears in exactly one batch per epoch (with ``drop_last=False``), and the
    epoch is a deterministic function of the generator state. ``bucket_batches=1`` is the
    usual random batching.

    Args:
        num_nodes: ``(N,)`` graph sizes.
        batch_size: graphs per batch.
        bucket_batches: batches per size-sorted pool; larger = less padding, less randomness.
        shuffle: random permutation and batch order; ``False`` gives batches of consecutive
            indices in dataset order (no sorting), for evaluation.
        drop_last: drop the final incomplete batch.

    Examples:
        >>> sizes = np.array([3, 9, 4, 8, 3, 9])
        >>> batcher = SizeBucketBatcher(sizes, batch_size=2, bucket_batches=3)
        >>> batches = batcher.epoch(torch.Generator().manual_seed(0))
        >>> sorted(sizes[b].tolist() for b in batches)  # one pool, sorted by size
        [[3, 3], [4, 8], [9, 9]]
        >>> round(padding_fraction(sizes, batches), 3)  # 1 - 36 / (2·3 + 2·8 + 2·9)
        0.1
        >>> SizeBucketBatcher(sizes, batch_size=4, shuffle=False).epoch()
        [array([0, 1, 2, 3]), array([4, 5])]
    """

    def __init__(
        self,
        num_nodes: np.ndarray | Tensor,
        batch_size: int,
        *,
        bucket_batches: int = 50,
        shuffle: bool = True,
        drop_last: bool = False,
    ) -> None:
        self.num_nodes = np.asarray(num_nodes, dtype=np.int64).reshape(-1)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if bucket_batches < 1:
            raise ValueError(f"bucket_batches must be >= 1, got {bucket_batches}")
        if len(self.num_nodes) == 0:
            raise ValueError("cannot batch an empty dataset")
        self.batch_size = int(batch_size)
        self.bucket_batches = int(bucket_batches)
        self.shuffle = shuffle
        self.drop_last = drop_last

    def __len__(self) -> int:
        n, b = len(self.num_nodes), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def epoch(self, generator: torch.Generator | None = None) -> list[np.ndarray]:
        """The batches of one epoch (a list of int64 index arrays)."""
        n = len(self.num_nodes)
        if not self.shuffle:
            order = np.arange(n)
        else:
            perm = torch.randperm(n, generator=generator).numpy()
            pool = self.batch_size * self.bucket_batches
            parts = []
            for s in range(0, n, pool):
                chunk = perm[s : s + pool]
                parts.append(chunk[np.argsort(self.num_nodes[chunk], kind="stable")])
            order = np.concatenate(parts)
        batches = [order[s : s + self.batch_size] for s in range(0, n, self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.shuffle and len(batches) > 1:
            batch_perm = torch.randperm(len(batches), generator=generator).tolist()
            batches = [batches[i] for i in batch_perm]
        return [b.astype(np.int64) for b in batches]
