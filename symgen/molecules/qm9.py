"""QM9 offline: parse the ``qm9pack`` CSV files once, perceive bonds, cache, split.

Data source: the ``qm9pack`` wheel ships the 130,831 characterized QM9 molecules (the 3,054
molecules that failed the original consistency check are already absent) as three CSV files
with DFT (B3LYP/6-31G(2df,p)) coordinates in Å and the GDB SMILES. The package itself is never
imported (its ``__init__`` needs ``pkg_resources``); its folder is located with
:func:`importlib.util.find_spec`.

Bond perception (per molecule, RDKit):

1. the SMILES is parsed (RDKit sanitization also normalizes e.g. pentavalent nitro groups to the
   charge-separated form), hydrogens are added and the molecule is kekulized;
2. the geometry's bond graph is taken as the ``m`` atom pairs with the smallest ratio
   ``d_ij / (r_i + r_j)`` (``r`` = covalent radii, ``m`` = number of bonds of the SMILES molecule),
   provided the largest chosen ratio stays below :data:`MAX_BOND_RATIO`. A fixed distance
   cut-off mislabels ~4% of QM9 (strained cages such as bicyclo[1.1.0]butanes), the ranked rule
   none;
3. if that graph is isomorphic to the SMILES graph (same elements), the isomorphism carries
   the SMILES' kekulized bond orders and formal charges onto the 3D atoms: status ``"ok"``;
4. otherwise (the relaxation changed the molecule, typically a zwitterion whose proton moved
   back in vacuum), bond orders and charges are derived from the geometry alone with RDKit's
   ``DetermineBondOrders`` (total charge 0); if the result passes the octet valence check the
   status is ``"geometry"``, else ``"failed"`` (single bonds, zero charges). Failed and geometry
   molecules are *kept* and flagged via ``dataset.status`` (see
   :data:`symgen.molecules.dataset.STATUS_NAMES`).

Cache: ``<cache_dir>/qm9/qm9_v1.npz`` (``qm9_v1_limit<k>.npz`` for partial parses), written
atomically. A cache that is missing, corrupt, of another format version, or built from CSV
files of another size is **rebuilt** (with a :class:`UserWarning` for the corrupt/stale
cases); ``rebuild=True`` forces a rebuild. Loading a valid cache takes well under a second.

Splits: the standard split of Cormorant and EDM (``numpy.random.RandomState(0)`` permutation of
the molecules in GDB-9 order): the first 100,000 indices are ``train``, the next 17,748
``valid``, the last 13,083 ``test`` (see :func:`qm9_splits`).

Example:
    >>> ds = load_qm9(limit=10, progress=False)   # doctest: +SKIP
    >>> ds[0].atomic_numbers.tolist()             # methane  # doctest: +SKIP
    [6, 1, 1, 1, 1]
"""

import csv
import importlib.util
import os
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from symgen.molecules.cache import CacheError, resolve_cache_dir
from symgen.molecules.dataset import (
    STATUS_FAILED,
    STATUS_GEOMETRY,
    STATUS_OK,
    MoleculeDataset,
)
from symgen.molecules.elements import QM9_ELEMENTS, UnknownElementError, atomic_number
from symgen.molecules.featurize import valence_errors

__all__ = [
    "QM9_NUM_MOLECULES",
    "QM9_SPLIT_SIZES",
    "QM9_SPLIT_SEED",
    "QM9_CACHE_VERSION",
    "MAX_BOND_RATIO",
    "QM9FormatError",
    "qm9_data_dir",
    "qm9_csv_paths",
    "read_qm9_csv",
    "perceive_bonds",
    "build_qm9",
    "load_qm9",
    "qm9_cache_path",
    "qm9_splits",
    "load_qm9_split",
    "qm9_size_histogram",
]

