"""Training data of the CanonFlow recipe behind one interface: QM9, moses3d, GEOM-DRUGS, files.

:func:`load_training_data` turns a data specification into a :class:`TrainingData`: training
and validation molecules, the feature layout they are featurized with, a key that identifies
the data (part of the canonical cache's key) and the evaluator's reference. Specifications:

* ``"qm9"`` — QM9 from ``qm9pack`` (:mod:`symgen.molecules.qm9`), Cormorant/EDM split;
* ``"moses3d"`` — the offline drug-like set (:mod:`symgen.molecules.moses3d`) of
  ``molecules`` MOSES training molecules; not GEOM-DRUGS;
* ``"geom:<folder>"`` — GEOM-DRUGS from MiDi's split pickles in ``<folder>``
  (:func:`~symgen.molecules.geom.load_geom_split`; ``train`` and ``val`` splits);
* ``"<file>.sdf"`` — any SD file with 3D coordinates and explicit hydrogens;
* ``"<file>.npz"`` — a :class:`~symgen.molecules.dataset.MoleculeDataset` saved by symgen
  (for example a ``moses3d`` cache file).

Sets without a published split (moses3d, files) are split by a seeded permutation:
``valid_share`` of the molecules (at least one) for validation, the rest for training.

Feature layouts: ``"qm9"`` (H C N O F, charges -1..1), ``"geom"`` (the 16 GEOM-DRUG elements,
charges -2..3, as MiDi), or ``"auto"``: QM9's layout for QM9, else the GEOM elements and the
formal charges that occur in the molecules (0 always included; for GEOM-DRUGS in the training
split, validation molecules outside it being left out and counted), so that a set of eight
elements does not carry sixteen type channels.
"""

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from symgen.molecules.dataset import MoleculeDataset
from symgen.molecules.elements import GEOM_ELEMENTS, SYMBOLS
from symgen.molecules.featurize import BOND_ORDERS, FeatureLayout

__all__ = [
    "DATA_KINDS",
    "LAYOUT_CHOICES",
    "TrainingData",
    "data_kind",
    "dataset_layout",
    "load_training_data",
    "read_training_sdf",
    "seeded_split",
]

#: What a data specification can name (see the module docstring).
DATA_KINDS = ("qm9", "moses3d", "geom", "sdf", "npz")
#: Feature layouts a run can ask for.
LAYOUT_CHOICES = ("auto", "qm9", "geom")


@dataclass
class TrainingData:
    """Molecules to train on, how they are featurized and what evaluations compare with.

    Attributes:
        name: the data's name in reports (``"qm9"``, ``"moses3d"``, ``"geom-drugs"``, a file).
        train: training molecules.
        valid: validation molecules (at most the requested number).
        layout: the feature layout of the run.
        key: JSON-serializable identity of the data (source, version, size, split, layout).
        reference_smiles: SMILES of the training molecules (novelty), or ``None`` when the
            source has none (SD and ``.npz`` files: the evaluator then writes them from the
            molecules' own bonds and charges).
        headline_protocols: the protocols printed side by side at the end of a run.
        notes: facts about loading (records skipped and why), for the run log.
    """

    name: str
    train: MoleculeDataset
    valid: MoleculeDataset
    layout: FeatureLayout
    key: dict[str, Any]
    reference_smiles: list[str] | None
    headline_protocols: tuple[str, ...]
    notes: dict[str, Any] = field(default_factory=dict)


def data_kind(spec: str) -> str:
    """Which of :data:`DATA_KINDS` a specification names.

    Raises:
        ValueError: the specification names none of them.

    Examples:
        >>> data_kind("qm9"), data_kind("geom:/data/geom"), data_kind("mine.SDF")
        ('qm9', 'geom', 'sdf')
    """
    if spec in ("qm9", "moses3d"):
        return spec
    if spec.startswith("geom:") and len(spec) > 5:
        return "geom"
    suffix = Path(spec).suffix.lower()
    if suffix in (".sdf", ".npz"):
        return suffix[1:]
    raise ValueError(
        f"unknown data {spec!r}: expected 'qm9', 'moses3d', 'geom:<folder with MiDi's split "
        "pickles>', a .sdf file or a symgen .npz dataset file"
    )


def seeded_split(n: int, valid_share: float, seed: int) -> dict[str, np.ndarray]:
    """Train/valid indices from a seeded permutation (valid: ``valid_share``, at least one).

    Examples:
        >>> s = seeded_split(100, 0.05, 0)
        >>> len(s["train"]), len(s["valid"]), len(set(s["train"]) & set(s["valid"]))
        (95, 5, 0)
    """
    if n < 2:
        raise ValueError(f"a training set needs at least 2 molecules (one for validation), got {n}")
    if not 0.0 < valid_share < 1.0:
        raise ValueError(f"valid_share must be in (0, 1), got {valid_share}")
    n_valid = min(n - 1, max(1, int(round(n * valid_share))))
    perm = np.random.default_rng(seed).permutation(n)
    return {"train": np.sort(perm[n_valid:]), "valid": np.sort(perm[:n_valid])}


