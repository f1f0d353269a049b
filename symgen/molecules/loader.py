"""Padded :class:`~symgen.state.GeometricGraph` batches, size buckets, canonicalized cache.

Padding a batch to its largest molecule wastes ``1 - Σ k_i / (b · max k_i)`` of the node slots
(and the square of that on edges). :class:`SizeBucketBatcher` reduces it by grouping molecules
of similar size, while keeping the epoch random and complete:

1. draw a random permutation of all molecules (``torch.randperm`` with the given generator);
2. cut it into pools of ``batch_size * bucket_batches`` molecules and stably sort each pool by
   size (ties keep their random order);
3. cut the concatenated pools into batches of ``batch_size`` and shuffle the batch order.

Every molecule appears in exactly one batch per epoch (with ``drop_last=False``), and the
epoch is a deterministic function of the generator state. ``bucket_batches=1`` is the usual
random batching.

Example:
    >>> sizes = np.array([3, 9, 4, 8, 3, 9])
    >>> batches = SizeBucketBatcher(sizes, batch_size=2).epoch(torch.Generator().manual_seed(0))
    >>> sorted(np.concatenate(batches).tolist())
    [0, 1, 2, 3, 4, 5]
"""

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from symgen.molecules.cache import load_arrays, save_arrays
from symgen.molecules.dataset import MoleculeDataset
from symgen.molecules.featurize import MolecularFeaturizer
from symgen.state import GeometricGraph

__all__ = [
    "SizeBucketBatcher",
    "MoleculeLoader",
    "padding_fraction",
    "CanonicalizedDataset",
    "canonicalize_dataset",
    "CANONICAL_FORMAT",
]

#: Format tag of saved :class:`CanonicalizedDataset` files.
CANONICAL_FORMAT = "symgen-canonicalized-dataset/1"


def padding_fraction(num_atoms: np.ndarray, batches: Sequence[np.ndarray]) -> float:
    """Fraction of padded node slots: ``1 - Σ_batches Σ k_i / Σ_batches (b · max k_i)``.

    Examples:
        >>> round(padding_fraction(np.array([1, 3]), [np.array([0, 1])]), 4)
        0.3333
    """
    sizes = np.asarray(num_atoms)
    real = sum(int(sizes[b].sum()) for b in batches)
    slots = sum(int(len(b) * sizes[b].max()) for b in batches if len(b))
    return 1.0 - real / slots if slots else 0.0


