"""GEOM-DRUG loaders: the published ``rdkit_folder`` release, and MiDi's split pickles.

:func:`load_geom_split` reads the split pickles MiDi distributes (see its docstring);
everything below describes :func:`load_geom_drugs` and the ``rdkit_folder`` release.

Getting the data (not possible from here; no network at run time): the GEOM dataset (Axelrod &
Gómez-Bombarelli, *Sci. Data* 2022) is on Harvard Dataverse (doi:10.7910/DVN/JNGTDF). Download
``rdkit_folder.tar.gz`` and unpack it; the folder then holds

* ``summary_drugs.json`` — a JSON object mapping each SMILES to a summary dict; entries with a
  ``"pickle_path"`` (relative to the folder, e.g. ``"drugs/<name>.pickle"``) have conformers;
* ``drugs/*.pickle`` — one pickle per molecule: a dict whose ``"conformers"`` is a list of dicts
  with ``"rd_mol"`` (an RDKit ``Mol`` with explicit hydrogens and one 3D conformer),
  ``"totalenergy"`` (Hartree), ``"boltzmannweight"``, ``"relativeenergy"``, ``"geom_id"``, ...

:func:`load_geom_drugs` keeps the ``max_conformers`` lowest-``totalenergy`` conformers of each
molecule (ties keep file order), reads atom types (the 16-element vocabulary
:data:`~symgen.molecules.elements.GEOM_ELEMENTS`), formal charges and kekulized bonds from the
``rd_mol`` (no perception needed: GEOM ships the graph), and returns a
:class:`~symgen.molecules.dataset.MoleculeDataset` with one entry per conformer, grouped by
molecule and ordered by energy; ``ids`` is the molecule's position in the summary, so
conformers of one molecule share an id (split by id to avoid leakage between splits).

Pickles can execute code when loaded: only load the official release or files you trust. The
msgpack release is not supported (it has coordinates but no bond graph).

Example:
    >>> ds = load_geom_drugs("rdkit_folder", max_conformers=5)   # doctest: +SKIP
    >>> ds.metadata["skipped"]                                    # doctest: +SKIP
"""

import hashlib
import json
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from symgen.molecules.cache import CacheError, resolve_cache_dir
from symgen.molecules.dataset import MoleculeDataset
from symgen.molecules.elements import GEOM_ELEMENTS, UnknownElementError, atomic_number

__all__ = [
    "GeomFormatError",
    "GEOM_CACHE_VERSION",
    "MIDI_SPLITS",
    "read_geom_conformer",
    "load_geom_drugs",
    "load_geom_split",
]

GEOM_CACHE_VERSION = 1


class GeomFormatError(ValueError):
    """Raised for a GEOM summary or pickle that does not have the published structure."""


def read_geom_conformer(
    rd_mol: Any, allowed: frozenset[int] | None = None
) -> dict[str, np.ndarray]:
    """Atoms, positions, charges and kekulized bonds of one GEOM ``rd_mol``.

    Args:
        rd_mol: an RDKit ``Mol`` with a 3D conformer.
        allowed: atomic numbers accepted (default: the GEOM vocabulary).

    Returns:
        dict with ``atomic_numbers (k,)``, ``positions (k, 3)`` float64, ``charges (k,)``,
        ``bonds (m, 2)`` (``i < j``, sorted) and ``bond_orders (m,)`` in {1, 2, 3}.

    Raises:
        UnknownElementError: an atom outside ``allowed``.
        GeomFormatError: no conformer, or bonds that cannot be kekulized to orders 1-3.
    """
    from rdkit import Chem

    if not isinstance(rd_mol, Chem.Mol):
        raise GeomFormatError(f"'rd_mol' must be an RDKit Mol, got {type(rd_mol).__name__}")
    allowed = frozenset(atomic_number(s) for s in GEOM_ELEMENTS) if allowed is None else allowed
    if rd_mol.GetNumConformers() == 0:
        raise GeomFormatError("rd_mol has no conformer")
    mol = Chem.Mol(rd_mol)
    try:
        Chem.Kekulize(mol, clearAromaticFlags=True)
    except Exception as exc:  # RDKit raises KekulizeException (a ValueError subclass) or others
        raise GeomFormatError(f"cannot kekulize molecule: {exc}") from exc
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64)
    bad = sorted(set(z.tolist()) - allowed)
    if bad:
        raise UnknownElementError(f"atomic numbers {bad} are outside the GEOM vocabulary")
    charges = np.array([a.GetFormalCharge() for a in mol.GetAtoms()], dtype=np.int64)
    pairs, orders = [], []
    for b in mol.GetBonds():
        o = b.GetBondTypeAsDouble()
        if o not in (1.0, 2.0, 3.0):
            raise GeomFormatError(f"bond {b.GetIdx()} has non-kekulized type {b.GetBondType()}")
        pairs.append(sorted((b.GetBeginAtomIdx(), b.GetEndAtomIdx())))
        orders.append(int(o))
    bonds = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    order = np.lexsort((bonds[:, 1], bonds[:, 0]))
    return {
        "atomic_numbers": z,
        "positions": np.asarray(mol.GetConformer().GetPositions(), dtype=np.float64),
        "charges": charges,
        "bonds": bonds[order],
        "bond_orders": np.asarray(orders, dtype=np.int64)[order],
    }


