"""Standalone molecular evaluator: score any model's molecules with the field's published protocols.

Library use::

    report = evaluate(molecules, protocols=["edm", "midi"], reference=train_molecules)
    report["midi/molecule_stability"]; print(report.table()); report.write_json("metrics.json")

Command line (``python -m symgen.molecules.evaluate --help``)::

    python -m symgen.molecules.evaluate --samples out.sdf --reference qm9-train --protocol edm midi

Every number carries the name and version of the protocol that produced it; report keys are
``"<protocol>/<metric>"``. The protocols (:data:`symgen.molecules.protocols.REGISTRY`, one
module each with its tables, procedure and source):

==========================  =====================================================================
protocol                    what it reproduces
==========================  =====================================================================
``edm``                     EDM (Hoogeboom et al. 2022): distance-table bonds, EDM valences,
                            validity of the largest fragment, uniqueness, novelty
``midi``                    MiDi (Vignac et al. 2023; also SemlaFlow, FlowMol): charge-aware
                            valences on the molecules' own bonds and charges, validity,
                            connectivity, uniqueness, novelty
``geom-revisited``          GEOM-Drugs Revisited (Nikitin et al. 2025): data-derived valences,
                            validity and connectivity, GFN2-xTB ΔE_relax, RMSD, geometry changes
                            (the relaxation needs the ``xtb`` extra)
``posebusters``             PoseBusters ``mol`` checks (``posebusters`` extra)
``symgen-charged-valence``  symgen's strict charge-aware valences (no neutral radicals)
``symgen-composition``      net charge, fragments, close atom pairs of the set
``symgen-geometry-w1``      W1 distances of bond lengths / angles / atom counts to a reference
``mmff94-strain``           MMFF94 energy minus relaxed energy, kcal/mol
==========================  =====================================================================

Denominators: every rate of a stability or validity protocol is over *all* input molecules
(and their atoms). A molecule no protocol can take (no atoms, an unknown element, non-finite
coordinates, a record its reader flagged) counts as unstable and invalid with all its atoms,
and is listed with its reason in :attr:`EvaluationReport.failures`; the evaluation never stops
on one bad molecule. Close or coincident atoms are scored like any others (as EDM does).
"""

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from symgen.files import atomic_write_json
from symgen.molecules.dataset import MoleculeDataset
from symgen.molecules.io import MOLECULE_SUFFIXES, read_molecules, read_sdf, read_xyz
from symgen.molecules.metrics import MIN_DISTANCE, check_molecule
from symgen.molecules.molecule import Molecule
from symgen.molecules.protocols import REGISTRY, EvaluationContext

