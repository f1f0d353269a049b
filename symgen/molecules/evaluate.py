"""Standalone molecular evaluator: score any model's molecules with the field's published protocols.

Library use::

    report = evaluate(molecules, reference=train_molecules, reference_smiles=train_smiles)
    print(report.table()); report.write_json("metrics.json")

Command line (``python -m symgen.molecules.evaluate --help``)::

    python -m symgen.molecules.evaluate --samples out.sdf --reference qm9-train --json metrics.json

Every metric records the protocol (and its version) that produced it:

==========================  =====================================================================
protocol                    meaning
==========================  =====================================================================
``edm-distance-table``      bonds inferred from geometry with the EDM tables; EDM valences
``charged-valence``         the molecules' own bonds; valences by element and formal charge
``rdkit-sanitize``          RDKit sanitization of atoms + bonds (+ charges); SMILES of the largest
                            fragment (``.../edm-bonds`` or ``.../given-bonds`` says which bonds)
``w1-edm-bonds``            Wasserstein-1 vs the reference, bonds from the EDM tables on both sides
``mmff94-strain``           MMFF94 energy minus energy after MMFF relaxation, kcal/mol (own
                            bonds when the molecules carry them, else EDM bonds)
==========================  =====================================================================

Metric keys: ``atom_stability``, ``molecule_stability``, ``validity``, ``connected_validity``,
``uniqueness``, ``valid_and_unique``, ``novelty`` (geometry protocol), the same with the suffix
``_given_bonds`` (generated-bonds protocol), ``bond_length_w1``, ``bond_angle_w1``,
``atom_count_w1``, ``atom_type_tv``, ``mmff_strain_median``, ``mmff_strain_mean``,
``mmff_setup_rate``.

Denominators: stability, validity and V×U are over *all* input molecules; a molecule that
cannot be scored (no atoms, NaN coordinates, unknown element, overlapping atoms) counts as
unstable and invalid, and its reason is listed in :attr:`EvaluationReport.failures`; the
evaluation never stops on one bad molecule.
"""

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from symgen.molecules.bonds import (
    CHARGED_ALLOWED_VALENCES,
    EDM_ALLOWED_VALENCES,
    bond_matrix,
    infer_bonds_edm,
    stability_charged,
    stability_from_bonds,
)
from symgen.molecules.dataset import MoleculeDataset
from symgen.molecules.elements import SYMBOLS
from symgen.molecules.io import atomic_write, read_sdf, read_xyz
from symgen.molecules.metrics import (
    MIN_DISTANCE,
    bond_angle_samples,
    bond_length_samples,
    canonical_smiles,
    check_bonds,
    check_molecule,
    iter_chunks,
    mmff_strain,
    novelty,
    rdkit_validity,
    total_variation,
    uniqueness,
    wasserstein_by_type,
)
from symgen.molecules.molecule import Molecule

__all__ = ["Metric", "EvaluationReport", "evaluate", "load_reference", "main"]

PROTOCOL_VERSIONS: dict[str, str] = {
    "edm-distance-table": "1",
    "charged-valence": "1",
    "rdkit-sanitize/edm-bonds": "1",
    "rdkit-sanitize/given-bonds": "1",
    "w1-edm-bonds": "1",
    "mmff94-strain": "1",
}
_MAX_REASONS_PER_CHECK = 3


@dataclass(frozen=True)
class Metric:
    """One number with its provenance.

    Attributes:
        value: the metric value (NaN when undefined, e.g. uniqueness without valid molecules).
        protocol: name of the protocol that produced it (see the module docstring).
        version: protocol version; bumped whenever a rule or table changes.
        count: number of molecules (or samples) the value is computed over.
    """

    value: float
    protocol: str
    version: str
    count: int

    def to_dict(self) -> dict:
        """JSON-ready dict; non-finite values become ``None``."""
        v = float(self.value)
        return {
            "value": v if math.isfinite(v) else None,
            "protocol": self.protocol,
            "version": self.version,
            "count": int(self.count),
        }


def _metric(value: float, protocol: str, count: int) -> Metric:
    return Metric(float(value), protocol, PROTOCOL_VERSIONS[protocol], int(count))


