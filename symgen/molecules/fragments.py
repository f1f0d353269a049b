"""Fixed parts of molecules: ring scaffolds and connected heavy-atom fragments.

A completion model (:class:`~symgen.generators.CanonicalGenerator` with ``fixed_parts=``) is
trained on molecules with some atoms held fixed. :class:`FragmentSampler` chooses them: either
the molecule's **ring scaffold** (:func:`ring_scaffold`: its ring systems and the chains that
link them, found by repeatedly removing heavy atoms with a single heavy neighbour, i.e. the
Bemis-Murcko framework without exocyclic atoms) or a **random connected fragment** of heavy
atoms grown from a random atom. Hydrogens are never fixed: completing a scaffold means choosing
its substituents, hydrogens included.
"""

import numpy as np
import torch
from torch import Tensor

from symgen.molecules.featurize import FeatureLayout
from symgen.molecules.molecule import Molecule
from symgen.state import GeometricGraph

__all__ = [
    "FragmentSampler",
    "contains_substructure",
    "heavy_adjacency",
    "ring_scaffold",
    "scaffold_molecule",
]


def heavy_adjacency(
    node: np.ndarray, edge: np.ndarray, num_atoms: int, layout: FeatureLayout
) -> tuple[np.ndarray, np.ndarray]:
    """The heavy atoms of one featurized molecule and their bond adjacency.

    Args:
        node: ``(n, f)`` node features (one-hot types first, as ``layout`` says).
        edge: ``(n, n, e)`` one-hot bond classes (class 0: no bond).
        num_atoms: the number of real atoms ``k`` (the first ``k`` slots).

    Returns:
        ``heavy``: ``(k,)`` boolean, and ``adj``: ``(k, k)`` boolean bonds between atoms.
    """
    types = node[:num_atoms, layout.type_slice].argmax(-1)
    numbers = np.asarray(layout.atomic_numbers)[types]
    adj = edge[:num_atoms, :num_atoms].argmax(-1) > 0
    np.fill_diagonal(adj, False)
    return numbers != 1, adj


def ring_scaffold(heavy: np.ndarray, adj: np.ndarray) -> np.ndarray:
    """Ring systems and linkers: heavy atoms left after repeatedly removing heavy atoms with
    at most one heavy neighbour (empty for an acyclic molecule).

    Examples:
        >>> ring = np.zeros((7, 7), dtype=bool)
        >>> for i in range(6):
        ...     ring[i, (i + 1) % 6] = ring[(i + 1) % 6, i] = True
        >>> ring[0, 6] = ring[6, 0] = True          # a methyl on the ring
        >>> ring_scaffold(np.ones(7, dtype=bool), ring).nonzero()[0].tolist()
        [0, 1, 2, 3, 4, 5]
    """
    keep = heavy.copy()
    while True:
        degree = (adj & keep[None, :]).sum(1)
        leaves = keep & (degree <= 1)
        if not leaves.any():
            return keep
        keep &= ~leaves


def _connected_fragment(
    heavy: np.ndarray, adj: np.ndarray, size: int, rng: np.random.Generator
) -> np.ndarray:
    """A connected set of ``size`` heavy atoms (fewer if the component is smaller), grown from
    a random heavy atom by adding a random bonded heavy neighbour at a time."""
    chosen = np.zeros_like(heavy)
    start = rng.choice(np.flatnonzero(heavy))
    chosen[start] = True
    for _ in range(size - 1):
        frontier = np.flatnonzero(heavy & ~chosen & adj[chosen].any(0))
        if len(frontier) == 0:
            break
        chosen[rng.choice(frontier)] = True
    return chosen


