"""Molecules as training data: featurized padded batches and featurized tensor stores.

* :class:`MoleculeLoader` — epochs of padded, featurized :class:`~symgen.state.GeometricGraph`
  batches of a :class:`~symgen.molecules.dataset.MoleculeDataset`, grouped by size with
  :class:`~symgen.data.SizeBucketBatcher`;
* :func:`featurize_store` — a whole dataset featurized once into a
  :class:`~symgen.data.GraphStore` (one-hot channels stored as ``uint8``), the form the training
  loop and the canonical cache (:func:`symgen.data.canonicalize_store`) work on, with no
  round trip through :class:`~symgen.molecules.molecule.Molecule` objects.
"""

from collections.abc import Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from symgen.data import GraphStore, SizeBucketBatcher
from symgen.molecules.dataset import MoleculeDataset
from symgen.molecules.featurize import MolecularFeaturizer
from symgen.state import GeometricGraph

__all__ = ["MoleculeLoader", "featurize_store"]


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


def featurize_store(
    dataset: MoleculeDataset,
    featurizer: MolecularFeaturizer | None = None,
    *,
    batch_size: int = 4096,
    progress: bool = False,
) -> GraphStore:
    """Featurize every molecule once into a :class:`~symgen.data.GraphStore`.

    Positions are stored in the featurizer's dtype, the one-hot node and edge channels as
    ``uint8`` (exact, a quarter of the memory); ``store.batch(idx)`` then gives the same
    tensors as ``featurizer.batch_from_dataset(dataset, idx)``. ``graph_data["ids"]`` keeps the
    dataset's source identifiers and ``metadata`` its provenance and the feature layout.

    Examples:
        >>> from symgen.molecules.molecule import Molecule
        >>> water = Molecule(np.array([8, 1, 1]), np.eye(3), np.zeros(3, int),
        ...                  np.array([[0, 1], [0, 2]]), np.array([1, 1]))
        >>> store = featurize_store(MoleculeDataset.from_molecules([water] * 2))
        >>> store.node.dtype, store.batch([1]).edge.argmax(-1)[0].tolist()
        (torch.uint8, [[0, 1, 1], [1, 0, 0], [1, 0, 0]])
    """
    f = MolecularFeaturizer() if featurizer is None else featurizer
    n = len(dataset)
    if n == 0:
        raise ValueError("cannot featurize an empty dataset")
    chunks = [np.arange(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    batches = (
        f.batch_from_dataset(dataset, idx)
        for idx in tqdm(chunks, desc="featurizing", disable=not progress, unit="batch")
    )
    lay = f.layout
    return GraphStore.from_graphs(
        batches,
        graph_data=({"ids": torch.from_numpy(dataset.ids[idx])} for idx in chunks),
        node_dtype=torch.uint8,
        edge_dtype=torch.uint8,
        metadata={
            "dataset": dict(dataset.metadata),
            "layout": {
                "elements": list(lay.elements),
                "charges": list(lay.charges),
                "bond_orders": list(lay.bond_orders),
            },
        },
    )