def _read_summary(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(
            f"GEOM summary not found: {path} (unpack rdkit_folder.tar.gz from Harvard Dataverse)"
        )
    try:
        with open(path, encoding="utf-8") as handle:
            summary = json.load(handle)
    except json.JSONDecodeError as exc:
        raise GeomFormatError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(summary, dict):
        raise GeomFormatError(f"{path} must hold a JSON object mapping SMILES to summaries")
    return summary


def _read_pickle(path: Path) -> list[dict[str, Any]]:
    try:
        with open(path, "rb") as handle:
            data = pickle.load(handle)  # noqa: S301 - GEOM's published format is pickle
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        raise GeomFormatError(f"{path} is not a readable pickle: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("conformers"), list):
        raise GeomFormatError(f"{path} must hold a dict with a 'conformers' list")
    for k, c in enumerate(data["conformers"]):
        if not isinstance(c, dict) or "rd_mol" not in c or "totalenergy" not in c:
            raise GeomFormatError(f"{path}: conformer {k} lacks 'rd_mol' or 'totalenergy'")
    return data["conformers"]


def _cache_key(summary_path: Path, params: dict[str, Any]) -> str:
    st = summary_path.stat()
    blob = json.dumps(
        {
            "summary": str(summary_path.resolve()),
            "size": st.st_size,
            "mtime": st.st_mtime_ns,
            "version": GEOM_CACHE_VERSION,
            **params,
        },
        sort_keys=True,
    )
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def load_geom_drugs(
    root: str | os.PathLike[str],
    *,
    max_conformers: int | None = 5,
    limit: int | None = None,
    summary: str = "summary_drugs.json",
    remove_h: bool = False,
    skip_missing: bool = False,
    progress: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    use_cache: bool = False,
) -> MoleculeDataset:
    """Load GEOM-DRUG conformers from an unpacked ``rdkit_folder``.

    Args:
        root: the ``rdkit_folder`` directory.
        max_conformers: keep the ``k`` lowest-energy conformers per molecule (``None``: all).
        limit: read only the first ``limit`` molecules of the summary that have a pickle.
        summary: summary file name (``summary_qm9.json`` reads GEOM's QM9 part the same way).
        remove_h: drop hydrogens after loading.
        skip_missing: skip (and count) molecules whose pickle file is absent instead of raising.
        progress: progress bar.
        cache_dir: cache folder used when ``use_cache`` (default ``$SYMGEN_CACHE``).
        use_cache: store the parsed set as ``<cache_dir>/geom/drugs_<key>.npz`` (key: summary
            path, size, mtime and arguments) and reuse it; a corrupt cache is rebuilt.

    Returns:
        one entry per conformer; ``metadata["skipped"]`` counts molecules without a
        ``pickle_path`` (``"no_pickle_path"``), with a missing file (``"missing_file"``) or
        without conformers (``"no_conformers"``).

    Raises:
        FileNotFoundError: missing summary, or a missing pickle when ``skip_missing`` is False.
        GeomFormatError: malformed summary or pickle.
        UnknownElementError: an element outside :data:`GEOM_ELEMENTS`.

    Examples:
        A one-molecule folder in the published layout, written on the spot:

        >>> import tempfile
        >>> from rdkit import Chem
        >>> from rdkit.Chem import AllChem
        >>> mol = Chem.AddHs(Chem.MolFromSmiles("CO"))
        >>> _ = AllChem.EmbedMolecule(mol, randomSeed=0)
        >>> tmp = tempfile.TemporaryDirectory()
        >>> root = Path(tmp.name)
        >>> (root / "drugs").mkdir()
        >>> conformers = [{"rd_mol": mol, "totalenergy": e} for e in (-115.1, -115.3, -115.2)]
        >>> with open(root / "drugs" / "methanol.pickle", "wb") as f:
        ...     pickle.dump({"conformers": conformers}, f)
        >>> summary = {"CO": {"pickle_path": "drugs/methanol.pickle"}, "C": {}}
        >>> _ = (root / "summary_drugs.json").write_text(json.dumps(summary))
        >>> ds = load_geom_drugs(root, max_conformers=2, progress=False)
        >>> len(ds), ds.num_atoms.tolist(), ds.smiles, ds.metadata["skipped"]["no_pickle_path"]
        (2, [6, 6], ['CO', 'CO'], 1)
        >>> heavy = load_geom_drugs(root, max_conformers=1, remove_h=True, progress=False)
        >>> len(heavy), heavy.num_atoms.tolist()
        (1, [2])
        >>> tmp.cleanup()
    """
    from tqdm.auto import tqdm

    if max_conformers is not None and max_conformers < 1:
        raise ValueError(f"max_conformers must be >= 1 or None, got {max_conformers}")
    root = Path(root)
    summary_path = root / summary
    entries = _read_summary(summary_path)
    params = {"max_conformers": max_conformers, "limit": limit, "skip_missing": skip_missing}
    cache_path = None
    if use_cache:
        key = _cache_key(summary_path, params)
        cache_path = resolve_cache_dir(cache_dir) / "geom" / f"{Path(summary).stem}_{key}.npz"
        if cache_path.exists():
            try:
                ds = MoleculeDataset.load(cache_path)
                return ds.remove_hydrogens() if remove_h else ds
            except CacheError:
                pass  # rebuilt below and overwritten atomically
    allowed = frozenset(atomic_number(s) for s in GEOM_ELEMENTS)
    skipped = {"no_pickle_path": 0, "missing_file": 0, "no_conformers": 0}
    records: list[dict[str, np.ndarray]] = []
    smiles: list[str] = []
    ids: list[int] = []
    taken = 0
    items = list(entries.items())
    for mol_id, (smi, info) in enumerate(tqdm(items, desc="GEOM pickles", disable=not progress)):
        if limit is not None and taken >= limit:
            break
        if not isinstance(info, dict):
            raise GeomFormatError(f"summary entry for {smi!r} must be an object")
        rel = info.get("pickle_path")
        if not rel:
            skipped["no_pickle_path"] += 1
            continue
        path = root / rel
        if not path.is_file():
            if skip_missing:
                skipped["missing_file"] += 1
                continue
            raise FileNotFoundError(f"GEOM pickle for {smi!r} not found: {path}")
        conformers = _read_pickle(path)
        taken += 1
        if not conformers:
            skipped["no_conformers"] += 1
            continue
        energies = np.array([float(c["totalenergy"]) for c in conformers])
        keep = np.argsort(energies, kind="stable")[: max_conformers or len(conformers)]
        for k in keep.tolist():
            try:
                rec = read_geom_conformer(conformers[k]["rd_mol"], allowed)
            except (GeomFormatError, UnknownElementError) as exc:
                raise type(exc)(f"{path}, conformer {k}: {exc}") from exc
            records.append(rec)
            smiles.append(smi)
            ids.append(mol_id)
    if not records:
        raise GeomFormatError(f"no conformers found under {root} (skipped: {skipped})")
    ds = _pack(records, smiles, ids)
    ds.metadata = {"dataset": "geom-drugs", "summary": summary, **params, "skipped": skipped}
    if cache_path is not None:
        ds.save(cache_path)
    return ds.remove_hydrogens() if remove_h else ds


def _pack(
    records: list[dict[str, np.ndarray]], smiles: list[str], ids: list[int]
) -> MoleculeDataset:
    counts = [len(r["atomic_numbers"]) for r in records]
    bcounts = [len(r["bonds"]) for r in records]
    a_off = np.zeros(len(records) + 1, dtype=np.int64)
    b_off = np.zeros(len(records) + 1, dtype=np.int64)
    np.cumsum(counts, out=a_off[1:])
    np.cumsum(bcounts, out=b_off[1:])
    return MoleculeDataset(
        atomic_numbers=np.concatenate([r["atomic_numbers"] for r in records]),
        positions=np.concatenate([r["positions"] for r in records]),
        charges=np.concatenate([r["charges"] for r in records]),
        atom_offsets=a_off,
        bonds=np.concatenate([r["bonds"] for r in records]),
        bond_orders=np.concatenate([r["bond_orders"] for r in records]),
        bond_offsets=b_off,
        smiles=smiles,
        ids=np.asarray(ids, dtype=np.int64),
    )


#: The split files of MiDi's GEOM-DRUGS release (also the layout of the cleaned split of
#: "GEOM-Drugs Revisited"): ``<split>_data.pickle``.
MIDI_SPLITS: tuple[str, ...] = ("train", "val", "test")


def load_geom_split(
    folder: str | os.PathLike[str],
    split: str = "train",
    *,
    max_conformers: int | None = 5,
    limit: int | None = None,
    progress: bool = True,
) -> MoleculeDataset:
    """GEOM-DRUGS from the split pickles MiDi distributes (and "GEOM-Drugs Revisited" cleans).

    Each ``<folder>/<split>_data.pickle`` is a list of ``(smiles, conformers)`` pairs, the
    conformers a list of RDKit ``Mol`` with explicit hydrogens and one 3D conformer each. The
    first ``max_conformers`` conformers of each molecule are kept, in file order (MiDi keeps
    the first 5); ``ids`` is the molecule's position in the list, shared by its conformers.
    Conformers that cannot be kekulized or hold an element outside the GEOM vocabulary are
    left out and counted in ``metadata["skipped"]``.

    Pickles can execute code when loaded: only load files you trust.

    Args:
        folder: the folder holding the split pickles.
        split: ``"train"``, ``"val"`` or ``"test"``.
        max_conformers: conformers kept per molecule (``None``: all).
        limit: read only the first ``limit`` molecules.
        progress: show a progress bar.

    Raises:
        ValueError: an unknown split or ``max_conformers < 1``.
        FileNotFoundError: the folder or the split's pickle is missing (the message names the
            files expected).
        GeomFormatError: the pickle is unreadable or not a list of ``(smiles, conformers)``.

    Example:
        >>> ds = load_geom_split("geom_midi", "test", max_conformers=5)  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    if split not in MIDI_SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {MIDI_SPLITS}")
    if max_conformers is not None and max_conformers < 1:
        raise ValueError(f"max_conformers must be >= 1 or None, got {max_conformers}")
    root = Path(folder)
    expected = ", ".join(f"{s}_data.pickle" for s in MIDI_SPLITS)
    path = root / f"{split}_data.pickle"
    if not path.is_file():
        present = sorted(p.name for p in root.iterdir()) if root.is_dir() else None
        where = "no such folder" if present is None else f"the folder holds {present or 'nothing'}"
        raise FileNotFoundError(
            f"GEOM-DRUGS split file not found: {path} ({where}); MiDi's release has {expected}"
        )
    try:
        with open(path, "rb") as handle:
            entries = pickle.load(handle)  # noqa: S301 - the documented format is a pickle
    except Exception as exc:  # truncated or foreign files raise many exception types
        raise GeomFormatError(f"{path} is not a readable pickle: {exc}") from exc
    if not isinstance(entries, list):
        raise GeomFormatError(f"{path} must hold a list of (smiles, conformers) pairs")
    allowed = frozenset(atomic_number(s) for s in GEOM_ELEMENTS)
    records, smiles, ids = [], [], []
    skipped = {"kekulize": 0, "element": 0, "no_conformers": 0}
    items = entries if limit is None else entries[:limit]
    for mol_id, entry in enumerate(tqdm(items, desc=f"GEOM {split}", disable=not progress)):
        if not (isinstance(entry, (tuple, list)) and len(entry) == 2):
            raise GeomFormatError(f"{path}: entry {mol_id} is not a (smiles, conformers) pair")
        smi, conformers = entry
        if not isinstance(conformers, (list, tuple)):
            raise GeomFormatError(f"{path}: entry {mol_id} has no list of conformers")
        if not conformers:
            skipped["no_conformers"] += 1
            continue
        for conf in list(conformers)[: max_conformers or len(conformers)]:
            try:
                rec = read_geom_conformer(conf, allowed)
            except UnknownElementError:
                skipped["element"] += 1
                continue
            except GeomFormatError as exc:
                if "kekulize" not in str(exc):
                    raise GeomFormatError(f"{path}: entry {mol_id}: {exc}") from exc
                skipped["kekulize"] += 1
                continue
            records.append(rec)
            smiles.append(str(smi))
            ids.append(mol_id)
    if not records:
        raise GeomFormatError(f"no usable conformers in {path} (skipped: {skipped})")
    ds = _pack(records, smiles, ids)
    ds.metadata = {
        "dataset": "geom-drugs (split pickles)",
        "file": str(path),
        "split": split,
        "max_conformers": max_conformers,
        "skipped": skipped,
    }
    return ds
