"""QM9's molecular properties, in the units of EDM's conditional-generation benchmark.

The ``qm9pack`` CSV files carry the DFT properties of every molecule next to its geometry.
Conditional generation in the literature (EDM, Hoogeboom et al. 2022, Table 3; GeoLDM and
later) uses six of them, in these units:

=========  ===============================  ==========  ==========================
name       quantity                         unit        CSV column (× factor)
=========  ===============================  ==========  ==========================
``alpha``  isotropic polarizability α       Bohr³       ``Polarizability_bohr3``
``gap``    HOMO-LUMO gap Δε                 meV         ``HOMO_LUMO_gap_au`` × 27211.386
``homo``   HOMO energy ε_HOMO               meV         ``HOMO_au`` × 27211.386
``lumo``   LUMO energy ε_LUMO               meV         ``LUMO_au`` × 27211.386
``mu``     dipole moment μ                  D           ``Dipole_debye``
``Cv``     heat capacity at 298.15 K        cal/(mol K) ``Heatcapacity_Cv_cal_mol_K``
=========  ===============================  ==========  ==========================

(1 Hartree = 27.211386 eV, CODATA 2018.) The table is read once and cached under
``<cache_dir>/qm9/qm9_properties_v1.npz``, keyed like the molecule cache by the sizes of the CSV
files; rows are matched to molecules by their QM9 index (``MoleculeDataset.ids``).
"""

import importlib.util
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from symgen.molecules.cache import CacheError, load_arrays, resolve_cache_dir, save_arrays
from symgen.molecules.qm9 import (
    QM9FormatError,
    _iter_rows,
    _source_signature,
    qm9_csv_paths,
)

__all__ = [
    "QM9Property",
    "QM9_PROPERTIES",
    "QM9_PROPERTY_NAMES",
    "HARTREE_TO_MEV",
    "read_qm9_properties",
    "load_qm9_properties",
    "qm9_properties_for",
]

#: 1 Hartree in meV (CODATA 2018: 27.211386245988 eV).
HARTREE_TO_MEV = 27211.386245988
_FORMAT = "symgen-qm9-properties/1"


@dataclass(frozen=True)
class QM9Property:
    """One property: its CSV column, the factor to the benchmark's unit, and that unit."""

    name: str
    column: str
    factor: float
    unit: str
    description: str


QM9_PROPERTIES: dict[str, QM9Property] = {
    p.name: p
    for p in (
        QM9Property("alpha", "Polarizability_bohr3", 1.0, "Bohr^3", "isotropic polarizability"),
        QM9Property("gap", "HOMO_LUMO_gap_au", HARTREE_TO_MEV, "meV", "HOMO-LUMO gap"),
        QM9Property("homo", "HOMO_au", HARTREE_TO_MEV, "meV", "HOMO energy"),
        QM9Property("lumo", "LUMO_au", HARTREE_TO_MEV, "meV", "LUMO energy"),
        QM9Property("mu", "Dipole_debye", 1.0, "D", "dipole moment"),
        QM9Property("Cv", "Heatcapacity_Cv_cal_mol_K", 1.0, "cal/(mol K)", "heat capacity"),
    )
}
#: The six properties of EDM's conditional benchmark, in the order of every array here.
QM9_PROPERTY_NAMES: tuple[str, ...] = tuple(QM9_PROPERTIES)


def read_qm9_properties(
    paths: list[Path] | None = None, *, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Parse the six properties from the QM9 CSV files.

    Returns:
        ``(ids, values)``: ``(N,)`` int64 QM9 indices and ``(N, 6)`` float64 values in the units
        of :data:`QM9_PROPERTIES`, columns in the order of :data:`QM9_PROPERTY_NAMES`.

    Raises:
        QM9FormatError: a missing column or a value that is not a finite number.
    """
    paths = qm9_csv_paths() if paths is None else [Path(p) for p in paths]
    specs = list(QM9_PROPERTIES.values())
    need = ("Index",) + tuple(p.column for p in specs)
    ids: list[int] = []
    rows: list[list[float]] = []
    for where, _, row in _iter_rows(paths, limit, need):
        try:
            ids.append(int(row["Index"]))
            values = [float(row[p.column]) * p.factor for p in specs]
        except ValueError as exc:
            raise QM9FormatError(f"{where}: bad property value: {exc}") from exc
        if not all(np.isfinite(values)):
            raise QM9FormatError(f"{where}: non-finite property value {values}")
        rows.append(values)
    return np.asarray(ids, dtype=np.int64), np.asarray(rows, dtype=np.float64).reshape(-1, 6)


def load_qm9_properties(
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    limit: int | None = None,
    rebuild: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`read_qm9_properties` of the whole set (or of its first ``limit`` molecules, in a
    separate file), cached: rebuilt when missing, corrupt or made from other CSV files; used as
    is, with a warning, where ``qm9pack`` is absent."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number of molecules, got {limit}")
    name = "qm9_properties_v1" + ("" if limit is None else f"_limit{int(limit)}") + ".npz"
    path = resolve_cache_dir(cache_dir) / "qm9" / name
    have_csv = importlib.util.find_spec("qm9pack") is not None
    if not rebuild and path.exists():
        try:
            arrays, meta = load_arrays(path, format_tag=_FORMAT)
            if not have_csv:
                warnings.warn(
                    f"qm9pack is not installed: using {path} without checking it", stacklevel=2
                )
                return arrays["ids"], arrays["values"]
            if meta.get("source_sizes") == _source_signature():
                return arrays["ids"], arrays["values"]
            warnings.warn(f"{path} was built from other CSV files; rebuilding", stacklevel=2)
        except CacheError as exc:
            warnings.warn(f"{exc}; rebuilding the QM9 property cache", stacklevel=2)
    ids, values = read_qm9_properties(limit=limit)
    save_arrays(
        path,
        {"ids": ids, "values": values},
        format_tag=_FORMAT,
        metadata={"source_sizes": _source_signature(), "names": list(QM9_PROPERTY_NAMES)},
    )
    return ids, values


def qm9_properties_for(
    ids: np.ndarray, names: tuple[str, ...] | list[str] = QM9_PROPERTY_NAMES, **kwargs: object
) -> np.ndarray:
    """The properties ``names`` of the molecules with QM9 indices ``ids`` (e.g.
    ``dataset.ids``), shape ``(len(ids), len(names))``.

    Raises:
        ValueError: an unknown property name, or an index that QM9 does not have.

    Examples:
        >>> qm9_properties_for(np.array([1, 2]), ["mu"])  # doctest: +SKIP
        array([[0.    ],
               [1.6256]])
    """
    unknown = [n for n in names if n not in QM9_PROPERTIES]
    if unknown:
        raise ValueError(f"unknown QM9 properties {unknown}; choose from {QM9_PROPERTY_NAMES}")
    all_ids, values = load_qm9_properties(**kwargs)  # type: ignore[arg-type]
    order = np.argsort(all_ids)
    ids = np.asarray(ids, dtype=np.int64)
    pos = np.searchsorted(all_ids[order], ids)
    pos = np.clip(pos, 0, len(order) - 1)
    found = all_ids[order][pos] == ids
    if not bool(found.all()):
        raise ValueError(f"QM9 has no molecules with indices {ids[~found][:5].tolist()}")
    cols = [QM9_PROPERTY_NAMES.index(n) for n in names]
    return values[order[pos]][:, cols]
