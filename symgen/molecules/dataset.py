"""Ragged molecule storage in flat NumPy arrays: cheap to slice, save and load.

A :class:`MoleculeDataset` of ``N`` molecules stores all atoms of all molecules back to back;
molecule ``i`` owns atoms ``atom_offsets[i]:atom_offsets[i+1]`` and bonds
``bond_offsets[i]:bond_offsets[i+1]``. Bond endpoints are *local* atom indices (``0 <= i < j < k``).

Each molecule also carries a perception status code (``status``, see :data:`STATUS_NAMES`) so
that molecules whose bonds/charges could not be derived cleanly are kept and flagged, not
silently dropped or silently wrong.

Example:
    >>> from symgen.molecules.molecule import Molecule
    >>> water = Molecule(np.array([8, 1, 1]), np.zeros((3, 3)), np.zeros(3, int),
    ...                  np.array([[0, 1], [0, 2]]), np.array([1, 1]), name="O")
    >>> ds = MoleculeDataset.from_molecules([water, water])
    >>> len(ds), ds.num_atoms.tolist(), ds[1].bonds.tolist()
    (2, [3, 3], [[0, 1], [0, 2]])
"""

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from symgen.molecules.cache import load_arrays, save_arrays
from symgen.molecules.molecule import Molecule

__all__ = [
    "MoleculeDataset",
    "STATUS_NAMES",
    "STATUS_OK",
    "STATUS_GEOMETRY",
    "STATUS_FAILED",
    "DATASET_FORMAT",
]

#: Per-molecule perception status codes (index = code).
#:
#: * ``0 "ok"`` — bonds and charges come from the reference SMILES, matched atom by atom onto
#:   the 3D structure (the bond graph implied by the geometry equals the SMILES graph);
#: * ``1 "geometry"`` — the geometry's bond graph differs from the SMILES graph (e.g. the DFT
#:   relaxation moved a proton of a zwitterion); bonds, orders and charges were derived from
#:   the geometry (RDKit ``DetermineBondOrders``, total charge 0) and pass the valence check;
#: * ``2 "failed"`` — no consistent assignment was found; the molecule keeps its atoms and
#:   positions, with geometric connectivity as single bonds and zero charges. Flagged.
STATUS_NAMES: tuple[str, ...] = ("ok", "geometry", "failed")
STATUS_OK, STATUS_GEOMETRY, STATUS_FAILED = 0, 1, 2

#: Format tag of saved datasets; bump when the layout changes.
DATASET_FORMAT = "symgen-molecule-dataset/1"