QM9_NUM_MOLECULES = 130_831
QM9_SPLIT_SIZES: dict[str, int] = {"train": 100_000, "valid": 17_748, "test": 13_083}
#: Seed of the split of Cormorant/EDM (``numpy.random.seed(0)``), the split of the QM9 literature.
QM9_SPLIT_SEED = 0
QM9_CACHE_VERSION = 1
#: Largest ``d_ij / (r_i + r_j)`` accepted for a bond (QM9 max is ~1.22, in strained cages).
MAX_BOND_RATIO = 1.35

#: Covalent radii in Å (Cordero et al. 2008) for the QM9 elements.
_COVALENT_RADII = np.zeros(119)
_COVALENT_RADII[[1, 6, 7, 8, 9]] = [0.31, 0.76, 0.71, 0.66, 0.57]
_QM9_Z = frozenset(atomic_number(s) for s in QM9_ELEMENTS)
_STRIP_LIST = str.maketrans("", "", "[]' \"")


class QM9FormatError(ValueError):
    """Raised for a malformed QM9 CSV row (names file, line and problem)."""


# ---------------------------------------------------------------------------- raw CSV
def qm9_data_dir() -> Path:
    """Folder holding the ``qm9pack`` CSV files (without importing ``qm9pack``)."""
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "QM9 needs the 'qm9pack' package (pip install qm9pack, or symgen[molecules])"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def qm9_csv_paths() -> list[Path]:
    """The three ``qm9_part{1,2,3}.csv`` files, in order."""
    folder = qm9_data_dir()
    paths = [folder / f"qm9_part{k}.csv" for k in (1, 2, 3)]
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"QM9 CSV file missing from qm9pack: {p}")
    return paths


_GEOMETRY_COLUMNS = ("Index", "SMILES", "N_atoms", "Elements", "XYZ_Ang")