@dataclass(frozen=True)
class EvaluationReport:
    """Result of :func:`evaluate`.

    Attributes:
        num_molecules: number of input molecules.
        metrics: metric name -> :class:`Metric`.
        failures: molecule index -> reasons (input problems, unstable atoms, sanitization
            errors, fragments, skipped MMFF), only for molecules with at least one reason.
        details: per-type breakdowns, e.g. ``details["bond_length_w1"]["C-H"]``.
        names: the input molecules' names (for the failure listing).

    Examples:
        >>> xyz = np.array([[0.0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
        >>> water = Molecule(np.array([8, 1, 1]), xyz)
        >>> r = evaluate([water], max_strain_molecules=0)
        >>> r.metrics["molecule_stability"].value, r.metrics["molecule_stability"].protocol
        (1.0, 'edm-distance-table')
    """

    num_molecules: int
    metrics: dict[str, Metric]
    failures: dict[int, tuple[str, ...]] = field(default_factory=dict)
    details: dict[str, dict[str, float]] = field(default_factory=dict)
    names: tuple[str, ...] = ()

    def __getitem__(self, key: str) -> float:
        """The value of metric ``key``."""
        return self.metrics[key].value

    def to_dict(self) -> dict:
        """A JSON-ready dict (non-finite numbers become ``None``)."""

        def clean(x: float) -> float | None:
            return float(x) if math.isfinite(float(x)) else None

        return {
            "num_molecules": self.num_molecules,
            "metrics": {k: m.to_dict() for k, m in self.metrics.items()},
            "details": {k: {t: clean(v) for t, v in d.items()} for k, d in self.details.items()},
            "failures": [
                {
                    "index": i,
                    "name": self.names[i] if i < len(self.names) else "",
                    "reasons": list(r),
                }
                for i, r in sorted(self.failures.items())
            ],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The report as a JSON string (see :meth:`to_dict`)."""
        return json.dumps(self.to_dict(), indent=indent)

    def write_json(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_json` to ``path`` atomically."""
        atomic_write(path, self.to_json() + "\n")

    def table(self) -> str:
        """A plain-text table: metric, value, protocol/version, count."""
        rows = [("metric", "value", "protocol", "n")]
        for k, m in self.metrics.items():
            v = "n/a" if not math.isfinite(m.value) else f"{m.value:.4f}"
            rows.append((k, v, f"{m.protocol} v{m.version}", str(m.count)))
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=False)).rstrip()
            for r in rows
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append(f"{len(self.failures)} of {self.num_molecules} molecules have failure reasons")
        return "\n".join(lines)


def _allowed_text(z: int, charge: int, charged: bool) -> str:
    sym = SYMBOLS.get(int(z), f"Z{z}")
    if charged:
        vals = CHARGED_ALLOWED_VALENCES.get(sym, {}).get(int(charge))
    else:
        vals = EDM_ALLOWED_VALENCES.get(sym)
    return "none" if not vals else "/".join(map(str, vals))


def _stability_reasons(prefix, res, z, charges, mask, charged, indices, failures) -> None:
    """Record 'unstable' reasons; row b of the chunk is molecule ``indices[b]``."""
    for b in np.nonzero(~res.molecule_stable & (res.num_atoms > 0))[0]:
        bad = np.nonzero(mask[b] & ~res.atom_stable[b])[0]
        parts = []
        for a in bad[:_MAX_REASONS_PER_CHECK]:
            q = int(charges[b, a])
            qs = "" if not charged or q == 0 else f"{q:+d}"
            parts.append(
                f"atom {a} {SYMBOLS.get(int(z[b, a]), '?')}{qs} has valence "
                f"{int(res.valence[b, a])} (allowed {_allowed_text(int(z[b, a]), q, charged)})"
            )
        more = (
            f" and {len(bad) - _MAX_REASONS_PER_CHECK} more"
            if len(bad) > _MAX_REASONS_PER_CHECK
            else ""
        )
        failures.setdefault(int(indices[b]), []).append(
            f"{prefix}: unstable: " + "; ".join(parts) + more
        )


def _sample_reference(reference, max_molecules: int, seed: int) -> list[Molecule]:
    n = len(reference)
    if n <= max_molecules:
        idx = np.arange(n)
    else:
        idx = np.sort(np.random.default_rng(seed).choice(n, size=max_molecules, replace=False))
    return [reference[int(i)] for i in idx]