class SizeBucketBatcher:
    """Batches of molecule indices with similar sizes (see the module docstring).

    Args:
        num_atoms: ``(N,)`` molecule sizes.
        batch_size: molecules per batch.
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
        num_atoms: np.ndarray,
        batch_size: int,
        *,
        bucket_batches: int = 50,
        shuffle: bool = True,
        drop_last: bool = False,
    ) -> None:
        self.num_atoms = np.asarray(num_atoms, dtype=np.int64).reshape(-1)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if bucket_batches < 1:
            raise ValueError(f"bucket_batches must be >= 1, got {bucket_batches}")
        if len(self.num_atoms) == 0:
            raise ValueError("cannot batch an empty dataset")
        self.batch_size = int(batch_size)
        self.bucket_batches = int(bucket_batches)
        self.shuffle = shuffle
        self.drop_last = drop_last

    def __len__(self) -> int:
        n, b = len(self.num_atoms), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def epoch(self, generator: torch.Generator | None = None) -> list[np.ndarray]:
        """The batches of one epoch (a list of int64 index arrays)."""
        n = len(self.num_atoms)
        if not self.shuffle:
            order = np.arange(n)
        else:
            perm = torch.randperm(n, generator=generator).numpy()
            pool = self.batch_size * self.bucket_batches
            parts = []
            for s in range(0, n, pool):
                chunk = perm[s : s + pool]
                parts.append(chunk[np.argsort(self.num_atoms[chunk], kind="stable")])
            order = np.concatenate(parts)
        batches = [order[s : s + self.batch_size] for s in range(0, n, self.batch_size)]
        if self.drop_last and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.shuffle and len(batches) > 1:
            batch_perm = torch.randperm(len(batches), generator=generator).tolist()
            batches = [batches[i] for i in batch_perm]
        return [b.astype(np.int64) for b in batches]


class MoleculeLoader:
    """Iterate over a :class:`MoleculeDataset` in padded, featurized batches.

    Each ``iter()`` is one epoch drawn with ``generator`` (which advances, so successive epochs
    differ but the sequence is reproducible from the seed). Positions are not centered: that is
    the canonicalizer's (or the prior's) job.

    Args:
        dataset: the molecules.
        batch_size: molecules per batch.
        featurizer: channel encoding (default :class:`MolecularFeaturizer` with the QM9 layout).
        bucket_batches: batches per size-sorted pool (see :class:`SizeBucketBatcher`).
        shuffle: random order (see :class:`SizeBucketBatcher`).
        drop_last: drop the final incomplete batch.
        generator: randomness for shuffling (``None``: torch's default generator).

    Examples:
        >>> from symgen.molecules.molecule import Molecule
        >>> m = Molecule(np.array([6, 1]), np.zeros((2, 3)), np.zeros(2, int),
        ...              np.array([[0, 1]]), np.array([1]))
        >>> loader = MoleculeLoader(MoleculeDataset.from_molecules([m] * 5), batch_size=2,
        ...                         generator=torch.Generator().manual_seed(0))
        >>> [g.batch_size for g in loader]
        [2, 1, 2]
    """

    def __init__(
        self,
        dataset: MoleculeDataset,
        batch_size: int,
        featurizer: MolecularFeaturizer | None = None,
        *,
        bucket_batches: int = 50,
        shuffle: bool = True,
        drop_last: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        self.dataset = dataset
        self.featurizer = MolecularFeaturizer() if featurizer is None else featurizer
        self.batcher = SizeBucketBatcher(
            dataset.num_atoms,
            batch_size,
            bucket_batches=bucket_batches,
            shuffle=shuffle,
            drop_last=drop_last,
        )
        self.generator = generator

    def __len__(self) -> int:
        return len(self.batcher)

    def iter_with_indices(self) -> Iterator[tuple[np.ndarray, GeometricGraph]]:
        """One epoch of ``(molecule indices, batch)`` pairs."""
        for idx in self.batcher.epoch(self.generator):
            yield idx, self.featurizer.batch_from_dataset(self.dataset, idx)

    def __iter__(self) -> Iterator[GeometricGraph]:
        for _, graph in self.iter_with_indices():
            yield graph


# ---------------------------------------------------------------------------- canonicalized cache
@dataclass(eq=False)
class CanonicalizedDataset:
    """A dataset mapped once through a canonicalizer, with what is needed to undo it.

    Attributes:
        representatives: the canonical molecules ``s_i = κ(x_i)`` (positions, atom order, types,
            charges and bonds decoded from the representative batch), same order as the source.
        margin: ``(N,)`` the canonicalizer's tie margin per molecule.
        flagged: ``(N,)`` bool, near-tie molecules (see the canonicalizer's documentation).
        permutation: ``(total_atoms,)`` int64 local indices laid out like
            ``representatives.atom_offsets``, the group element's node permutation ``perm`` with
            the group convention ``x'[j] = x[perm[j]]``; ``None`` if the element exposes none.
        rotation: ``(N, 3, 3)`` rotation matrices of the element, or ``None``.
        translation: ``(N, 3)`` translation vectors of the element, or ``None``.
        metadata: provenance, saved alongside.

    The element components are stored raw, with the meaning the group gives them
    (``act(element, representative) == x``); they are found by walking the element for
    ``parts`` (product elements), ``perm``, ``matrix``/``rotation`` and ``vector``/``translation``
    attributes, and kept only when a kind occurs exactly once.

    Examples:
        >>> import tempfile
        >>> from symgen.canon import CentroidCanonicalizer
        >>> from symgen.molecules.molecule import Molecule
        >>> ch = Molecule(np.array([6, 1]), np.array([[0.0, 0, 0], [1.0, 0, 0]]))
        >>> out = canonicalize_dataset(MoleculeDataset.from_molecules([ch]),
        ...                            CentroidCanonicalizer(), progress=False)
        >>> out.representatives[0].positions.tolist(), out.translation.tolist()
        ([[-0.5, 0.0, 0.0], [0.5, 0.0, 0.0]], [[0.5, 0.0, 0.0]])
        >>> with tempfile.TemporaryDirectory() as d:
        ...     out.save(os.path.join(d, "canon.npz"))
        ...     back = CanonicalizedDataset.load(os.path.join(d, "canon.npz"))
        >>> len(back), back.flagged.tolist(), back.rotation is None
        (1, [False], True)
    """

    representatives: MoleculeDataset
    margin: np.ndarray
    flagged: np.ndarray
    permutation: np.ndarray | None = None
    rotation: np.ndarray | None = None
    translation: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.representatives)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Atomically save to one uncompressed ``.npz`` (format :data:`CANONICAL_FORMAT`)."""
        arrays = {f"rep_{k}": v for k, v in self.representatives.to_arrays().items()}
        arrays["margin"] = np.asarray(self.margin, dtype=np.float64)
        arrays["flagged"] = np.asarray(self.flagged, dtype=bool)
        for name in ("permutation", "rotation", "translation"):
            value = getattr(self, name)
            if value is not None:
                arrays[name] = np.asarray(value)
        meta = dict(self.metadata)
        meta["representatives"] = self.representatives.metadata
        save_arrays(path, arrays, format_tag=CANONICAL_FORMAT, metadata=meta)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "CanonicalizedDataset":
        """Load a file written by :meth:`save`.

        Raises:
            CacheNotFoundError: missing file.
            CacheFormatError: corrupt file or another format.
        """
        from symgen.molecules.cache import CacheFormatError

        arrays, meta = load_arrays(path, format_tag=CANONICAL_FORMAT)
        try:
            rep = MoleculeDataset.from_arrays(
                {k[4:]: v for k, v in arrays.items() if k.startswith("rep_")},
                meta.pop("representatives", {}),
            )
            return cls(
                representatives=rep,
                margin=arrays["margin"],
                flagged=arrays["flagged"],
                permutation=arrays.get("permutation"),
                rotation=arrays.get("rotation"),
                translation=arrays.get("translation"),
                metadata=meta,
            )
        except (KeyError, ValueError) as exc:
            raise CacheFormatError(f"inconsistent canonicalized dataset {path}: {exc}") from exc


def _element_components(element: Any, found: dict[str, list[torch.Tensor]]) -> None:
    if element is None:
        return
    parts = getattr(element, "parts", None)
    if isinstance(parts, (tuple, list)):
        for p in parts:
            _element_components(p, found)
        return
    for kind, names in (
        ("permutation", ("perm",)),
        ("rotation", ("matrix", "rotation")),
        ("translation", ("vector", "translation")),
    ):
        for name in names:
            value = getattr(element, name, None)
            if isinstance(value, torch.Tensor):
                found.setdefault(kind, []).append(value)
                break


def canonicalize_dataset(
    dataset: MoleculeDataset,
    canonicalize: Callable[[GeometricGraph], Any],
    featurizer: MolecularFeaturizer | None = None,
    *,
    batch_size: int = 256,
    progress: bool = True,
    path: str | os.PathLike[str] | None = None,
) -> CanonicalizedDataset:
    """Apply a canonicalizer to every molecule (in size-sorted batches) and collect the results.

    Args:
        dataset: source molecules.
        canonicalize: any callable mapping a :class:`GeometricGraph` batch to an object with
            ``representative`` (a :class:`GeometricGraph` with the same mask), ``margin``
            (``(b,)`` tensor), ``flagged`` (``(b,)`` bool tensor) and optionally ``element``;
            e.g. a :class:`symgen.canon.Canonicalizer`.
        featurizer: channel layout (default: QM9 layout in float64, so positions are exact).
        batch_size: molecules per batch (batches hold molecules of similar size).
        progress: progress bar.
        path: if given, save the result there atomically (nothing is written if any batch fails).

    Examples:
        >>> from types import SimpleNamespace
        >>> from symgen.molecules.molecule import Molecule
        >>> ds = MoleculeDataset.from_molecules([Molecule(np.array([6, 1]), np.eye(2, 3))])
        >>> def center(x):
        ...     c = x.pos.sum(1, keepdim=True) / x.num_nodes[:, None, None]
        ...     rep = x.replace(pos=(x.pos - c) * x.mask[..., None])
        ...     b = x.batch_size
        ...     return SimpleNamespace(representative=rep, margin=torch.ones(b),
        ...                            flagged=torch.zeros(b, dtype=torch.bool))
        >>> out = canonicalize_dataset(ds, center, progress=False)
        >>> out.representatives[0].positions.sum(0).tolist()
        [0.0, 0.0, 0.0]
    """
    from tqdm.auto import tqdm

    f = MolecularFeaturizer(dtype=torch.float64) if featurizer is None else featurizer
    n = len(dataset)
    if n == 0:
        raise ValueError("cannot canonicalize an empty dataset")
    order = np.argsort(dataset.num_atoms, kind="stable")
    batches = [order[s : s + batch_size] for s in range(0, n, batch_size)]
    reps: list[Any] = [None] * n
    margin = np.zeros(n, dtype=np.float64)
    flagged = np.zeros(n, dtype=bool)
    comps: dict[str, list[np.ndarray | None]] = {}
    kinds_seen: set[str] | None = None
    for idx in tqdm(batches, desc="canonicalizing", disable=not progress, unit="batch"):
        x = f.batch_from_dataset(dataset, idx)
        result = canonicalize(x)
        rep = getattr(result, "representative", None)
        if not isinstance(rep, GeometricGraph):
            raise TypeError(
                "canonicalize must return an object with a GeometricGraph 'representative'"
            )
        if rep.mask.shape != x.mask.shape or not bool((rep.mask == x.mask).all()):
            raise ValueError("the representative must keep the input's mask")
        m = torch.as_tensor(result.margin).detach().cpu().reshape(-1)
        fl = torch.as_tensor(result.flagged).detach().cpu().reshape(-1)
        if m.shape[0] != len(idx) or fl.shape[0] != len(idx):
            raise ValueError(f"margin/flagged must have shape ({len(idx)},)")
        margin[idx] = m.to(torch.float64).numpy()
        flagged[idx] = fl.to(torch.bool).numpy()
        decoded = f.decode(rep, names=[dataset.smiles[i] for i in idx])
        for j, mol in zip(idx.tolist(), decoded, strict=True):
            reps[j] = mol
        found: dict[str, list[torch.Tensor]] = {}
        _element_components(getattr(result, "element", None), found)
        kinds = {k for k, v in found.items() if len(v) == 1}
        kinds_seen = kinds if kinds_seen is None else kinds_seen & kinds
        counts = x.num_nodes.tolist()
        for kind in kinds:
            t = found[kind][0].detach().cpu()
            store = comps.setdefault(kind, [None] * n)
            for r, j in enumerate(idx.tolist()):
                if kind == "permutation":
                    store[j] = t[r, : counts[r]].to(torch.int64).numpy()
                else:
                    store[j] = t[r].to(torch.float64).numpy()
    rep_ds = MoleculeDataset.from_molecules(
        reps, status=dataset.status, ids=dataset.ids, metadata=dict(dataset.metadata)
    )
    rep_ds.smiles = list(dataset.smiles)
    extra: dict[str, np.ndarray | None] = {
        "permutation": None,
        "rotation": None,
        "translation": None,
    }
    for kind in kinds_seen or set():
        values = comps[kind]
        extra[kind] = np.concatenate(values) if kind == "permutation" else np.stack(values)
    out = CanonicalizedDataset(
        representatives=rep_ds,
        margin=margin,
        flagged=flagged,
        metadata={"num_flagged": int(flagged.sum()), "canonicalizer": repr(canonicalize)},
        **extra,
    )
    if path is not None:
        out.save(path)
    return out