def _iter_rows(
    paths: list[Path], limit: int | None, need: tuple[str, ...] = _GEOMETRY_COLUMNS
) -> Iterator[tuple[str, int, dict[str, str]]]:
    """``(where, line, {column: text})`` for the columns ``need`` of every row, in file order."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    count = 0
    for path in paths:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            try:
                header = next(reader)
            except StopIteration:
                raise QM9FormatError(f"{path}: empty file (no header)") from None
            missing = [c for c in need if c not in header]
            if missing:
                raise QM9FormatError(f"{path}: header lacks columns {missing}")
            cols = {c: header.index(c) for c in need}
            for row in reader:
                if limit is not None and count >= limit:
                    return
                line = reader.line_num
                if len(row) != len(header):
                    raise QM9FormatError(
                        f"{path}:{line}: expected {len(header)} fields, got {len(row)}"
                    )
                yield f"{path}:{line}", line, {c: row[i] for c, i in cols.items()}
                count += 1


def read_qm9_csv(paths: list[Path] | None = None, *, limit: int | None = None) -> dict[str, Any]:
    """Parse the QM9 CSV files into flat arrays (no bond perception).

    Args:
        paths: CSV files (default: :func:`qm9_csv_paths`).
        limit: read only the first ``limit`` molecules (for tests).

    Returns:
        dict with ``ids`` (N,) int64 QM9 indices, ``smiles`` list, ``atomic_numbers``
        (total,) int8, ``positions`` (total, 3) float64, ``atom_offsets`` (N + 1,) int64.

    Raises:
        QM9FormatError: malformed row (wrong field count, atom count mismatch, bad numbers).
        UnknownElementError: an element outside H, C, N, O, F.
    """
    paths = qm9_csv_paths() if paths is None else [Path(p) for p in paths]
    ids: list[int] = []
    smiles: list[str] = []
    zs: list[np.ndarray] = []
    xyz_parts: list[str] = []
    counts: list[int] = []
    zcache: dict[str, int] = {}
    for where, _, row in _iter_rows(paths, limit):
        try:
            ids.append(int(row["Index"]))
            n = int(row["N_atoms"])
        except ValueError as exc:
            raise QM9FormatError(f"{where}: bad Index/N_atoms: {exc}") from exc
        symbols = [s for s in row["Elements"].translate(_STRIP_LIST).split(",") if s]
        if len(symbols) != n:
            raise QM9FormatError(f"{where}: N_atoms={n} but {len(symbols)} elements listed")
        z = []
        for s in symbols:
            if s not in zcache:
                zz = atomic_number(s)
                if zz not in _QM9_Z:
                    raise UnknownElementError(f"{where}: element {s!r} is not a QM9 element")
                zcache[s] = zz
            z.append(zcache[s])
        xyz = row["XYZ_Ang"].translate(_STRIP_LIST)
        if xyz.count(",") != 3 * n - 1:
            raise QM9FormatError(
                f"{where}: XYZ_Ang has {xyz.count(',') + 1} numbers, expected {3 * n}"
            )
        smiles.append(row["SMILES"].strip())
        zs.append(np.asarray(z, dtype=np.int8))
        xyz_parts.append(xyz)
        counts.append(n)
    if not ids:
        raise QM9FormatError(f"no molecules found in {[str(p) for p in paths]}")
    try:
        flat = np.array(",".join(xyz_parts).split(","), dtype=np.float64)
    except ValueError as exc:
        raise QM9FormatError(f"non-numeric coordinate in XYZ_Ang: {exc}") from exc
    if not np.all(np.isfinite(flat)):
        raise QM9FormatError("non-finite coordinate in XYZ_Ang")
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return {
        "ids": np.asarray(ids, dtype=np.int64),
        "smiles": smiles,
        "atomic_numbers": np.concatenate(zs),
        "positions": flat.reshape(-1, 3),
        "atom_offsets": offsets,
    }


# ---------------------------------------------------------------------------- perception
def _plain_graph(z: np.ndarray, pairs: np.ndarray) -> Any:
    """An RDKit graph with bare atoms (no charge, no H count) and single bonds only."""
    from rdkit import Chem

    g = Chem.RWMol()
    for a in z.tolist():
        atom = Chem.Atom(int(a))
        atom.SetNoImplicit(True)
        g.AddAtom(atom)
    for i, j in pairs.tolist():
        g.AddBond(int(i), int(j), Chem.BondType.SINGLE)
    g.UpdatePropertyCache(strict=False)
    Chem.FastFindRings(g)
    return g


def _ranked_pairs(z: np.ndarray, pos: np.ndarray, m: int) -> tuple[np.ndarray, float]:
    """The ``m`` atom pairs with the smallest ``d/(r_i + r_j)`` and the largest chosen ratio."""
    k = len(z)
    if m == 0 or k < 2:
        return np.zeros((0, 2), dtype=np.int64), 0.0
    iu, ju = np.triu_indices(k, 1)
    d = np.linalg.norm(pos[iu] - pos[ju], axis=-1)
    r = _COVALENT_RADII[z.astype(np.int64)]
    ratio = d / (r[iu] + r[ju])
    m = min(m, len(ratio))
    order = np.argpartition(ratio, m - 1)[:m] if m < len(ratio) else np.arange(len(ratio))
    pairs = np.stack([iu[order], ju[order]], axis=1)
    return pairs, float(ratio[order].max())


def _threshold_pairs(z: np.ndarray, pos: np.ndarray, max_ratio: float = 1.2) -> np.ndarray:
    k = len(z)
    iu, ju = np.triu_indices(k, 1)
    d = np.linalg.norm(pos[iu] - pos[ju], axis=-1)
    r = _COVALENT_RADII[z.astype(np.int64)]
    keep = d / (r[iu] + r[ju]) < max_ratio
    return np.stack([iu[keep], ju[keep]], axis=1)


def _from_geometry(z: np.ndarray, pos: np.ndarray, pairs: np.ndarray):  # noqa: ANN202
    """Bond orders and charges from geometry (RDKit DetermineBondOrders, charge 0) or None."""
    from rdkit import Chem
    from rdkit.Chem import rdDetermineBonds
    from rdkit.Geometry import Point3D

    g = _plain_graph(z, pairs)
    conf = Chem.Conformer(len(z))
    for i, (x, y, w) in enumerate(pos.tolist()):
        conf.SetAtomPosition(i, Point3D(x, y, w))
    g.AddConformer(conf, assignId=True)
    for atom in g.GetAtoms():
        atom.SetNoImplicit(False)
    try:
        rdDetermineBonds.DetermineBondOrders(g, charge=0)
        mol = g.GetMol()
        Chem.Kekulize(mol, clearAromaticFlags=True)
    except Exception:  # RDKit raises several exception types for unassignable valences
        return None
    bonds, orders = [], []
    for b in mol.GetBonds():
        i, j = sorted((b.GetBeginAtomIdx(), b.GetEndAtomIdx()))
        bonds.append((i, j))
        orders.append(int(b.GetBondTypeAsDouble()))
    charges = np.array([a.GetFormalCharge() for a in mol.GetAtoms()], dtype=np.int64)
    bonds_a = np.asarray(bonds, dtype=np.int64).reshape(-1, 2)
    orders_a = np.asarray(orders, dtype=np.int64)
    if np.any((orders_a < 1) | (orders_a > 3)) or charges.sum() != 0:
        return None
    if len(valence_errors(z, charges, bonds_a, orders_a)):
        return None
    return bonds_a, orders_a, charges


def perceive_bonds(
    atomic_numbers: np.ndarray, positions: np.ndarray, smiles: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Kekulized bonds and formal charges of one QM9 molecule (see the module docstring).

    Args:
        atomic_numbers: ``(k,)`` atomic numbers in XYZ order.
        positions: ``(k, 3)`` coordinates in Å.
        smiles: reference SMILES (any atom order, implicit hydrogens).

    Returns:
        ``(bonds (m, 2) int64 with i < j, orders (m,) in {1,2,3}, charges (k,), status)``,
        bonds sorted lexicographically; ``status`` is a code of
        :data:`symgen.molecules.dataset.STATUS_NAMES`.

    Examples:
        >>> z = np.array([8, 1, 1]); x = np.array([[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
        >>> perceive_bonds(z, x, "O")[0].tolist()
        [[0, 1], [0, 2]]
    """
    from rdkit import Chem

    z = np.asarray(atomic_numbers, dtype=np.int64).reshape(-1)
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    k = len(z)
    template = Chem.MolFromSmiles(smiles) if smiles else None
    result = None
    status = STATUS_GEOMETRY
    pairs = None
    if template is not None:
        template = Chem.AddHs(template)
        Chem.Kekulize(template, clearAromaticFlags=True)
        tz = np.array([a.GetAtomicNum() for a in template.GetAtoms()], dtype=np.int64)
        m = template.GetNumBonds()
        if np.array_equal(np.sort(tz), np.sort(z)):
            pairs, worst = _ranked_pairs(z, pos, m)
            if worst <= MAX_BOND_RATIO:
                tpairs = np.array(
                    [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in template.GetBonds()],
                    dtype=np.int64,
                ).reshape(-1, 2)
                match = _plain_graph(z, pairs).GetSubstructMatch(_plain_graph(tz, tpairs))
                if len(match) == k:
                    mp = np.asarray(match, dtype=np.int64)
                    charges = np.zeros(k, dtype=np.int64)
                    charges[mp] = [a.GetFormalCharge() for a in template.GetAtoms()]
                    bonds = np.sort(mp[tpairs], axis=1)
                    orders = np.array(
                        [int(b.GetBondTypeAsDouble()) for b in template.GetBonds()], dtype=np.int64
                    )
                    result, status = (bonds, orders, charges), STATUS_OK
            else:
                pairs = None
    if result is None:
        if pairs is None:
            pairs = _threshold_pairs(z, pos)
        result = _from_geometry(z, pos, pairs)
        if result is None:
            status = STATUS_FAILED
            result = (pairs, np.ones(len(pairs), dtype=np.int64), np.zeros(k, dtype=np.int64))
    bonds, orders, charges = result
    bonds = np.sort(np.asarray(bonds, dtype=np.int64).reshape(-1, 2), axis=1)
    order = np.lexsort((bonds[:, 1], bonds[:, 0]))
    return bonds[order], np.asarray(orders, dtype=np.int64)[order], charges, status