def _geometry_samples(molecules: Sequence[Molecule]) -> tuple[dict, dict, dict]:
    """Bond lengths and angles by type (EDM-inferred bonds) and per-molecule element counts."""
    lengths: dict[str, list] = {}
    angles: dict[str, list] = {}
    for _, p in iter_chunks(molecules):  # sample order is irrelevant for distributions
        a = infer_bonds_edm(p.atomic_numbers, p.positions, p.mask)
        for store, new in (
            (lengths, bond_length_samples(p.atomic_numbers, p.positions, a)),
            (angles, bond_angle_samples(p.atomic_numbers, p.positions, a)),
        ):
            for k, v in new.items():
                store.setdefault(k, []).append(v)
    return (
        {k: np.concatenate(v) for k, v in lengths.items()},
        {k: np.concatenate(v) for k, v in angles.items()},
        _align_counts(molecules),
    )


def _bonds_or_edm(m: Molecule) -> np.ndarray:
    """The molecule's own bonds when sound, else EDM distance-table bonds."""
    if m.bonds is not None and not check_bonds(m):
        return bond_matrix(m.num_atoms, np.asarray(m.bonds), np.asarray(m.bond_orders))
    return infer_bonds_edm(
        np.asarray(m.atomic_numbers, dtype=np.int64), np.asarray(m.positions, dtype=np.float64)
    )


def _validity_metrics(metrics, val, n_mol, ref_set, suffix, protocol, prefix, local) -> None:
    n_valid = int(val.valid.sum())
    smiles = [s for s in val.smiles if s]
    metrics["validity" + suffix] = _metric(n_valid / n_mol if n_mol else math.nan, protocol, n_mol)
    metrics["connected_validity" + suffix] = _metric(
        int(val.connected.sum()) / n_mol if n_mol else math.nan, protocol, n_mol
    )
    metrics["uniqueness" + suffix] = _metric(uniqueness(smiles), protocol, n_valid)
    metrics["valid_and_unique" + suffix] = _metric(
        len(set(smiles)) / n_mol if n_mol else math.nan, protocol, n_mol
    )
    if ref_set is not None:
        metrics["novelty" + suffix] = _metric(novelty(smiles, ref_set), protocol, len(set(smiles)))
    for j in range(len(val.valid)):
        if not val.valid[j]:
            local.setdefault(j, []).append(f"{prefix}: invalid: {val.errors[j]}")
        elif val.num_fragments[j] > 1:
            local.setdefault(j, []).append(
                f"{prefix}: disconnected: {val.num_fragments[j]} fragments"
            )


def _align_counts(molecules: Sequence[Molecule]) -> dict[str, np.ndarray]:
    elements = sorted({int(a) for m in molecules for a in np.asarray(m.atomic_numbers)})
    out = {"atoms": np.array([m.num_atoms for m in molecules], dtype=np.int64)}
    for e in elements:
        out[SYMBOLS.get(e, f"Z{e}")] = np.array(
            [int(np.sum(np.asarray(m.atomic_numbers) == e)) for m in molecules], dtype=np.int64
        )
    return out


