"""Standalone molecular evaluator: score any model's molecules with the field's published protocols.

Library use::

    report = evaluate(molecules, reference=train_molecules, reference_smiles=train_smiles)
    print(report.table()); report.write_json("metrics.json")

Command line (``python -m symgen.molecules.evaluate --help``)::

    python -m symgen.molecules.evaluate --samples out.sdf --reference qm9-train --json metrics.json

Every metric records the protocol (and its version) that produced it. Each protocol is a small
module of :mod:`symgen.molecules.protocols` (source, rules, metric keys); :func:`evaluate`
checks the input, builds the protocols' shared context and runs the entries of
:data:`symgen.molecules.protocols.REGISTRY` in order:

==========================  =====================================================================
protocol                    meaning
==========================  =====================================================================
``edm-distance-table``      bonds inferred from geometry with the EDM tables; EDM valences
``charged-valence``         the molecules' own bonds; valences by element and formal charge
``rdkit-sanitize``          RDKit sanitization of atoms + bonds (+ charges); SMILES of the largest
                            fragment (``.../edm-bonds`` or ``.../given-bonds`` says which bonds)
``w1-edm-bonds``            Wasserstein-1 vs the reference, bonds from the EDM tables on both sides
``mmff94-strain``           MMFF94 energy minus energy after MMFF relaxation, kcal/mol (own
                            bonds when ``"bonds"`` is selected and molecules carry them, else
                            EDM bonds)
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

from symgen.files import atomic_write_json
from symgen.molecules.dataset import MoleculeDataset
from symgen.molecules.io import read_sdf, read_xyz
from symgen.molecules.metrics import MIN_DISTANCE, check_molecule
from symgen.molecules.molecule import Molecule
from symgen.molecules.protocols import FAMILIES, REGISTRY, EvaluationContext

__all__ = ["Metric", "EvaluationReport", "evaluate", "load_reference", "main"]


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
        """Write :meth:`to_json` (and a final newline) to ``path`` atomically."""
        atomic_write_json(path, self.to_dict())

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
            using their own bonds when ``"bonds"`` is selected and some molecules carry sound
            bonds (then only those are candidates), else EDM bonds (0 disables); molecules
            MMFF cannot handle count in ``mmff_setup_rate``, not in the strain.
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
    unknown = set(protocols) - set(FAMILIES)
    if unknown or not protocols:
        raise ValueError(f"protocols must be a non-empty subset of {FAMILIES}, got {protocols}")
    if max_strain_molecules < 0 or strain_max_iters < 1 or max_reference_molecules < 1:
        raise ValueError(
            "max_strain_molecules must be >= 0, strain_max_iters and max_reference_molecules >= 1"
        )
    failures: dict[int, list[str]] = {}
    sound_idx = []
    for i, m in enumerate(molecules):
        problems = check_molecule(m, min_distance=min_distance)
        if problems:
            failures[i] = list(problems)
        else:
            sound_idx.append(i)
    context = EvaluationContext(
        molecules=tuple(molecules[i] for i in sound_idx),
        num_molecules=len(molecules),
        num_atoms=sum(int(np.asarray(m.atomic_numbers).size) for m in molecules),
        families=frozenset(protocols),
        reference=reference,
        reference_smiles=reference_smiles,
        max_reference_molecules=max_reference_molecules,
        max_strain_molecules=max_strain_molecules,
        strain_max_iters=strain_max_iters,
        min_distance=min_distance,
        seed=seed,
        progress=progress,
    )
    metrics: dict[str, Metric] = {}
    details: dict[str, dict[str, float]] = {}
    for protocol in REGISTRY.values():
        if protocol.family is not None and protocol.family not in protocols:
            continue
        scores = protocol.score(context)
        for key, (value, count) in scores.metrics.items():
            metrics[key] = Metric(float(value), protocol.name, protocol.version, int(count))
        details.update(scores.details)
        for j, reasons in scores.reasons.items():
            failures.setdefault(sound_idx[j], []).extend(reasons)
    return EvaluationReport(
        num_molecules=len(molecules),
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
        from symgen.molecules.pictures import draw_grid_png, write_html_3d

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