def dataset_layout(choice: str, molecules: MoleculeDataset) -> FeatureLayout:
    """The feature layout ``choice`` (see :data:`LAYOUT_CHOICES`) for ``molecules``.

    Raises:
        ValueError: an unknown choice, or molecules with an element or charge the layout
            cannot hold (named).
    """
    if choice not in LAYOUT_CHOICES:
        raise ValueError(f"unknown layout {choice!r}; choose from {LAYOUT_CHOICES}")
    numbers = {int(z) for z in np.unique(molecules.atomic_numbers)}
    charges = {int(c) for c in np.unique(molecules.charges)}
    unsupported = sorted(
        SYMBOLS.get(z, f"Z={z}") for z in numbers if SYMBOLS.get(z) not in GEOM_ELEMENTS
    )
    if unsupported:
        raise ValueError(
            f"unsupported element(s) {', '.join(unsupported)}: symgen featurizes the GEOM-DRUG "
            f"elements {' '.join(GEOM_ELEMENTS)}"
        )
    if choice == "qm9":
        layout = FeatureLayout.qm9()
    elif choice == "geom":
        layout = FeatureLayout.geom()
    else:
        present = [s for s in GEOM_ELEMENTS if any(SYMBOLS.get(z) == s for z in numbers)]
        layout = FeatureLayout(tuple(present), tuple(sorted(charges | {0})), BOND_ORDERS)
    missing = sorted(SYMBOLS[z] for z in numbers if SYMBOLS[z] not in layout.elements)
    if missing:
        raise ValueError(
            f"the {choice!r} layout has no channel for element(s) {', '.join(missing)}"
        )
    bad = sorted(c for c in charges if c not in layout.charges)
    if bad:
        raise ValueError(f"the {choice!r} layout has no channel for formal charge(s) {bad}")
    return layout


def read_training_sdf(
    path: str | os.PathLike[str], *, bad_records: str = "skip"
) -> tuple[MoleculeDataset, dict[str, Any]]:
    """Molecules of an SD file for training, with the records left out counted by reason.

    Records need a bond graph; records RDKit cannot read, records without atoms and records
    whose bonds cannot be kept are skipped and counted (``bad_records="skip"``) or refused
    (``"error"``). A file with no usable record is an error, and so is a file whose records
    all lie in the plane z = 0 (2D depictions, not conformers; a planar molecule among 3D
    ones is kept). Elements are checked by :func:`dataset_layout`.

    Returns:
        ``(molecules, notes)``, notes holding ``records``, ``kept`` and ``skipped`` by reason.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a 2D record, a skipped record under ``"error"``, or nothing usable.
    """
    from symgen.molecules.io import read_sdf

    if bad_records not in ("skip", "error"):
        raise ValueError(f"bad_records must be 'skip' or 'error', got {bad_records!r}")
    path = Path(path)
    records = read_sdf(path, errors="keep")
    kept, ids, skipped = [], [], {}
    for i, mol in enumerate(records):
        if mol.num_atoms == 0:  # read_sdf(errors="keep") names an unreadable record's problem
            reason, detail = "unreadable record", mol.name.split(": ", 1)[-1]
        elif mol.bonds is None:
            reason, detail = "bonds that cannot be kept", "; ".join(mol.bond_problems or ())
        else:
            kept.append(mol)
            ids.append(i)
            continue
        if bad_records == "error":
            raise ValueError(
                f"{path}: record {i}: {reason}"
                + (f" ({detail})" if detail else "")
                + "; pass bad_records='skip' to skip it"
            )
        skipped[reason] = skipped.get(reason, 0) + 1
    if not kept:
        raise ValueError(f"{path}: no usable record ({len(records)} records, skipped {skipped})")
    flat = [
        np.allclose(np.asarray(m.positions, dtype=np.float64)[:, 2], 0.0)
        for m in kept
        if m.num_atoms > 2
    ]
    if flat and all(flat):
        raise ValueError(
            f"{path}: every record lies in the plane z = 0 (2D depictions); training needs 3D "
            "conformers with explicit hydrogens"
        )
    ds = MoleculeDataset.from_molecules(kept, ids=ids, metadata={"source": str(path)})
    return ds, {"records": len(records), "kept": len(kept), "skipped": skipped}


def _fitting(molecules: MoleculeDataset, layout: FeatureLayout) -> tuple[MoleculeDataset, int]:
    """The molecules whose elements and charges all have a channel in ``layout``, and how many
    were dropped."""
    z_ok = np.isin(molecules.atomic_numbers, layout.atomic_numbers)
    c_ok = np.isin(molecules.charges, layout.charges)
    bad_atoms = (~(z_ok & c_ok)).astype(np.int64)
    per_molecule = np.add.reduceat(bad_atoms, molecules.atom_offsets[:-1]) if len(bad_atoms) else []
    keep = np.flatnonzero(np.asarray(per_molecule) == 0)
    return molecules.subset(keep), len(molecules) - len(keep)