def evaluate(
    molecules: Sequence[Molecule],
    *,
    reference: Sequence[Molecule] | MoleculeDataset | None = None,
    reference_smiles: Sequence[str] | set[str] | None = None,
    protocols: Sequence[str] = ("edm", "bonds"),
    max_strain_molecules: int = 1000,
    strain_max_iters: int = 200,
    max_reference_molecules: int = 10_000,
    min_distance: float = MIN_DISTANCE,
    seed: int = 0,
    progress: bool = False,
) -> EvaluationReport:
    """Score generated molecules; every metric names its protocol (see the module docstring).

    Args:
        molecules: the generated molecules (bonds/charges optional).
        reference: reference molecules (e.g. the training set) for the geometry distances; a
            random subset of ``max_reference_molecules`` (drawn with ``seed``) is used.
        reference_smiles: reference SMILES for novelty (canonicalized here, no stereo). When
            omitted but ``reference`` is given, they are derived from the reference molecules
            (their own bonds, or EDM-inferred), which is slower for large sets.
        protocols: ``"edm"`` (geometry-only stability/validity) and/or ``"bonds"`` (the
            molecules' own bonds and charges; skipped when no molecule has bonds).
        max_strain_molecules: MMFF strain on the first (at most) this many scorable molecules,
            using their own bonds when the molecules carry bonds, else EDM bonds (0 disables);
            molecules MMFF cannot handle count in ``mmff_setup_rate``, not in the strain.
        strain_max_iters: maximum MMFF minimizer iterations per molecule.
        max_reference_molecules: cap on reference molecules used for geometry distances.
        min_distance: atoms closer than this (Å) make a molecule a failure ("overlapping").
        seed: seed of the reference subsample.
        progress: show tqdm progress bars.

    Returns:
        An :class:`EvaluationReport`.

    Examples:
        >>> ch4 = Molecule(np.array([6, 1, 1, 1, 1]), np.array([[0, 0, 0], [.63, .63, .63],
        ...     [-.63, -.63, .63], [-.63, .63, -.63], [.63, -.63, -.63]], dtype=float))
        >>> evaluate([ch4, ch4], max_strain_molecules=0)["uniqueness"]
        0.5
    """
    unknown = set(protocols) - {"edm", "bonds"}
    if unknown or not protocols:
        raise ValueError(
            f"protocols must be a non-empty subset of ('edm', 'bonds'), got {protocols}"
        )
    if max_strain_molecules < 0 or strain_max_iters < 1 or max_reference_molecules < 1:
        raise ValueError(
            "max_strain_molecules must be >= 0, strain_max_iters and max_reference_molecules >= 1"
        )
    n_mol = len(molecules)
    failures: dict[int, list[str]] = {}
    metrics: dict[str, Metric] = {}
    details: dict[str, dict[str, float]] = {}
    sound_idx = []
    for i, m in enumerate(molecules):
        problems = check_molecule(m, min_distance=min_distance)
        if problems:
            failures[i] = list(problems)
        else:
            sound_idx.append(i)
    sound = [molecules[i] for i in sound_idx]
    total_atoms = sum(int(np.asarray(m.atomic_numbers).size) for m in molecules)
    ref_set = None
    if reference_smiles is not None:
        ref_set = canonical_smiles(reference_smiles, progress=progress)
    ref: list[Molecule] = []
    if reference is not None:
        ref = [
            m
            for m in _sample_reference(reference, max_reference_molecules, seed)
            if not check_molecule(m, min_distance=min_distance)
        ]
        if ref_set is None:  # novelty against every reference molecule, not the subsample
            full = [reference[i] for i in range(len(reference))]
            full = [m for m in full if not check_molecule(m, min_distance=min_distance)]
            ref_val = rdkit_validity(full, [_bonds_or_edm(m) for m in full], progress=progress)
            ref_set = {s for s in ref_val.smiles if s}

    def remap(local: dict[int, list[str]]) -> None:
        for j, reasons in local.items():
            failures.setdefault(sound_idx[j], []).extend(reasons)

    edm_bonds: list[np.ndarray] = []
    if "edm" in protocols:
        local: dict[int, list[str]] = {}
        stable_atoms = stable_mols = 0
        edm_bonds = [np.zeros((0, 0), np.int64)] * len(sound)
        for idx, p in iter_chunks(sound):
            a = infer_bonds_edm(p.atomic_numbers, p.positions, p.mask)
            res = stability_from_bonds(p.atomic_numbers, a, p.mask, table="edm")
            stable_atoms += int(res.atom_stable.sum())
            stable_mols += int(res.molecule_stable.sum())
            _stability_reasons("edm", res, p.atomic_numbers, p.charges, p.mask, False, idx, local)
            for b, k in enumerate(p.mask.sum(-1).tolist()):
                edm_bonds[int(idx[b])] = a[b, :k, :k]
        metrics["atom_stability"] = _metric(
            stable_atoms / total_atoms if total_atoms else math.nan,
            "edm-distance-table",
            total_atoms,
        )
        metrics["molecule_stability"] = _metric(
            stable_mols / n_mol if n_mol else math.nan, "edm-distance-table", n_mol
        )
        val = rdkit_validity(sound, edm_bonds, use_charges=False, progress=progress)
        _validity_metrics(
            metrics, val, n_mol, ref_set, "", "rdkit-sanitize/edm-bonds", "edm", local
        )
        remap(local)

    given_bonds: list[np.ndarray | None] = [None] * len(sound)
    if "bonds" in protocols and any(m.bonds is not None for m in sound):
        local = {}
        ok_idx = []
        for j, m in enumerate(sound):
            if m.bonds is None:
                local.setdefault(j, []).append("bonds: no bonds given")
                continue
            problems = check_bonds(m)
            if problems:
                local.setdefault(j, []).extend(f"bonds: {p}" for p in problems)
                continue
            ok_idx.append(j)
        ok = [sound[j] for j in ok_idx]
        stable_atoms = stable_mols = 0
        sub_local: dict[int, list[str]] = {}
        for idx, p in iter_chunks(ok):
            res = stability_charged(p.atomic_numbers, p.charges, p.bonds, p.mask)
            stable_atoms += int(res.atom_stable.sum())
            stable_mols += int(res.molecule_stable.sum())
            _stability_reasons(
                "bonds", res, p.atomic_numbers, p.charges, p.mask, True, idx, sub_local
            )
            for b, k in enumerate(p.mask.sum(-1).tolist()):
                given_bonds[ok_idx[int(idx[b])]] = p.bonds[b, :k, :k]
        metrics["atom_stability_given_bonds"] = _metric(
            stable_atoms / total_atoms if total_atoms else math.nan, "charged-valence", total_atoms
        )
        metrics["molecule_stability_given_bonds"] = _metric(
            stable_mols / n_mol if n_mol else math.nan, "charged-valence", n_mol
        )
        val = rdkit_validity(
            ok, [given_bonds[j] for j in ok_idx], use_charges=True, progress=progress
        )
        _validity_metrics(
            metrics,
            val,
            n_mol,
            ref_set,
            "_given_bonds",
            "rdkit-sanitize/given-bonds",
            "bonds",
            sub_local,
        )
        for j, reasons in sub_local.items():
            local.setdefault(ok_idx[j], []).extend(reasons)
        remap(local)

    if reference is not None:
        g_len, g_ang, g_cnt = _geometry_samples(sound)
        r_len, r_ang, r_cnt = _geometry_samples(ref)
        for key, gen, rf in (("bond_length_w1", g_len, r_len), ("bond_angle_w1", g_ang, r_ang)):
            w = wasserstein_by_type(gen, rf)
            details[key] = w
            metrics[key] = _metric(w["mean"], "w1-edm-bonds", len(sound))
        w = wasserstein_by_type(g_cnt, r_cnt, min_count=1)
        details["atom_count_w1"] = w
        metrics["atom_count_w1"] = _metric(w["mean"], "w1-edm-bonds", len(sound))
        metrics["atom_type_tv"] = _metric(total_variation(g_cnt, r_cnt), "w1-edm-bonds", len(sound))

    if max_strain_molecules > 0 and sound:
        cand = (
            [j for j in range(len(sound)) if given_bonds[j] is not None]
            if any(b is not None for b in given_bonds)
            else list(range(len(sound)))
        )
        picked = cand[:max_strain_molecules]
        bonds = [
            given_bonds[j]
            if given_bonds[j] is not None
            else (
                edm_bonds[j]
                if edm_bonds
                else infer_bonds_edm(
                    np.asarray(sound[j].atomic_numbers, dtype=np.int64),
                    np.asarray(sound[j].positions, dtype=np.float64),
                )
            )
            for j in picked
        ]
        st = mmff_strain(
            [sound[j] for j in picked], bonds, max_iters=strain_max_iters, progress=progress
        )
        fin = st.strain[np.isfinite(st.strain)]
        metrics["mmff_strain_median"] = _metric(
            np.median(fin) if len(fin) else math.nan, "mmff94-strain", len(fin)
        )
        metrics["mmff_strain_mean"] = _metric(
            np.mean(fin) if len(fin) else math.nan, "mmff94-strain", len(fin)
        )
        metrics["mmff_setup_rate"] = _metric(st.setup_rate, "mmff94-strain", len(picked))
        details["mmff"] = {
            "converged_rate": float(st.converged[np.isfinite(st.strain)].mean())
            if len(fin)
            else math.nan,
            "attempted": float(len(picked)),
        }
        for j, reason in zip(picked, st.reasons, strict=False):
            if reason:
                failures.setdefault(sound_idx[j], []).append(f"mmff: {reason}")

    return EvaluationReport(
        num_molecules=n_mol,
        metrics=metrics,
        failures={i: tuple(r) for i, r in sorted(failures.items())},
        details=details,
        names=tuple(m.name for m in molecules),
    )