__all__ = [
    "Metric",
    "EvaluationReport",
    "evaluate",
    "available_protocols",
    "select_protocols",
    "load_reference",
    "main",
]


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
        metrics: ``"<protocol>/<metric>"`` -> :class:`Metric`.
        failures: molecule index -> reasons (input problems, unstable atoms, sanitization
            errors, fragments, skipped relaxations), only for molecules with a reason.
        details: per-type breakdowns, e.g. ``details["symgen-geometry-w1/bond_length_w1"]``.
        names: the input molecules' names (for the failure listing).
        notes: how to read the numbers (tables used, protocols or parts skipped and why).
        seconds: wall-clock seconds each protocol took (shared work is charged to the first
            protocol that needs it).

    Examples:
        >>> xyz = np.array([[0.0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
        >>> water = Molecule(np.array([8, 1, 1]), xyz)
        >>> r = evaluate([water], protocols=["edm"])
        >>> m = r.metrics["edm/molecule_stability"]
        >>> m.value, m.protocol, m.version
        (1.0, 'edm', '1')
    """

    num_molecules: int
    metrics: dict[str, Metric]
    failures: dict[int, tuple[str, ...]] = field(default_factory=dict)
    details: dict[str, dict[str, float]] = field(default_factory=dict)
    names: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    seconds: dict[str, float] = field(default_factory=dict)

    def __getitem__(self, key: str) -> float:
        """The value of metric ``"<protocol>/<metric>"``."""
        if key not in self.metrics:
            raise KeyError(f"no metric {key!r}; this report has: {', '.join(self.metrics)}")
        return self.metrics[key].value

    def get(self, key: str, default: float = math.nan) -> float:
        """The value of metric ``key``, or ``default`` when the report lacks it."""
        return self.metrics[key].value if key in self.metrics else default

    @property
    def protocols(self) -> list[str]:
        """Names of the protocols with at least one metric, in report order."""
        return list(dict.fromkeys(m.protocol for m in self.metrics.values()))

    def to_dict(self) -> dict:
        """A JSON-ready dict (non-finite numbers become ``None``)."""

        def clean(x: float) -> float | None:
            return float(x) if math.isfinite(float(x)) else None

        return {
            "num_molecules": self.num_molecules,
            "metrics": {k: m.to_dict() for k, m in self.metrics.items()},
            "details": {k: {t: clean(v) for t, v in d.items()} for k, d in self.details.items()},
            "notes": list(self.notes),
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
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
        """A plain-text table: protocol and version, metric, value, count; then the notes."""
        rows = [("protocol", "metric", "value", "n")]
        for k, m in self.metrics.items():
            v = "n/a" if not math.isfinite(m.value) else f"{m.value:.4f}"
            rows.append((f"{m.protocol} v{m.version}", k.split("/", 1)[1], v, str(m.count)))
        lines = _format_rows(rows)
        lines.extend(f"note: {n}" for n in self.notes)
        lines.append(f"{len(self.failures)} of {self.num_molecules} molecules have failure reasons")
        return "\n".join(lines)

    def side_by_side(self, protocols: Sequence[str]) -> str:
        """Metrics shared by several protocols in one row, a column per protocol.

        Examples:
            >>> print(evaluate([Molecule(np.array([1, 1]), np.array([[0.0, 0, 0], [0.74, 0, 0]]))],
            ...                protocols=["edm"]).side_by_side(["edm"]).splitlines()[2])
            atom_stability      1.0000
        """
        keys: list[str] = []
        for k, m in self.metrics.items():
            name = k.split("/", 1)[1]
            if m.protocol in protocols and name not in keys:
                keys.append(name)
        header = ("metric", *(f"{p} v{REGISTRY[p].version}" for p in protocols))
        rows = [header]
        for name in keys:
            cells = []
            for p in protocols:
                m = self.metrics.get(f"{p}/{name}")
                cells.append(
                    "-" if m is None else "n/a" if not math.isfinite(m.value) else f"{m.value:.4f}"
                )
            rows.append((name, *cells))
        return "\n".join(_format_rows(rows))


def _format_rows(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def available_protocols() -> list[str]:
    """Names of the protocols whose extras are installed (the default of :func:`evaluate`)."""
    return [name for name, p in REGISTRY.items() if p.available]


def select_protocols(protocols: Sequence[str] | None) -> list[str]:
    """Check protocol names and return them in registry order (``None``: the available ones).

    Raises:
        ValueError: an unknown name (the message lists the known ones) or an empty list.
        ImportError: a named protocol whose extra is not installed (the message says which).
    """
    if protocols is None:
        return available_protocols()
    if isinstance(protocols, str):
        protocols = [protocols]
    unknown = [p for p in protocols if p not in REGISTRY]
    if unknown or not protocols:
        raise ValueError(
            f"unknown protocol(s) {unknown or '(none given)'}; choose from {', '.join(REGISTRY)}"
        )
    for p in protocols:
        entry = REGISTRY[p]
        if not entry.available:
            raise ImportError(
                f"protocol {p!r} needs {', '.join(entry.requires)}: "
                f'pip install "symgen[{entry.extra}]"'
            )
    return [p for p in REGISTRY if p in set(protocols)]


def evaluate(
    molecules: Sequence[Molecule],
    *,
    protocols: Sequence[str] | None = None,
    reference: Sequence[Molecule] | MoleculeDataset | None = None,
    reference_smiles: Sequence[str] | set[str] | None = None,
    max_strain_molecules: int = 1000,
    strain_max_iters: int = 200,
    max_reference_molecules: int = 10_000,
    max_xtb_molecules: int = 0,
    max_posebusters_molecules: int = 100,
    min_distance: float = MIN_DISTANCE,
    seed: int = 0,
    progress: bool = False,
) -> EvaluationReport:
    """Score generated molecules under named protocols (see the module docstring).

    Args:
        molecules: the generated molecules (bonds and charges optional; the protocols on own
            bonds skip molecules without them, with a reason).
        protocols: protocol names (:data:`~symgen.molecules.protocols.REGISTRY`); default every
            protocol whose extra is installed (:func:`available_protocols`).
        reference: reference molecules (e.g. the training set): geometry distances (a random
            subset of ``max_reference_molecules``, drawn with ``seed``), EDM's novelty
            reference, the ``geom-revisited`` valence table.
        reference_smiles: reference SMILES for novelty (canonicalized here). When omitted but
            ``reference`` is given, they are derived from the reference molecules.
        max_strain_molecules: MMFF strain on at most this many molecules (0 disables).
        strain_max_iters: maximum MMFF minimizer iterations per molecule.
        max_reference_molecules: cap on reference molecules for geometry distances and the
            ``geom-revisited`` table.
        max_xtb_molecules: GFN2-xTB relaxations in ``geom-revisited`` (0: none; seconds each).
        max_posebusters_molecules: molecules checked by ``posebusters``.
        min_distance: reference molecules with atoms closer than this (Å) are not used.
        seed: seed of the reference subsample.
        progress: show tqdm progress bars.

    Returns:
        An :class:`EvaluationReport`.

    Raises:
        ValueError: an unknown protocol or a negative limit.
        ImportError: a named protocol's extra is missing.

    Examples:
        >>> ch4 = Molecule(np.array([6, 1, 1, 1, 1]), np.array([[0, 0, 0], [.63, .63, .63],
        ...     [-.63, -.63, .63], [-.63, .63, -.63], [.63, -.63, -.63]], dtype=float))
        >>> evaluate([ch4, ch4], protocols=["edm"])["edm/uniqueness"]
        0.5
    """
    names = select_protocols(protocols)
    if (
        min(max_strain_molecules, max_xtb_molecules, max_posebusters_molecules) < 0
        or strain_max_iters < 1
        or max_reference_molecules < 1
    ):
        raise ValueError(
            "max_strain_molecules, max_xtb_molecules and max_posebusters_molecules must be "
            ">= 0, strain_max_iters and max_reference_molecules >= 1"
        )
    failures: dict[int, list[str]] = {}
    sound_idx = []
    for i, m in enumerate(molecules):
        problems = check_molecule(m, min_distance=0.0)  # close atoms are scored, as EDM does
        if problems:
            failures[i] = ["not scorable: " + p for p in problems]
        else:
            sound_idx.append(i)
    context = EvaluationContext(
        molecules=tuple(molecules[i] for i in sound_idx),
        num_molecules=len(molecules),
        num_atoms=sum(int(np.asarray(m.atomic_numbers).size) for m in molecules),
        reference=reference,
        reference_smiles=reference_smiles,
        max_reference_molecules=max_reference_molecules,
        max_strain_molecules=max_strain_molecules,
        strain_max_iters=strain_max_iters,
        max_xtb_molecules=max_xtb_molecules,
        max_posebusters_molecules=max_posebusters_molecules,
        min_distance=min_distance,
        seed=seed,
        progress=progress,
    )
    metrics: dict[str, Metric] = {}
    details: dict[str, dict[str, float]] = {}
    notes: list[str] = []
    seconds: dict[str, float] = {}
    if failures:
        notes.append(
            f"{len(failures)} molecule(s) not scorable (see failures): unstable and invalid "
            "under every stability and validity protocol, in their denominators"
        )
    for name in names:
        protocol = REGISTRY[name]
        t0 = time.perf_counter()
        scores = protocol.score(context)
        seconds[name] = time.perf_counter() - t0
        for key, (value, count) in scores.metrics.items():
            metrics[f"{name}/{key}"] = Metric(
                float(value), protocol.name, protocol.version, int(count)
            )
        details.update({f"{name}/{k}": v for k, v in scores.details.items()})
        notes.extend(scores.notes)
        for j, reasons in scores.reasons.items():
            failures.setdefault(sound_idx[j], []).extend(reasons)
    return EvaluationReport(
        num_molecules=len(molecules),
        metrics=metrics,
        failures={i: tuple(r) for i, r in sorted(failures.items())},
        details=details,
        names=tuple(m.name for m in molecules),
        notes=tuple(notes),
        seconds=seconds,
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
        return read_sdf(path), None
    if path.suffix.lower() == ".xyz":
        return read_xyz(path), None
    smiles = [
        ln.split()[0]
        for ln in path.read_text().splitlines()
        if ln.strip() and not ln.lstrip().startswith("#")
    ]
    from rdkit import Chem, RDLogger

    head = smiles[:100]
    RDLogger.DisableLog("rdApp.*")
    try:
        parsed = sum(Chem.MolFromSmiles(s) is not None for s in head)
    finally:
        RDLogger.EnableLog("rdApp.*")
    if 2 * parsed <= len(head):
        raise ValueError(
            f"reference {spec!r}: {len(head) - parsed} of its first {len(head)} lines are not "
            "SMILES (expected a QM9 split name, an .sdf/.xyz file, or one SMILES per line)"
        )
    return None, smiles


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``python -m symgen.molecules.evaluate --help``).

    Returns 0 on success, 2 for unreadable, empty or malformed input or bad options (the
    message names the file, the record and the reason).
    """
    parser = argparse.ArgumentParser(
        prog="python -m symgen.molecules.evaluate",
        description="Score generated 3D molecules (SDF, multi-record XYZ, or a folder of XYZ "
        "files as EDM writes its samples) under the field's published protocols. Every number "
        "names its protocol and version.",
    )
    parser.add_argument(
        "--samples",
        required=True,
        help=f"generated molecules: a file ({', '.join(MOLECULE_SUFFIXES)}) or a folder of them",
    )
    parser.add_argument(
        "--reference",
        default=None,
        help="qm9-train | qm9-valid | qm9-test | qm9, or an .sdf/.xyz file, or a "
        "SMILES file (novelty only)",
    )
    parser.add_argument("--json", default=None, help="write the report as JSON here (atomically)")
    parser.add_argument(
        "--protocol",
        nargs="+",
        default=None,
        metavar="NAME",
        help=f"protocols to run, any of: {', '.join(REGISTRY)} (default: every protocol "
        "whose extra is installed)",
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
        "--xtb-molecules",
        type=int,
        default=100,
        help="GFN2-xTB relaxations of geom-revisited (needs the xtb extra; 0 disables; "
        "default 100)",
    )
    parser.add_argument(
        "--posebusters-molecules",
        type=int,
        default=100,
        help="molecules checked by posebusters (about a second each; default 100)",
    )
    parser.add_argument(
        "--max-reference-molecules",
        type=int,
        default=10_000,
        help="reference molecules used for geometry distances (a random subset; default 10000)",
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
        protocols = select_protocols(args.protocol)
        samples = read_molecules(args.samples)
        if all(m.num_atoms == 0 for m in samples):
            raise ValueError(f"{args.samples}: no molecule has any atom")
        ref_mols, ref_smiles = (None, None)
        if args.reference:
            ref_mols, ref_smiles = load_reference(
                args.reference, cache_dir=args.cache_dir, progress=not args.no_progress
            )
        report = evaluate(
            samples,
            protocols=protocols,
            reference=ref_mols,
            reference_smiles=ref_smiles,
            max_strain_molecules=args.max_strain_molecules,
            strain_max_iters=args.strain_max_iters,
            max_xtb_molecules=args.xtb_molecules,
            max_posebusters_molecules=args.posebusters_molecules,
            max_reference_molecules=args.max_reference_molecules,
            seed=args.seed,
            progress=not args.no_progress,
        )
    except (OSError, ValueError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.samples}: {report.num_molecules} molecules")
    if not any(m.has_bonds for m in samples):
        print("note: no bonds in the input: only the geometry-based protocols score it")
    if not any(int(z) == 1 for m in samples for z in np.asarray(m.atomic_numbers)):
        print("note: no explicit hydrogens in the input: every protocol here expects them")
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