def _files_signature(paths: list[Path]) -> list[list]:
    """Name, size and modification time of each file: a cheap identity for large files."""
    return [[p.name, p.stat().st_size, int(p.stat().st_mtime)] for p in paths if p.is_file()]


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def load_training_data(
    spec: str,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    layout: str = "auto",
    molecules: int = 20000,
    qm9_limit: int = 0,
    train_limit: int = 0,
    val_limit: int = 1000,
    valid_share: float = 0.02,
    geom_conformers: int = 5,
    bad_records: str = "skip",
    seed: int = 0,
    progress: bool = True,
) -> TrainingData:
    """Load (building and caching where needed) the data ``spec`` names; see the module docs.

    Args:
        spec: ``"qm9"``, ``"moses3d"``, ``"geom:<folder>"``, a ``.sdf`` or a ``.npz`` file.
        cache_dir: symgen cache folder (``None``: the default).
        layout: ``"auto"``, ``"qm9"`` or ``"geom"`` (:func:`dataset_layout`).
        molecules: size of the ``moses3d`` set.
        qm9_limit: parse only the first QM9 molecules (tests and smoke runs).
        train_limit: keep only the first training molecules (0: all).
        val_limit: at most this many validation molecules.
        valid_share: validation share of sets without a published split.
        geom_conformers: conformers per GEOM molecule (MiDi: 5).
        bad_records: ``"skip"`` (count) or ``"error"`` for unusable SD records.
        seed: seed of the split of sets without a published one (not the training seed: runs
            with different training seeds share a split and a canonical cache).
        progress: progress bars while building.

    Raises:
        ValueError: an unknown spec or layout, unsupported elements, unusable files.
        FileNotFoundError: a missing file or folder, or a missing package (named).
    """
    kind = data_kind(spec)
    notes: dict[str, Any] = {}
    if kind == "qm9":
        from symgen.molecules.qm9 import QM9_CACHE_VERSION, load_qm9, qm9_splits

        full = load_qm9(cache_dir, progress=progress, limit=qm9_limit or None)
        split = qm9_splits(len(full))
        train_idx = split["train"][:train_limit] if train_limit else split["train"]
        train = full.subset(train_idx)
        smiles = [full.smiles[i] for i in split["train"]]
        valid = full.subset(split["valid"][:val_limit])
        layout_obj = dataset_layout("qm9" if layout == "auto" else layout, train)
        key: dict[str, Any] = {
            "qm9_build": QM9_CACHE_VERSION,
            "qm9_limit": qm9_limit,
            "train_limit": train_limit,
        }
        return TrainingData("qm9", train, valid, layout_obj, key, smiles, ("midi", "edm"), notes)
    if kind == "geom":
        from symgen.molecules.geom import GEOM_CACHE_VERSION, load_geom_split

        folder = spec[len("geom:") :]
        train = load_geom_split(folder, "train", max_conformers=geom_conformers, progress=progress)
        if train_limit:  # conformers, in file order (a molecule's conformers stay together)
            train = train.subset(np.arange(min(train_limit, len(train))))
        valid = load_geom_split(
            folder, "val", max_conformers=1, limit=val_limit or None, progress=False
        )
        name = "geom-drugs"
        layout_obj = dataset_layout(layout, train)
        valid, dropped = _fitting(valid, layout_obj)
        if dropped:  # validation molecules with an element or charge no training molecule has
            notes["valid_dropped"] = dropped
        if len(valid) == 0 and dropped:
            raise ValueError(f"{folder}: no validation molecule fits the training layout")
        pickles = [Path(folder) / f"{s}_data.pickle" for s in ("train", "val")]
        key = {
            "geom_files": _files_signature(pickles),
            "geom_loader": GEOM_CACHE_VERSION,
            "conformers": geom_conformers,
            "train_conformers": len(train),
        }
        notes["skipped"] = train.metadata.get("skipped")
    else:
        if kind == "moses3d":
            from symgen.molecules.moses3d import build_moses3d

            full = build_moses3d(molecules, cache_dir=cache_dir, progress=progress)
            name = "moses3d"
            recipe = {k: v for k, v in full.metadata.items() if k not in ("failures",)}
            key = {"moses3d": recipe, "kept": len(full)}
        elif kind == "sdf":
            full, notes = read_training_sdf(spec, bad_records=bad_records)
            name = Path(spec).name
            key = {"sdf": _file_digest(Path(spec)), "bad_records": bad_records}
        else:
            path = Path(spec)
            if not path.is_file():
                raise FileNotFoundError(f"no such dataset file: {path}")
            full = MoleculeDataset.load(path)
            name = path.name
            key = {"npz": _file_digest(path)}
        layout_obj = dataset_layout(layout, full)  # from all molecules: none is dropped
        split = seeded_split(len(full), valid_share, seed)
        train_idx = split["train"][:train_limit] if train_limit else split["train"]
        train = full.subset(train_idx)
        valid = full.subset(split["valid"][:val_limit])
        key.update(split_seed=seed, valid_share=valid_share)
    key.update(train_limit=train_limit)
    return TrainingData(
        name,
        train,
        valid,
        layout_obj,
        key,
        list(train.smiles) if kind in ("moses3d", "geom") else None,
        ("midi", "geom-revisited"),
        notes,
    )