def load_reference(spec: str, *, cache_dir: str | None = None, progress: bool = True):
    """Resolve a ``--reference`` value to ``(molecules or None, smiles)``.

    ``qm9-train`` / ``qm9-valid`` / ``qm9-test`` / ``qm9`` (all) load QM9 through
    :func:`symgen.molecules.qm9.load_qm9_split`; a ``.sdf`` or ``.xyz`` path is read as
    molecules (SMILES derived from them); any other file is read as SMILES, one per line
    (first whitespace-separated token; lines starting with ``#`` skipped).

    Raises:
        FileNotFoundError: the path does not exist.
    """
    if spec.lower().startswith("qm9"):
        from symgen.molecules.qm9 import load_qm9, load_qm9_split

        split = spec.lower()[3:].lstrip("-_")
        ds = (
            load_qm9(cache_dir, progress=progress)
            if split in ("", "all")
            else load_qm9_split(split, cache_dir, progress=progress)
        )
        return ds, list(ds.smiles)
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(
            f"reference {spec!r}: not a QM9 split name (qm9-train, "
            "qm9-valid, qm9-test, qm9) and no such file"
        )
    if path.suffix.lower() == ".sdf":
        return read_sdf(path, errors="keep"), None
    if path.suffix.lower() == ".xyz":
        return read_xyz(path, errors="keep"), None
    smiles = [
        ln.split()[0]
        for ln in path.read_text().splitlines()
        if ln.strip() and not ln.lstrip().startswith("#")
    ]
    return None, smiles