# ---------------------------------------------------------------------------- build / cache
def build_qm9(*, limit: int | None = None, progress: bool = True) -> MoleculeDataset:
    """Parse the CSV files and perceive bonds for every molecule (no caching).

    The full set takes about a minute on one CPU core.
    """
    from rdkit import RDLogger
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    raw = read_qm9_csv(limit=limit)
    t_parse = time.perf_counter() - t0
    n = len(raw["ids"])
    off = raw["atom_offsets"]
    z_all, pos_all = raw["atomic_numbers"], raw["positions"]
    charges = np.zeros(len(z_all), dtype=np.int8)
    bonds, orders = [], []
    bond_off = np.zeros(n + 1, dtype=np.int64)
    status = np.zeros(n, dtype=np.int8)
    RDLogger.DisableLog("rdApp.*")
    try:
        for i in tqdm(range(n), desc="QM9 bond perception", disable=not progress, unit="mol"):
            a0, a1 = off[i], off[i + 1]
            b, o, c, s = perceive_bonds(z_all[a0:a1], pos_all[a0:a1], raw["smiles"][i])
            bonds.append(b)
            orders.append(o)
            charges[a0:a1] = c
            status[i] = s
            bond_off[i + 1] = bond_off[i] + len(b)
    finally:
        RDLogger.EnableLog("rdApp.*")
    t_total = time.perf_counter() - t0
    ds = MoleculeDataset(
        atomic_numbers=z_all,
        positions=pos_all,
        charges=charges,
        atom_offsets=off,
        bonds=np.concatenate(bonds) if bonds else np.zeros((0, 2)),
        bond_orders=np.concatenate(orders) if orders else np.zeros(0),
        bond_offsets=bond_off,
        smiles=raw["smiles"],
        status=status,
        ids=raw["ids"],
    )
    ds.metadata = {
        "dataset": "qm9",
        "version": QM9_CACHE_VERSION,
        "limit": limit,
        "source_sizes": _source_signature(),
        "parse_seconds": round(t_parse, 3),
        "build_seconds": round(t_total, 3),
        "status_counts": ds.status_counts(),
    }
    return ds


