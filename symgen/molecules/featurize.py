"""Valence rules (featurization layouts are added below)."""

import numpy as np

__all__ = ["VALENCE_ELECTRONS", "allowed_valence", "bond_valences", "valence_errors"]

#: Valence-electron counts of the main-group elements symgen validates.
VALENCE_ELECTRONS: dict[int, int] = {
    1: 1, 5: 3, 6: 4, 7: 5, 8: 6, 9: 7, 14: 4, 15: 5, 16: 6, 17: 7, 35: 7, 53: 7,
}


def allowed_valence(atomic_number: int, charge: int = 0) -> int:
    """Octet-rule valence of a main-group atom with a formal charge (all H explicit).

    With ``g = valence_electrons - charge`` (the isoelectronic neutral group), the number of
    bonds is ``g`` if ``g <= 4`` else ``8 - g`` (``2 - g`` for hydrogen). So H 1, C 4 (C⁻ 3),
    N 3 (N⁺ 4, N⁻ 2), O 2 (O⁻ 1, O⁺ 3), F 1. Hypervalent P/S states are not covered.

    Example:
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
    want = np.array([allowed_valence(a, c) for a, c in zip(z.tolist(), q.tolist())], dtype=np.int64)
    return np.nonzero(v != want)[0]