def _ragged_gather(offsets: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat element indices of the segments ``indices`` and the new offsets."""
    counts = (offsets[indices + 1] - offsets[indices]).astype(np.int64)
    new_offsets = np.zeros(len(indices) + 1, dtype=np.int64)
    np.cumsum(counts, out=new_offsets[1:])
    total = int(new_offsets[-1])
    flat = np.arange(total, dtype=np.int64) + np.repeat(offsets[indices] - new_offsets[:-1], counts)
    return flat, new_offsets


@dataclass(eq=False)
class MoleculeDataset:
    """A list of 3D molecular graphs stored as flat ragged arrays.

    Attributes:
        atomic_numbers: ``(total_atoms,)`` int8 atomic numbers.
        positions: ``(total_atoms, 3)`` float32 coordinates in Å.
        charges: ``(total_atoms,)`` int8 formal charges.
        atom_offsets: ``(N + 1,)`` int64; molecule ``i`` owns atoms ``[off[i], off[i+1])``.
        bonds: ``(total_bonds, 2)`` int32 *local* atom indices with ``i < j``.
        bond_orders: ``(total_bonds,)`` int8 kekulized orders in {1, 2, 3}.
        bond_offsets: ``(N + 1,)`` int64; molecule ``i`` owns bonds ``[boff[i], boff[i+1])``.
        smiles: ``N`` reference SMILES strings (``""`` when unknown).
        status: ``(N,)`` int8 perception status codes, see :data:`STATUS_NAMES`.
        ids: ``(N,)`` int64 source identifiers (QM9 index, GEOM molecule/conformer number).
        metadata: free-form provenance (JSON-serializable), saved with the dataset.

    Molecule ``i`` is ``atomic_numbers[atom_offsets[i]:atom_offsets[i + 1]]`` (and likewise for
    positions and charges), with bonds ``bonds[bond_offsets[i]:bond_offsets[i + 1]]``.

    Examples:
        >>> from symgen.molecules.molecule import Molecule
        >>> h2 = Molecule(np.array([1, 1]), np.array([[0.0, 0, 0], [0.74, 0, 0]]),
        ...               np.zeros(2, int), np.array([[0, 1]]), np.array([1]))
        >>> ch = Molecule(np.array([6, 1]), np.array([[0.0, 0, 0], [1.09, 0, 0]]))
        >>> ds = MoleculeDataset.from_molecules([h2, ch])
        >>> ds.atom_offsets.tolist(), ds.bond_offsets.tolist()
        ([0, 2, 4], [0, 1, 1])
        >>> ds.subset([1, 1]).atomic_numbers.tolist()
        [6, 1, 6, 1]
    """

    atomic_numbers: np.ndarray
    positions: np.ndarray
    charges: np.ndarray
    atom_offsets: np.ndarray
    bonds: np.ndarray
    bond_orders: np.ndarray
    bond_offsets: np.ndarray
    smiles: list[str]
    status: np.ndarray | None = None
    ids: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.atomic_numbers = np.ascontiguousarray(self.atomic_numbers, dtype=np.int8)
        self.positions = np.ascontiguousarray(self.positions, dtype=np.float32).reshape(-1, 3)
        self.charges = np.ascontiguousarray(self.charges, dtype=np.int8)
        self.atom_offsets = np.ascontiguousarray(self.atom_offsets, dtype=np.int64)
        self.bonds = np.ascontiguousarray(self.bonds, dtype=np.int32).reshape(-1, 2)
        self.bond_orders = np.ascontiguousarray(self.bond_orders, dtype=np.int8)
        self.bond_offsets = np.ascontiguousarray(self.bond_offsets, dtype=np.int64)
        self.smiles = [str(s) for s in self.smiles]
        n = len(self.atom_offsets) - 1
        if self.status is None:
            self.status = np.zeros(n, dtype=np.int8)
        self.status = np.ascontiguousarray(self.status, dtype=np.int8)
        if self.ids is None:
            self.ids = np.arange(n, dtype=np.int64)
        self.ids = np.ascontiguousarray(self.ids, dtype=np.int64)
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Check array shapes and index ranges; raise ``ValueError`` naming the problem."""
        n = len(self.atom_offsets) - 1
        if n < 0:
            raise ValueError("atom_offsets must have at least one entry")
        total_atoms = len(self.atomic_numbers)
        for name, off, total in (
            ("atom_offsets", self.atom_offsets, total_atoms),
            ("bond_offsets", self.bond_offsets, len(self.bonds)),
        ):
            if off.ndim != 1 or off[0] != 0 or off[-1] != total:
                raise ValueError(
                    f"{name} must start at 0 and end at {total}, got {off[:1]}..{off[-1:]}"
                )
            if np.any(np.diff(off) < 0):
                raise ValueError(f"{name} must be non-decreasing")
        if len(self.bond_offsets) != n + 1:
            raise ValueError(f"bond_offsets has {len(self.bond_offsets)} entries, expected {n + 1}")
        if self.positions.shape != (total_atoms, 3):
            raise ValueError(f"positions must be ({total_atoms}, 3), got {self.positions.shape}")
        if self.charges.shape != (total_atoms,):
            raise ValueError(f"charges must be ({total_atoms},), got {self.charges.shape}")
        if self.bond_orders.shape != (len(self.bonds),):
            raise ValueError(
                f"bond_orders must be ({len(self.bonds)},), got {self.bond_orders.shape}"
            )
        if len(self.smiles) != n or self.status.shape != (n,) or self.ids.shape != (n,):
            raise ValueError(f"smiles, status and ids must have {n} entries")
        if len(self.bonds):
            k = np.repeat(np.diff(self.atom_offsets), np.diff(self.bond_offsets))
            if np.any(self.bonds[:, 0] >= self.bonds[:, 1]) or np.any(self.bonds[:, 0] < 0):
                raise ValueError("bonds must be local index pairs with 0 <= i < j")
            if np.any(self.bonds[:, 1] >= k):
                raise ValueError("bond atom index out of range of its molecule")
            if np.any((self.bond_orders < 1) | (self.bond_orders > 3)):
                raise ValueError("bond_orders must be kekulized orders in {1, 2, 3}")

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return len(self.atom_offsets) - 1

    @property
    def num_atoms(self) -> np.ndarray:
        """``(N,)`` int64 number of atoms of each molecule."""
        return np.diff(self.atom_offsets)

    @property
    def num_bonds(self) -> np.ndarray:
        """``(N,)`` int64 number of bonds of each molecule."""
        return np.diff(self.bond_offsets)

    def __getitem__(self, i: int) -> Molecule:
        """Molecule ``i`` (negative indices count from the end) as a :class:`Molecule`."""
        n = len(self)
        i = int(i)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"molecule index {i} out of range for {n} molecules")
        a0, a1 = self.atom_offsets[i], self.atom_offsets[i + 1]
        b0, b1 = self.bond_offsets[i], self.bond_offsets[i + 1]
        return Molecule(
            atomic_numbers=self.atomic_numbers[a0:a1].astype(np.int64),
            positions=self.positions[a0:a1].astype(np.float64),
            charges=self.charges[a0:a1].astype(np.int64),
            bonds=self.bonds[b0:b1].astype(np.int64),
            bond_orders=self.bond_orders[b0:b1].astype(np.int64),
            name=self.smiles[i] or str(self.ids[i]),
        )

    def __iter__(self):  # noqa: ANN204 - generator of Molecule
        for i in range(len(self)):
            yield self[i]

    def subset(self, indices: Sequence[int] | np.ndarray) -> "MoleculeDataset":
        """A new dataset with molecules ``indices`` (in that order; repeats allowed).

        Vectorized: cost is linear in the number of selected atoms and bonds.
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(self)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"subset indices out of range for {n} molecules")
        idx = np.where(idx < 0, idx + n, idx)
        atom_idx, atom_off = _ragged_gather(self.atom_offsets, idx)
        bond_idx, bond_off = _ragged_gather(self.bond_offsets, idx)
        return MoleculeDataset(
            atomic_numbers=self.atomic_numbers[atom_idx],
            positions=self.positions[atom_idx],
            charges=self.charges[atom_idx],
            atom_offsets=atom_off,
            bonds=self.bonds[bond_idx],
            bond_orders=self.bond_orders[bond_idx],
            bond_offsets=bond_off,
            smiles=[self.smiles[i] for i in idx.tolist()],
            status=self.status[idx],
            ids=self.ids[idx],
            metadata=dict(self.metadata),
        )

    # ------------------------------------------------------------------ transforms
    def remove_hydrogens(self) -> "MoleculeDataset":
        """Copy without hydrogen atoms (and their bonds); heavy-atom charges are kept.

        Molecules made only of hydrogens (H2) would become empty; they are refused.
        """
        keep = self.atomic_numbers != 1
        mol_of_atom = np.repeat(np.arange(len(self)), self.num_atoms)
        new_counts = np.bincount(mol_of_atom[keep], minlength=len(self))
        if np.any(new_counts == 0):
            bad = np.nonzero(new_counts == 0)[0][:5].tolist()
            raise ValueError(f"molecules {bad} have no heavy atom; cannot remove hydrogens")
        new_atom_off = np.zeros(len(self) + 1, dtype=np.int64)
        np.cumsum(new_counts, out=new_atom_off[1:])
        new_global = np.cumsum(keep) - 1  # global heavy-atom index of each kept atom
        mol_of_bond = np.repeat(np.arange(len(self)), self.num_bonds)
        g = self.bonds.astype(np.int64) + self.atom_offsets[mol_of_bond][:, None]
        bkeep = keep[g[:, 0]] & keep[g[:, 1]]
        new_bonds = new_global[g[bkeep]] - new_atom_off[mol_of_bond[bkeep]][:, None]
        new_bond_off = np.zeros(len(self) + 1, dtype=np.int64)
        np.cumsum(np.bincount(mol_of_bond[bkeep], minlength=len(self)), out=new_bond_off[1:])
        meta = dict(self.metadata)
        meta["remove_h"] = True
        return MoleculeDataset(
            atomic_numbers=self.atomic_numbers[keep],
            positions=self.positions[keep],
            charges=self.charges[keep],
            atom_offsets=new_atom_off,
            bonds=new_bonds,
            bond_orders=self.bond_orders[bkeep],
            bond_offsets=new_bond_off,
            smiles=list(self.smiles),
            status=self.status.copy(),
            ids=self.ids.copy(),
            metadata=meta,
        )

    def size_histogram(self) -> np.ndarray:
        """Counts of molecules per size: ``hist[k] = #{i : num_atoms[i] == k}``, for k = 0..max.

        Normalize it (``hist / hist.sum()``) to sample molecule sizes at generation.
        """
        return np.bincount(self.num_atoms, minlength=1).astype(np.int64)

    def status_counts(self) -> dict[str, int]:
        """Number of molecules per perception status name."""
        counts = np.bincount(self.status, minlength=len(STATUS_NAMES))
        return {name: int(c) for name, c in zip(STATUS_NAMES, counts, strict=True)}

    # ------------------------------------------------------------------ construction / io
    @classmethod
    def from_molecules(
        cls,
        molecules: Sequence[Molecule],
        *,
        status: Sequence[int] | np.ndarray | None = None,
        ids: Sequence[int] | np.ndarray | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> "MoleculeDataset":
        """Pack a list of :class:`Molecule` (missing charges -> 0, missing bonds -> none)."""
        z, pos, chg, bonds, orders, names = [], [], [], [], [], []
        a_off, b_off = [0], [0]
        for m in molecules:
            k = m.num_atoms
            z.append(np.asarray(m.atomic_numbers).reshape(k))
            pos.append(np.asarray(m.positions, dtype=np.float64).reshape(k, 3))
            chg.append(np.zeros(k) if m.charges is None else np.asarray(m.charges).reshape(k))
            if m.bonds is None or len(m.bonds) == 0:
                bd, bo = np.zeros((0, 2), np.int64), np.zeros(0, np.int64)
            else:
                bd = np.sort(np.asarray(m.bonds, dtype=np.int64).reshape(-1, 2), axis=1)
                bo = np.asarray(m.bond_orders, dtype=np.int64).reshape(-1)
            bonds.append(bd)
            orders.append(bo)
            names.append(m.name)
            a_off.append(a_off[-1] + k)
            b_off.append(b_off[-1] + len(bd))
        cat = np.concatenate
        return cls(
            atomic_numbers=cat(z) if z else np.zeros(0),
            positions=cat(pos) if pos else np.zeros((0, 3)),
            charges=cat(chg) if chg else np.zeros(0),
            atom_offsets=np.asarray(a_off),
            bonds=cat(bonds) if bonds else np.zeros((0, 2)),
            bond_orders=cat(orders) if orders else np.zeros(0),
            bond_offsets=np.asarray(b_off),
            smiles=names,
            status=None if status is None else np.asarray(status),
            ids=None if ids is None else np.asarray(ids),
            metadata=dict(metadata or {}),
        )

    @classmethod
    def concatenate(cls, parts: Sequence["MoleculeDataset"]) -> "MoleculeDataset":
        """Concatenate datasets in order (metadata of the first is kept)."""
        if not parts:
            raise ValueError("concatenate needs at least one dataset")

        def offsets(name: str) -> np.ndarray:
            out, base = [np.zeros(1, np.int64)], 0
            for p in parts:
                off = getattr(p, name)
                out.append(off[1:] + base)
                base += int(off[-1])
            return np.concatenate(out)

        cat = np.concatenate
        return cls(
            atomic_numbers=cat([p.atomic_numbers for p in parts]),
            positions=cat([p.positions for p in parts]),
            charges=cat([p.charges for p in parts]),
            atom_offsets=offsets("atom_offsets"),
            bonds=cat([p.bonds for p in parts]),
            bond_orders=cat([p.bond_orders for p in parts]),
            bond_offsets=offsets("bond_offsets"),
            smiles=[s for p in parts for s in p.smiles],
            status=cat([p.status for p in parts]),
            ids=cat([p.ids for p in parts]),
            metadata=dict(parts[0].metadata),
        )

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for storage (SMILES joined by newlines into a uint8 buffer)."""
        if any("\n" in s for s in self.smiles):
            raise ValueError("SMILES strings must not contain newlines")
        return {
            "atomic_numbers": self.atomic_numbers,
            "positions": self.positions,
            "charges": self.charges,
            "atom_offsets": self.atom_offsets,
            "bonds": self.bonds,
            "bond_orders": self.bond_orders,
            "bond_offsets": self.bond_offsets,
            "smiles": np.frombuffer("\n".join(self.smiles).encode("utf-8"), dtype=np.uint8),
            "status": self.status,
            "ids": self.ids,
        }

    @classmethod
    def from_arrays(
        cls, arrays: dict[str, np.ndarray], metadata: dict[str, Any] | None = None
    ) -> "MoleculeDataset":
        """Inverse of :meth:`to_arrays`."""
        missing = {
            "atomic_numbers",
            "positions",
            "charges",
            "atom_offsets",
            "bonds",
            "bond_orders",
            "bond_offsets",
            "smiles",
            "status",
            "ids",
        } - set(arrays)
        if missing:
            raise ValueError(f"dataset arrays missing: {sorted(missing)}")
        n = len(arrays["atom_offsets"]) - 1
        text = arrays["smiles"].tobytes().decode("utf-8")
        smiles = text.split("\n") if n > 0 else []
        if n == 1 and text == "":
            smiles = [""]
        return cls(
            atomic_numbers=arrays["atomic_numbers"],
            positions=arrays["positions"],
            charges=arrays["charges"],
            atom_offsets=arrays["atom_offsets"],
            bonds=arrays["bonds"],
            bond_orders=arrays["bond_orders"],
            bond_offsets=arrays["bond_offsets"],
            smiles=smiles,
            status=arrays["status"],
            ids=arrays["ids"],
            metadata=dict(metadata or {}),
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Atomically save to ``path`` (uncompressed npz, format :data:`DATASET_FORMAT`)."""
        save_arrays(path, self.to_arrays(), format_tag=DATASET_FORMAT, metadata=self.metadata)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "MoleculeDataset":
        """Load a dataset saved with :meth:`save`.

        Raises:
            CacheNotFoundError: missing file.
            CacheFormatError: corrupt file or another format version.
        """
        from symgen.molecules.cache import CacheFormatError

        arrays, meta = load_arrays(path, format_tag=DATASET_FORMAT)
        try:
            return cls.from_arrays(arrays, meta)
        except ValueError as exc:
            raise CacheFormatError(f"inconsistent dataset file {path}: {exc}") from exc