def _source_signature() -> list[int]:
    return [p.stat().st_size for p in qm9_csv_paths()]


def qm9_cache_path(
    cache_dir: str | os.PathLike[str] | None = None, *, limit: int | None = None
) -> Path:
    """Path of the QM9 cache file under ``cache_dir`` (default :func:`default_cache_dir`)."""
    name = f"qm9_v{QM9_CACHE_VERSION}" + ("" if limit is None else f"_limit{int(limit)}") + ".npz"
    return resolve_cache_dir(cache_dir) / "qm9" / name


def load_qm9(
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    progress: bool = True,
    remove_h: bool = False,
    limit: int | None = None,
    rebuild: bool = False,
) -> MoleculeDataset:
    """QM9 as a :class:`MoleculeDataset`, built on first use and cached.

    Args:
        cache_dir: cache folder (default ``$SYMGEN_CACHE`` or ``~/.cache/symgen``).
        progress: show a progress bar while building.
        remove_h: drop hydrogens (applied after loading the full cache).
        limit: only the first ``limit`` molecules (separate cache file; for tests).
        rebuild: ignore an existing cache and rebuild it.

    A missing, corrupt, stale (other CSV sizes) or incompatible cache is rebuilt; corrupt and
    stale ones with a :class:`UserWarning`. Without ``qm9pack`` an existing cache is used as it
    is (with a warning), so a cache copied to a machine without the wheel works there.
    Molecules are in QM9 index order.

    Examples:
        >>> ds = load_qm9()                         # doctest: +SKIP
        >>> len(ds), ds.status_counts()["failed"]   # doctest: +SKIP
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number of molecules, got {limit}")
    path = qm9_cache_path(cache_dir, limit=limit)
    ds = None
    if not rebuild and path.exists():
        try:
            ds = MoleculeDataset.load(path)
            if importlib.util.find_spec("qm9pack") is None:
                # a copied cache on a machine without the 104 MB wheel (a GPU box, say)
                warnings.warn(
                    f"qm9pack is not installed: using the QM9 cache {path} without checking it "
                    "against the CSV files",
                    stacklevel=2,
                )
            elif ds.metadata.get("source_sizes") != _source_signature():
                warnings.warn(
                    f"QM9 cache {path} was built from other CSV files; rebuilding", stacklevel=2
                )
                ds = None
        except CacheError as exc:
            warnings.warn(f"{exc}; rebuilding the QM9 cache", stacklevel=2)
            ds = None
    if ds is None:
        ds = build_qm9(limit=limit, progress=progress)
        ds.save(path)
    return ds.remove_hydrogens() if remove_h else ds


# ---------------------------------------------------------------------------- splits
def qm9_splits(
    num_molecules: int = QM9_NUM_MOLECULES, seed: int = QM9_SPLIT_SEED
) -> dict[str, np.ndarray]:
    """Deterministic train/valid/test indices: the split of Cormorant and EDM.

    ``perm = numpy.random.RandomState(seed).permutation(num_molecules)``;
    ``train = perm[:100000]``, ``valid = perm[100000:117748]``, ``test = perm[117748:]`` for the
    full set. With the default ``seed=0`` and the 130,831 molecules in GDB-9 index order (the
    3,054 "uncharacterized" ones left out) this is exactly the split that Cormorant's
    ``gen_splits_gdb9`` generates and that EDM and its successors train and test on, so that a
    "data" row or a novelty figure is measured on the same molecules as the published ones.
    (NumPy's legacy ``RandomState`` stream is frozen by NEP 19, so the split cannot drift with
    NumPy versions; this is the one place where symgen uses a NumPy random generator.)

    For another ``num_molecules`` (partial parses) the sizes are scaled proportionally (valid
    and test rounded down, train the remainder).

    Examples:
        >>> {k: len(v) for k, v in qm9_splits().items()}
        {'train': 100000, 'valid': 17748, 'test': 13083}
    """
    if num_molecules < 1:
        raise ValueError(f"num_molecules must be positive, got {num_molecules}")
    if num_molecules == QM9_NUM_MOLECULES:
        n_valid, n_test = QM9_SPLIT_SIZES["valid"], QM9_SPLIT_SIZES["test"]
    else:
        n_valid = num_molecules * QM9_SPLIT_SIZES["valid"] // QM9_NUM_MOLECULES
        n_test = num_molecules * QM9_SPLIT_SIZES["test"] // QM9_NUM_MOLECULES
    n_train = num_molecules - n_valid - n_test
    perm = np.random.RandomState(int(seed)).permutation(num_molecules).astype(np.int64)
    return {
        "train": perm[:n_train],
        "valid": perm[n_train : n_train + n_valid],
        "test": perm[n_train + n_valid :],
    }


def load_qm9_split(
    split: str,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    seed: int = QM9_SPLIT_SEED,
    **kwargs: Any,
) -> MoleculeDataset:
    """One split (``"train"``, ``"valid"`` or ``"test"``) of :func:`load_qm9` (kwargs forwarded)."""
    if split not in QM9_SPLIT_SIZES:
        raise ValueError(f"unknown QM9 split {split!r}; expected one of {list(QM9_SPLIT_SIZES)}")
    ds = load_qm9(cache_dir, **kwargs)
    out = ds.subset(qm9_splits(len(ds), seed)[split])
    out.metadata["split"] = split
    return out


def qm9_size_histogram(
    split: str = "train", cache_dir: str | os.PathLike[str] | None = None, **kwargs: Any
) -> np.ndarray:
    """Counts of molecules per atom count in a split: ``hist[k] = #{molecules with k atoms}``."""
    return load_qm9_split(split, cache_dir, **kwargs).size_histogram()
