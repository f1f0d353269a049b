"""A single molecule as plain NumPy arrays: the exchange format between data, models and metrics."""

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Molecule"]


@dataclass(frozen=True)
class Molecule:
    """One 3D molecular graph.

    Attributes:
        atomic_numbers: ``(k,)`` integer atomic numbers (H = 1, C = 6, ...).
        positions: ``(k, 3)`` coordinates in Ångström.
        charges: ``(k,)`` integer formal charges, or ``None`` when unknown.
        bonds: ``(m, 2)`` integer atom-index pairs ``i < j``, or ``None`` when the bonds are
            unknown (metrics then infer them from geometry).
        bond_orders: ``(m,)`` kekulized bond orders in {1, 2, 3}, aligned with ``bonds``.
        name: free-form identifier (SMILES, file name, index).
        problems: what a reader found wrong with this record (e.g. ``"atom 3: unknown element
            symbol 'Xx'"``, the symbol kept); a molecule with problems is not scored, and the
            evaluator lists these reasons for it.
        bond_problems: why a reader could not keep the record's bonds (e.g. an aromatic ring
            that cannot be kekulized; ``bonds`` is then ``None``): the geometry is still scored,
            the protocols on own bonds count the molecule unstable and invalid with this reason.

    Examples:
        >>> water = Molecule(np.array([8, 1, 1]),
        ...                  np.array([[0., 0., 0.], [0.96, 0., 0.], [-0.24, 0.93, 0.]]))
        >>> water.num_atoms
        3
    """

    atomic_numbers: np.ndarray
    positions: np.ndarray
    charges: np.ndarray | None = None
    bonds: np.ndarray | None = None
    bond_orders: np.ndarray | None = None
    name: str = field(default="")
    problems: tuple[str, ...] = field(default=())
    bond_problems: tuple[str, ...] = field(default=())

    @property
    def num_atoms(self) -> int:
        """Number of atoms ``k``."""
        return int(len(self.atomic_numbers))

    @property
    def has_bonds(self) -> bool:
        """Whether explicit bonds are attached."""
        return self.bonds is not None

    @property
    def carries_bonds(self) -> bool:
        """Whether the record had bonds, usable (``bonds``) or not (``bond_problems``)."""
        return self.bonds is not None or bool(self.bond_problems)
