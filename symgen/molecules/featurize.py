"""Featurization: one-hot node and edge channels for molecules, and decoding back.

The channel layout is defined once, by :class:`FeatureLayout`:

* node features ``node[..., f]`` = ``[one-hot atom type over layout.elements |
  one-hot formal charge over layout.charges]``; slice them with ``layout.type_slice`` and
  ``layout.charge_slice``;
* edge features ``edge[..., e]`` = one-hot kekulized bond order over ``layout.bond_orders``
  = ``(0 none, 1 single, 2 double, 3 triple)`` for every pair of distinct real atoms; the
  diagonal and every pair touching padding are all-zero.

:class:`MolecularFeaturizer` turns :class:`~symgen.molecules.molecule.Molecule` objects (or a
:class:`~symgen.molecules.dataset.MoleculeDataset`) into padded
:class:`~symgen.state.GeometricGraph` batches and decodes batches (features or logits) back to
molecules by argmax. The module also holds the octet valence rule used to check bonds.

Example:
    >>> layout = FeatureLayout.qm9()
    >>> layout.node_dim, layout.type_slice, layout.charge_slice, layout.edge_dim
    (8, slice(0, 5, None), slice(5, 8, None), 4)
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from symgen.molecules.dataset import MoleculeDataset, _ragged_gather
from symgen.molecules.elements import (
    BOND_ORDERS,
    GEOM_ELEMENTS,
    QM9_ELEMENTS,
    UnknownElementError,
    atomic_number,
)
from symgen.molecules.molecule import Molecule
from symgen.shapes import EdgeFeatures, NodeFeatures
from symgen.state import GeometricGraph, prefix_mask

__all__ = [
    "FeatureLayout",
    "MolecularFeaturizer",
    "VALENCE_ELECTRONS",
    "allowed_valence",
    "bond_valences",
    "valence_errors",
]

#: Valence-electron counts of the main-group elements symgen validates.
VALENCE_ELECTRONS: dict[int, int] = {
    1: 1,
    5: 3,
    6: 4,
    7: 5,
    8: 6,
    9: 7,
    14: 4,
    15: 5,
    16: 6,
    17: 7,
    35: 7,
    53: 7,
}


def allowed_valence(atomic_number: int, charge: int = 0) -> int:
    """Octet-rule valence of a main-group atom with a formal charge (all H explicit).

    With ``g = valence_electrons - charge`` (the isoelectronic neutral group), the number of
    bonds is ``g`` if ``g <= 4`` else ``8 - g`` (``2 - g`` for hydrogen). So H 1, C 4 (C⁻ 3),
    N 3 (N⁺ 4, N⁻ 2), O 2 (O⁻ 1, O⁺ 3), F 1. Hypervalent P/S states are not covered.

    Examples:
        >>> allowed_valence(7, +1), allowed_valence(8, -1), allowed_valence(6)
        (4, 1, 4)
    """
    z = int(atomic_number)
    if z not in VALENCE_ELECTRONS:
        raise ValueError(f"no valence rule for atomic number {z}")
    g = VALENCE_ELECTRONS[z] - int(charge)
    if z == 1:
        return max(0, 1 - abs(int(charge)))
    return g if g <= 4 else 8 - g


def bond_valences(num_atoms: int, bonds: np.ndarray, bond_orders: np.ndarray) -> np.ndarray:
    """Sum of bond orders per atom: ``v[i] = Σ_{bonds (i, j)} order``."""
    v = np.zeros(num_atoms, dtype=np.int64)
    b = np.asarray(bonds, dtype=np.int64).reshape(-1, 2)
    o = np.asarray(bond_orders, dtype=np.int64).reshape(-1)
    np.add.at(v, b[:, 0], o)
    np.add.at(v, b[:, 1], o)
    return v


def valence_errors(
    atomic_numbers: np.ndarray, charges: np.ndarray, bonds: np.ndarray, bond_orders: np.ndarray
) -> np.ndarray:
    """Indices of atoms whose bond-order sum differs from :func:`allowed_valence`."""
    z = np.asarray(atomic_numbers).reshape(-1)
    q = np.asarray(charges).reshape(-1)
    v = bond_valences(len(z), bonds, bond_orders)
    pairs = zip(z.tolist(), q.tolist(), strict=True)
    want = np.array([allowed_valence(a, c) for a, c in pairs], dtype=np.int64)
    return np.nonzero(v != want)[0]


# ---------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class FeatureLayout:
    """Meaning of the node and edge channels of a molecular :class:`GeometricGraph`.

    ``node = [one_hot(type) over elements | one_hot(charge) over charges]`` and
    ``edge = one_hot(bond order) over bond_orders`` (class 0 = no bond).

    Attributes:
        elements: element symbols of the type channels, in order.
        charges: formal charges of the charge channels, in order (may be empty).
        bond_orders: kekulized bond-order classes of the edge channels; must be ``(0, 1, 2, 3)``
            or a prefix of it.

    Examples:
        >>> lay = FeatureLayout.geom()
        >>> lay.num_types, lay.charges, lay.node_dim
        (16, (-2, -1, 0, 1, 2, 3), 22)
    """

    elements: tuple[str, ...] = QM9_ELEMENTS
    charges: tuple[int, ...] = (-1, 0, 1)
    bond_orders: tuple[int, ...] = BOND_ORDERS

    def __post_init__(self) -> None:
        if len(self.elements) == 0:
            raise ValueError("FeatureLayout needs at least one element")
        if len(set(self.elements)) != len(self.elements):
            raise ValueError(f"duplicate elements in {self.elements}")
        for s in self.elements:
            atomic_number(s)  # raises UnknownElementError
        if len(set(self.charges)) != len(self.charges):
            raise ValueError(f"duplicate charges in {self.charges}")
        if (
            tuple(self.bond_orders) != BOND_ORDERS[: len(self.bond_orders)]
            or len(self.bond_orders) < 2
        ):
            raise ValueError(f"bond_orders must be a prefix of {BOND_ORDERS} with >= 2 classes")

    @classmethod
    def qm9(cls) -> "FeatureLayout":
        """H, C, N, O, F; charges (-1, 0, +1); bond orders 0-3."""
        return cls(QM9_ELEMENTS, (-1, 0, 1), BOND_ORDERS)

    @classmethod
    def geom(cls) -> "FeatureLayout":
        """The 16 GEOM-DRUG elements; charges -2..+3 (as in MiDi); bond orders 0-3."""
        return cls(GEOM_ELEMENTS, (-2, -1, 0, 1, 2, 3), BOND_ORDERS)

    @property
    def num_types(self) -> int:
        """Number of atom-type channels."""
        return len(self.elements)

    @property
    def num_charges(self) -> int:
        """Number of charge channels."""
        return len(self.charges)

    @property
    def node_dim(self) -> int:
        """Node feature width ``f = num_types + num_charges``."""
        return self.num_types + self.num_charges

    @property
    def edge_dim(self) -> int:
        """Edge feature width ``e = len(bond_orders)``."""
        return len(self.bond_orders)

    @property
    def type_slice(self) -> slice:
        """Node channels of the atom-type one-hot."""
        return slice(0, self.num_types)

    @property
    def charge_slice(self) -> slice:
        """Node channels of the formal-charge one-hot."""
        return slice(self.num_types, self.node_dim)

    @property
    def atomic_numbers(self) -> tuple[int, ...]:
        """Atomic number of each type channel."""
        return tuple(atomic_number(s) for s in self.elements)

    def type_index(self, atomic_numbers: np.ndarray) -> np.ndarray:
        """Type channel of each atom; raises :class:`UnknownElementError` outside the vocabulary."""
        z = np.asarray(atomic_numbers, dtype=np.int64).reshape(-1)
        lut = np.full(max(max(self.atomic_numbers), int(z.max(initial=0))) + 1, -1, dtype=np.int64)
        lut[list(self.atomic_numbers)] = np.arange(self.num_types)
        if z.size and z.min() < 0:
            raise UnknownElementError(f"negative atomic number {int(z.min())}")
        out = lut[z]
        if np.any(out < 0):
            bad = sorted(set(z[out < 0].tolist()))
            raise UnknownElementError(
                f"atomic numbers {bad} are not in the vocabulary {self.elements}"
            )
        return out

    def charge_index(self, charges: np.ndarray) -> np.ndarray:
        """Charge channel of each atom; raises ``ValueError`` for charges outside the vocabulary."""
        q = np.asarray(charges, dtype=np.int64).reshape(-1)
        if self.num_charges == 0:
            return np.zeros(len(q), dtype=np.int64)
        table = {c: i for i, c in enumerate(self.charges)}
        try:
            return np.array([table[c] for c in q.tolist()], dtype=np.int64)
        except KeyError as exc:
            raise ValueError(
                f"formal charge {exc.args[0]} is not in the charge vocabulary {self.charges}"
            ) from None


# ---------------------------------------------------------------------------- featurizer
class MolecularFeaturizer:
    """Molecules <-> padded :class:`GeometricGraph` batches, with the channels of a layout.

    Encoding: ``node[i, a] = [onehot(type_a) | onehot(charge_a)]``, ``pos`` in Å (unchanged,
    no centering), ``edge[i, a, c] = onehot(order(a, c))`` for real ``a != c`` (class 0 if not
    bonded), zero on the diagonal and padding. Decoding: argmax of the type and charge
    slices, and of the symmetrized edge channels ``(E + Eᵀ)/2`` on pairs ``a < c``; pairs whose
    argmax is class 0 are not bonds. Inputs may be one-hot features or logits alike.

    Args:
        layout: channel layout (default :meth:`FeatureLayout.qm9`).
        dtype: floating dtype of the produced tensors.
        with_edges: produce edge features (``False``: ``edge=None``).

    Examples:
        >>> xyz = np.array([[0., 0, 0], [.96, 0, 0], [-.24, .93, 0]])
        >>> water = Molecule(np.array([8, 1, 1]), xyz,
        ...                  np.zeros(3, int), np.array([[0, 1], [0, 2]]), np.array([1, 1]))
        >>> f = MolecularFeaturizer()
        >>> g = f.batch([water])
        >>> g.node.shape, g.edge.shape, f.decode(g)[0].bonds.tolist()
        (torch.Size([1, 3, 8]), torch.Size([1, 3, 3, 4]), [[0, 1], [0, 2]])
    """

    def __init__(
        self,
        layout: FeatureLayout | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        with_edges: bool = True,
    ) -> None:
        self.layout = FeatureLayout.qm9() if layout is None else layout
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be floating point, got {dtype}")
        self.dtype = dtype
        self.with_edges = with_edges

    def __repr__(self) -> str:
        return (
            f"MolecularFeaturizer({self.layout}, dtype={self.dtype}, with_edges={self.with_edges})"
        )

    def batch(self, molecules: Sequence[Molecule], max_nodes: int | None = None) -> GeometricGraph:
        """Pad a list of molecules into one batch (missing charges count as 0)."""
        if len(molecules) == 0:
            raise ValueError("cannot featurize an empty list of molecules")
        ds = MoleculeDataset.from_molecules(list(molecules))
        return self.batch_from_dataset(ds, np.arange(len(ds)), max_nodes=max_nodes)

    def batch_from_dataset(
        self,
        dataset: MoleculeDataset,
        indices: Sequence[int] | np.ndarray,
        max_nodes: int | None = None,
    ) -> GeometricGraph:
        """Padded batch of ``dataset`` molecules ``indices`` (vectorized over the ragged arrays).

        Args:
            dataset: a :class:`~symgen.molecules.dataset.MoleculeDataset`.
            indices: molecule indices, in batch order.
            max_nodes: padded size (default: the largest molecule of the batch).
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size == 0:
            raise ValueError("cannot build an empty batch")
        atom_idx, atom_off = _ragged_gather(dataset.atom_offsets, idx)
        counts = np.diff(atom_off)
        b = len(idx)
        n = int(counts.max()) if max_nodes is None else int(max_nodes)
        if n < int(counts.max()):
            raise ValueError(f"max_nodes={n} is smaller than the largest molecule ({counts.max()})")
        row = np.repeat(np.arange(b), counts)
        col = np.arange(len(atom_idx)) - np.repeat(atom_off[:-1], counts)
        lay = self.layout
        t = lay.type_index(dataset.atomic_numbers[atom_idx])
        pos = torch.zeros(b, n, 3, dtype=self.dtype)
        node = torch.zeros(b, n, lay.node_dim, dtype=self.dtype)
        r_t, c_t = torch.from_numpy(row), torch.from_numpy(col)
        pos[r_t, c_t] = torch.from_numpy(dataset.positions[atom_idx].astype(np.float64)).to(
            self.dtype
        )
        node[r_t, c_t, torch.from_numpy(t)] = 1.0
        if lay.num_charges:
            q = lay.charge_index(dataset.charges[atom_idx])
            node[r_t, c_t, torch.from_numpy(q + lay.num_types)] = 1.0
        mask = prefix_mask(torch.from_numpy(counts), n)
        edge = None
        if self.with_edges:
            bond_idx, bond_off = _ragged_gather(dataset.bond_offsets, idx)
            orders = dataset.bond_orders[bond_idx].astype(np.int64)
            if orders.size and orders.max() >= lay.edge_dim:
                raise ValueError(
                    f"bond order {orders.max()} exceeds the layout's {lay.bond_orders}"
                )
            edge = torch.zeros(b, n, n, lay.edge_dim, dtype=self.dtype)
            pair = mask[:, :, None] & mask[:, None, :]
            pair &= ~torch.eye(n, dtype=torch.bool)[None]
            edge[..., 0] = pair.to(self.dtype)
            brow = torch.from_numpy(np.repeat(np.arange(b), np.diff(bond_off)))
            bi = torch.from_numpy(dataset.bonds[bond_idx, 0].astype(np.int64))
            bj = torch.from_numpy(dataset.bonds[bond_idx, 1].astype(np.int64))
            o = torch.from_numpy(orders)
            for x, y in ((bi, bj), (bj, bi)):
                edge[brow, x, y, 0] = 0.0
                edge[brow, x, y, o] = 1.0
        return GeometricGraph(pos=pos, node=node, mask=mask, edge=edge)

    def decode(
        self,
        graph: GeometricGraph,
        node: NodeFeatures | None = None,
        edge: EdgeFeatures | None = None,
        *,
        names: Sequence[str] | None = None,
    ) -> list[Molecule]:
        """Molecules from a batch, by argmax over the layout's channel groups.

        Args:
            graph: the batch (positions and mask are taken from it).
            node: node features or logits (default ``graph.node``).
            edge: edge features or logits (default ``graph.edge``; ``None`` -> no bonds).
            names: optional molecule names.

        Returns:
            one :class:`Molecule` per graph, bonds ``i < j`` sorted, orders in {1, 2, 3}.
        """
        lay = self.layout
        node = graph.node if node is None else node
        edge = graph.edge if edge is None else edge
        if node.shape[-1] != lay.node_dim:
            raise ValueError(f"node has {node.shape[-1]} channels, layout expects {lay.node_dim}")
        if edge is not None and edge.shape[-1] != lay.edge_dim:
            raise ValueError(f"edge has {edge.shape[-1]} channels, layout expects {lay.edge_dim}")
        zs = np.asarray(lay.atomic_numbers, dtype=np.int64)
        qs = np.asarray(lay.charges if lay.num_charges else (0,), dtype=np.int64)
        t = node[..., lay.type_slice].argmax(-1).cpu().numpy()
        q = (
            node[..., lay.charge_slice].argmax(-1).cpu().numpy()
            if lay.num_charges
            else np.zeros(t.shape, dtype=np.int64)
        )
        cls = None
        if edge is not None:
            sym = 0.5 * (edge + edge.transpose(1, 2))
            cls = sym.argmax(-1).cpu().numpy()
        pos = graph.pos.detach().cpu().to(torch.float64).numpy()
        out = []
        for i, k in enumerate(graph.num_nodes.tolist()):
            bonds = orders = None
            if cls is not None:
                c = np.triu(cls[i, :k, :k], 1)
                a, bb = np.nonzero(c)
                bonds = np.stack([a, bb], axis=1).astype(np.int64)
                orders = np.asarray(lay.bond_orders, dtype=np.int64)[c[a, bb]]
            out.append(
                Molecule(
                    atomic_numbers=zs[t[i, :k]],
                    positions=pos[i, :k].copy(),
                    charges=qs[q[i, :k]],
                    bonds=bonds,
                    bond_orders=orders,
                    name="" if names is None else str(names[i]),
                )
            )
        return out