def _read_samples(path: str) -> list[Molecule]:
    suffix = Path(path).suffix.lower()
    if suffix == ".sdf":
        return read_sdf(path, errors="keep")
    if suffix == ".xyz":
        return read_xyz(path, errors="keep")
    raise ValueError(f"--samples must be an .sdf or .xyz file, got {path!r}")


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``python -m symgen.molecules.evaluate --help``)."""
    parser = argparse.ArgumentParser(
        prog="python -m symgen.molecules.evaluate",
        description="Score generated 3D molecules (SDF or XYZ) with published protocols: EDM "
        "distance-table stability, RDKit validity/uniqueness/novelty, geometry W1 "
        "distances and MMFF94 strain. Every number names its protocol.",
    )
    parser.add_argument("--samples", required=True, help="generated molecules, .sdf or .xyz")
    parser.add_argument(
        "--reference",
        default=None,
        help="qm9-train | qm9-valid | qm9-test | qm9, or an .sdf/.xyz file, or a "
        "SMILES file (novelty only)",
    )
    parser.add_argument("--json", default=None, help="write the report as JSON here (atomically)")
    parser.add_argument(
        "--protocol",
        choices=("all", "edm", "bonds"),
        default="all",
        help="edm: geometry-only bonds; bonds: the file's own bonds and charges; "
        "all: both (default)",
    )
    parser.add_argument(
        "--max-strain-molecules",
        type=int,
        default=1000,
        help="MMFF strain on at most this many molecules (0 disables; default 1000)",
    )
    parser.add_argument(
        "--strain-max-iters",
        type=int,
        default=200,
        help="MMFF minimizer iterations per molecule (default 200)",
    )
    parser.add_argument(
        "--max-reference-molecules",
        type=int,
        default=10_000,
        help="reference molecules used for geometry distances (default 10000)",
    )
    parser.add_argument("--cache-dir", default=None, help="symgen cache folder for QM9")
    parser.add_argument("--seed", type=int, default=0, help="seed of the reference subsample")
    parser.add_argument(
        "--png", default=None, help="also draw the first --num-pictures as a PNG grid"
    )
    parser.add_argument(
        "--html", default=None, help="also write a 3D HTML view of the first molecules"
    )
    parser.add_argument("--num-pictures", type=int, default=24, help="molecules in --png/--html")
    parser.add_argument(
        "--max-failures-shown",
        type=int,
        default=10,
        help="failure reasons printed (all are in the JSON; default 10)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    try:
        samples = _read_samples(args.samples)
        ref_mols, ref_smiles = (None, None)
        if args.reference:
            ref_mols, ref_smiles = load_reference(
                args.reference, cache_dir=args.cache_dir, progress=not args.no_progress
            )
        protocols = ("edm", "bonds") if args.protocol == "all" else (args.protocol,)
        report = evaluate(
            samples,
            reference=ref_mols,
            reference_smiles=ref_smiles,
            protocols=protocols,
            max_strain_molecules=args.max_strain_molecules,
            strain_max_iters=args.strain_max_iters,
            max_reference_molecules=args.max_reference_molecules,
            seed=args.seed,
            progress=not args.no_progress,
        )
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.samples}: {report.num_molecules} molecules")
    print(report.table())
    for i, reasons in list(report.failures.items())[: max(args.max_failures_shown, 0)]:
        print(f"  #{i} {report.names[i]!r}: " + " | ".join(reasons))
    if args.json:
        report.write_json(args.json)
        print(f"wrote {args.json}")
    if args.png or args.html:
        from symgen.molecules.io import draw_grid_png, write_html_3d

        shown = [m for m in samples if not check_molecule(m)][: args.num_pictures]
        if args.png:
            draw_grid_png(shown, args.png)
            print(f"wrote {args.png}")
        if args.html:
            write_html_3d(shown, args.html)
            print(f"wrote {args.html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