class FragmentSampler:
    """Draws the fixed atoms of each training molecule (a :class:`FixedPartSampler`).

    Per molecule: with probability ``scaffold_share`` its ring scaffold, when that has at
    least ``min_atoms`` atoms and leaves an atom to generate; otherwise a random connected
    heavy-atom fragment whose size is uniform on ``[min_atoms, h]`` (``h`` heavy atoms; at most
    ``k - 1`` atoms of the ``k``). Molecules with fewer than ``min_atoms`` heavy atoms fix all
    their heavy atoms (at least one).

    Args:
        layout: the featurization (which type channel is hydrogen, bond classes).
        min_atoms: smallest fragment (3 gives every fragment a frame of its own, unless its
            atoms are collinear).
        scaffold_share: share of molecules whose ring scaffold is fixed when they have one.

    Examples:
        >>> from symgen.molecules.featurize import MolecularFeaturizer
        >>> from symgen.molecules.molecule import Molecule
        >>> pos = np.array([[0, 0, 0], [1.5, 0, 0], [2.2, 1.2, 0], [3.6, 1.3, 0.1],
        ...                 [-0.5, 0.9, 0], [-0.5, -0.9, 0]], dtype=float)
        >>> mol = Molecule(np.array([6, 6, 6, 8, 1, 1]), pos, np.zeros(6, int),
        ...                np.array([[0, 1], [1, 2], [2, 3], [0, 4], [0, 5]]), np.ones(5, int))
        >>> x = MolecularFeaturizer(FeatureLayout.qm9()).batch([mol])
        >>> fixed = FragmentSampler(FeatureLayout.qm9())(x, torch.Generator().manual_seed(0))
        >>> int(fixed.sum()) in (3, 4), bool(fixed[0, 4:].any())
        (True, False)
    """

    def __init__(
        self, layout: FeatureLayout, *, min_atoms: int = 3, scaffold_share: float = 0.5
    ) -> None:
        if min_atoms < 1:
            raise ValueError(f"min_atoms must be >= 1, got {min_atoms}")
        if not 0.0 <= scaffold_share <= 1.0:
            raise ValueError(f"scaffold_share must be in [0, 1], got {scaffold_share}")
        self.layout = layout
        self.min_atoms = int(min_atoms)
        self.scaffold_share = float(scaffold_share)

    def __call__(self, batch: GeometricGraph, generator: torch.Generator | None = None) -> Tensor:
        if batch.edge is None:
            raise ValueError("FragmentSampler needs the bonds (edge channels) of the molecules")
        seed = int(torch.randint(0, 2**62, (), generator=generator))
        rng = np.random.default_rng(seed)
        node = batch.node.detach().float().cpu().numpy()
        edge = batch.edge.detach().float().cpu().numpy()
        counts = batch.num_nodes.cpu().numpy()
        out = np.zeros(tuple(batch.mask.shape), dtype=bool)
        for i, k in enumerate(counts):
            out[i, :k] = self.choose(node[i], edge[i], int(k), rng)
        return torch.as_tensor(out, device=batch.device)

    def choose(
        self, node: np.ndarray, edge: np.ndarray, num_atoms: int, rng: np.random.Generator
    ) -> np.ndarray:
        """The fixed atoms of one featurized molecule (``(k,)`` boolean)."""
        heavy, adj = heavy_adjacency(node, edge, num_atoms, self.layout)
        h = int(heavy.sum())
        if h == 0:  # no heavy atom: fix one atom, so that there is a frame to complete in
            fixed = np.zeros(num_atoms, dtype=bool)
            fixed[rng.integers(num_atoms)] = True
            return fixed if num_atoms > 1 else fixed & False
        if h < self.min_atoms:
            return heavy if h < num_atoms else _connected_fragment(heavy, adj, h - 1, rng)
        if rng.random() < self.scaffold_share:
            scaffold = ring_scaffold(heavy, adj)
            if self.min_atoms <= scaffold.sum() < num_atoms:
                return scaffold
        size = int(rng.integers(self.min_atoms, h + 1))
        return _connected_fragment(heavy, adj, min(size, num_atoms - 1), rng)

    def __repr__(self) -> str:
        return f"FragmentSampler(min_atoms={self.min_atoms}, scaffold_share={self.scaffold_share})"


def scaffold_molecule(molecule: Molecule, *, min_atoms: int = 3) -> Molecule | None:
    """The ring scaffold of a molecule with bonds (:func:`ring_scaffold`): its atoms, in the
    molecule's order, with their positions, charges and the bonds among them; ``None`` when it
    has fewer than ``min_atoms`` atoms or is the whole molecule.

    Examples:
        >>> pos = np.array([[1.4 * np.cos(a), 1.4 * np.sin(a), 0.0]
        ...                 for a in np.arange(3) * 2 * np.pi / 3] + [[2.9, 0.0, 0.0]])
        >>> ring = Molecule(np.array([6, 6, 6, 8]), pos, np.zeros(4, int),
        ...                 np.array([[0, 1], [1, 2], [0, 2], [0, 3]]), np.ones(4, int))
        >>> scaffold_molecule(ring).atomic_numbers.tolist()
        [6, 6, 6]
    """
    if molecule.bonds is None:
        raise ValueError("a ring scaffold needs the molecule's bonds")
    k = molecule.num_atoms
    adj = np.zeros((k, k), dtype=bool)
    adj[molecule.bonds[:, 0], molecule.bonds[:, 1]] = True
    adj |= adj.T
    keep = ring_scaffold(molecule.atomic_numbers != 1, adj)
    if keep.sum() < min_atoms or keep.sum() == k:
        return None
    index = np.full(k, -1)
    index[keep] = np.arange(int(keep.sum()))
    inside = keep[molecule.bonds[:, 0]] & keep[molecule.bonds[:, 1]]
    orders = None if molecule.bond_orders is None else molecule.bond_orders[inside]
    return Molecule(
        molecule.atomic_numbers[keep],
        molecule.positions[keep],
        None if molecule.charges is None else molecule.charges[keep],
        index[molecule.bonds[inside]],
        orders,
        name=f"scaffold of {molecule.name}" if molecule.name else "scaffold",
    )


def contains_substructure(molecule: Molecule, part: Molecule) -> bool:
    """Whether ``molecule`` is a valid molecule (RDKit sanitizes it, from its own bonds) that
    contains ``part`` as a substructure: RDKit's substructure match of the sanitized part,
    which compares elements and bond types after aromaticity perception. Needs RDKit."""
    from rdkit import Chem, RDLogger

    from symgen.molecules.io import to_rdkit

    RDLogger.DisableLog("rdApp.*")
    try:
        mol = to_rdkit(molecule, sanitize=True, conformer=False)
        query = to_rdkit(part, sanitize=False, conformer=False)
        query.UpdatePropertyCache(strict=False)
        Chem.SanitizeMol(
            query,
            Chem.SanitizeFlags.SANITIZE_ALL ^ Chem.SanitizeFlags.SANITIZE_PROPERTIES,
        )
    except Exception:  # noqa: BLE001 - RDKit raises many kinds of sanitization errors
        return False
    return bool(mol.HasSubstructMatch(query))
