"""``moses3d``: an offline drug-like 3D set, MOSES SMILES embedded with RDKit (not GEOM-DRUGS).

GEOM-DRUGS cannot be downloaded on machines without network access; the MOSES benchmark's
SMILES (Polykovskiy et al. 2020, *Molecular Sets (MOSES)*, Front. Pharmacol. 11:565644) ship
inside the ``molsets`` wheel (1.58 M train / 176 k test molecules, drug-like: molecular weight
250–350, no charged atoms, elements C N O F S Cl Br H). This module turns them into a 3D set
under its own name, ``moses3d`` (recipe version :data:`MOSES3D_VERSION`):

1. the SMILES of a split are read from the wheel's ``moses/dataset/data/<split>.csv.gz``
   directly (the ``moses`` package is never imported: its pinned dependencies are old; install
   the wheel with ``pip install --no-deps molsets``);
2. ``num_molecules`` of them are drawn without replacement with ``seed`` (kept in split order);
3. each molecule gets explicit hydrogens, one ETKDGv3 conformer (RDKit's random seed derived
   from ``seed`` and the molecule's index in the split, so every molecule's conformer is
   reproducible on its own) and an MMFF94 relaxation (at most 2,000 iterations); bonds are
   kekulized; molecules that fail are counted by cause (``parse``, ``element``, ``embed``,
   ``mmff-setup``) and left out, molecules whose relaxation did not converge are kept and
   counted (``mmff-not-converged``);
4. the work is cut in chunks run by worker processes with a progress bar; each finished chunk
   is written atomically to ``<cache>/moses3d/<key>.partial/``, so an interrupted build
   continues where it stopped, and the assembled set is written atomically to
   ``<cache>/moses3d/<key>.npz`` (``key`` covers the recipe version, split, size, seed and the
   RDKit version).

Limits (also in the docs): MOSES is narrower than GEOM-DRUGS (no charged atoms, a narrow weight
range, 8 elements); MMFF94 minima are not the GFN2-xTB/CREST conformers of GEOM; one conformer
per molecule.

Example:
    >>> ds = build_moses3d(3000, workers=2)  # doctest: +SKIP
    >>> ds.metadata["failures"]  # doctest: +SKIP
"""

import gzip
import hashlib
import json
import multiprocessing
import os
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from symgen.molecules.cache import CacheError, resolve_cache_dir
from symgen.molecules.dataset import MoleculeDataset
from symgen.molecules.elements import GEOM_ELEMENTS
from symgen.molecules.molecule import Molecule

__all__ = [
    "MOSES3D_VERSION",
    "MOSES_SPLITS",
    "moses_smiles",
    "embed_smiles",
    "build_conformers",
    "build_moses3d",
]

#: Version of the recipe; part of the cache key (bump when a step above changes).
MOSES3D_VERSION = "1"
#: The splits whose SMILES the ``molsets`` wheel ships.
MOSES_SPLITS: tuple[str, ...] = ("train", "test", "test_scaffolds")
_MMFF_MAX_ITERS = 2000
_FAILURES = ("parse", "element", "embed", "mmff-setup")


def moses_smiles(split: str = "train") -> list[str]:
    """The SMILES of a MOSES split, read from the installed ``molsets`` wheel's data files.

    Raises:
        ValueError: an unknown split.
        FileNotFoundError: ``molsets`` is not installed (the message says how to install it).

    Examples:
        >>> len(moses_smiles("test"))  # doctest: +SKIP
        176074
    """
    if split not in MOSES_SPLITS:
        raise ValueError(f"unknown MOSES split {split!r}; choose from {MOSES_SPLITS}")
    spec = find_spec("moses")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the MOSES SMILES ship in the molsets wheel: pip install --no-deps molsets"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "dataset" / "data"
    path = path / f"{split}.csv.gz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed molsets package")
    with gzip.open(path, "rt") as f:
        lines = f.read().splitlines()
    if not lines or lines[0].split(",")[0] != "SMILES":
        raise ValueError(f"{path}: expected a CSV with a SMILES column first")
    return [ln.split(",")[0] for ln in lines[1:] if ln]


def _rdkit_seed(seed: int, index: int) -> int:
    """A per-molecule RDKit seed in [0, 2**31) from the build seed and the molecule's index."""
    digest = hashlib.sha256(f"{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def embed_smiles(smiles: str, *, seed: int = 0, index: int = 0) -> tuple[Molecule | None, str]:
    """One molecule's 3D structure: explicit hydrogens, ETKDGv3, MMFF94 relaxation, kekulized.

    Returns:
        ``(molecule, "")`` on success (``"mmff-not-converged"`` instead of ``""`` when the
        relaxation hit its iteration limit), or ``(None, cause)`` with cause one of
        ``"parse"``, ``"element"``, ``"embed"``, ``"mmff-setup"``.

    Examples:
        >>> m, why = embed_smiles("CCO")
        >>> m.num_atoms, why
        (9, '')
    """
    from rdkit import Chem, RDLogger
    from rdkit.Chem import AllChem

    from symgen.molecules.io import from_rdkit

    RDLogger.DisableLog("rdApp.*")
    try:
        mol = Chem.MolFromSmiles(smiles)
        if mol is None:
            return None, "parse"
        if any(a.GetSymbol() not in GEOM_ELEMENTS for a in mol.GetAtoms()):
            return None, "element"
        mol = Chem.AddHs(mol)
        params = AllChem.ETKDGv3()
        params.randomSeed = _rdkit_seed(seed, index)
        params.numThreads = 1
        if AllChem.EmbedMolecule(mol, params) != 0:
            return None, "embed"
        if not AllChem.MMFFHasAllMoleculeParams(mol):
            return None, "mmff-setup"
        not_converged = AllChem.MMFFOptimizeMolecule(mol, maxIters=_MMFF_MAX_ITERS) != 0
        return from_rdkit(mol, name=smiles), "mmff-not-converged" if not_converged else ""
    except ValueError:  # kekulization of an exotic aromatic system
        return None, "parse"
    finally:
        RDLogger.EnableLog("rdApp.*")


def _fingerprint(items: Sequence[tuple[int, str]], seed: int) -> str:
    """What a chunk was built from: its ids, SMILES and seed (a stale chunk is rebuilt)."""
    blob = json.dumps([seed, [[int(i), s] for i, s in items]], separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _embed_chunk(task: tuple[list[tuple[int, str]], int]) -> tuple[dict, dict, dict[str, int]]:
    """Worker: embed one chunk; returns the chunk's dataset arrays, metadata and failure counts."""
    items, seed = task
    molecules, ids, counts = [], [], Counter()
    for index, smiles in items:
        m, cause = embed_smiles(smiles, seed=seed, index=index)
        if cause:
            counts[cause] += 1
        if m is not None:
            molecules.append(m)
            ids.append(index)
    ds = MoleculeDataset.from_molecules(molecules, ids=np.asarray(ids, dtype=np.int64))
    meta = {"failures": dict(counts), "fingerprint": _fingerprint(items, seed)}
    return ds.to_arrays(), meta, dict(counts)


def build_conformers(
    smiles: Sequence[str],
    out_path: str | os.PathLike[str],
    *,
    ids: Sequence[int] | None = None,
    seed: int = 0,
    workers: int | None = None,
    chunk_size: int = 250,
    metadata: dict | None = None,
    progress: bool = True,
    on_chunk: Callable[[int], None] | None = None,
) -> MoleculeDataset:
    """Embed SMILES into a 3D :class:`MoleculeDataset` at ``out_path``, resumably.

    Chunks of ``chunk_size`` molecules are embedded by ``workers`` processes (default: the CPU
    count; 0 embeds in this process) and each finished chunk is saved atomically under
    ``<out_path>.partial/``; a later call reuses the finished chunks built from the same
    SMILES, ids and seed (a chunk built from anything else is rebuilt).
    The assembled set is saved atomically at ``out_path`` and the partial folder removed. When
    ``out_path`` exists it is loaded instead.

    Args:
        smiles: the molecules.
        out_path: the dataset file (``.npz``).
        ids: an identifier per molecule (default its position); it also seeds its conformer.
        seed: the build seed (see :func:`embed_smiles`).
        workers: worker processes (``None``: ``os.cpu_count()``; 0: none).
        chunk_size: molecules per chunk (the unit of resumption).
        metadata: provenance saved with the set (failures are added).
        progress: show a progress bar.
        on_chunk: called with each chunk's number after it is saved (for monitoring).

    Returns:
        The dataset; ``metadata["failures"]`` counts the molecules left out (and kept but not
        converged) by cause, ``metadata["requested"]`` the molecules asked for.

    Raises:
        ValueError: ``chunk_size < 1``, ``workers < 0``, or ``ids`` of the wrong length.
    """
    from tqdm.auto import tqdm

    out_path = Path(out_path)
    if out_path.is_file():
        try:
            return MoleculeDataset.load(out_path)
        except CacheError:
            out_path.unlink()  # a corrupt final file: rebuild it from the chunks
    if chunk_size < 1 or (workers is not None and workers < 0):
        raise ValueError("chunk_size must be >= 1 and workers >= 0")
    ids = list(range(len(smiles))) if ids is None else [int(i) for i in ids]
    if len(ids) != len(smiles):
        raise ValueError(f"{len(ids)} ids for {len(smiles)} SMILES")
    items = list(zip(ids, smiles, strict=True))
    chunks = [items[i : i + chunk_size] for i in range(0, len(items), chunk_size)]
    partial = out_path.with_name(out_path.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)

    def chunk_file(c: int) -> Path:
        return partial / f"chunk_{c:06d}.npz"

    def done(c: int) -> bool:
        try:
            part = MoleculeDataset.load(chunk_file(c))
        except CacheError:
            return False
        return part.metadata.get("fingerprint") == _fingerprint(chunks[c], seed)

    todo = [c for c in range(len(chunks)) if not done(c)]
    workers = (os.cpu_count() or 1) if workers is None else workers
    tasks = [(chunks[c], seed) for c in todo]
    bar = tqdm(
        total=len(items),
        initial=sum(len(chunks[c]) for c in range(len(chunks)) if c not in set(todo)),
        desc="moses3d: embedding",
        unit="mol",
        disable=not progress,
    )

    def save(c: int, result: tuple[dict, dict, dict[str, int]]) -> None:
        arrays, meta, _ = result
        MoleculeDataset.from_arrays(arrays, meta).save(chunk_file(c))
        bar.update(len(chunks[c]))
        if on_chunk is not None:
            on_chunk(c)

    try:
        if workers == 0 or len(tasks) <= 1:
            for c, task in zip(todo, tasks, strict=True):
                save(c, _embed_chunk(task))
        else:
            context = multiprocessing.get_context("spawn")
            with context.Pool(min(workers, len(tasks))) as pool:
                for c, result in zip(todo, pool.imap(_embed_chunk, tasks), strict=True):
                    save(c, result)
    finally:
        bar.close()
    parts = [MoleculeDataset.load(chunk_file(c)) for c in range(len(chunks))]
    failures: Counter = Counter()
    for p in parts:
        failures.update(p.metadata.get("failures", {}))
    ds = MoleculeDataset.concatenate(parts) if parts else MoleculeDataset.from_molecules([])
    ds.metadata = {
        **dict(metadata or {}),
        "requested": len(items),
        "failures": {k: int(failures.get(k, 0)) for k in (*_FAILURES, "mmff-not-converged")},
    }
    ds.save(out_path)
    shutil.rmtree(partial, ignore_errors=True)
    return ds


def build_moses3d(
    num_molecules: int = 3000,
    *,
    split: str = "train",
    seed: int = 0,
    workers: int | None = None,
    chunk_size: int = 250,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> MoleculeDataset:
    """The ``moses3d`` set: ``num_molecules`` MOSES molecules of ``split`` with 3D conformers.

    Built once (resumably, see :func:`build_conformers`) and cached under
    ``<cache>/moses3d/``; later calls load the cache.

    Raises:
        ValueError: a bad split or ``num_molecules`` outside ``1..len(split)``.
        FileNotFoundError: ``molsets`` is not installed.
    """
    from rdkit import __version__ as rdkit_version

    all_smiles = moses_smiles(split)
    if not 1 <= num_molecules <= len(all_smiles):
        raise ValueError(
            f"num_molecules must be in 1..{len(all_smiles)} for split {split!r}, "
            f"got {num_molecules}"
        )
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(all_smiles), size=num_molecules, replace=False))
    recipe = {
        "dataset": "moses3d",
        "version": MOSES3D_VERSION,
        "split": split,
        "num_molecules": int(num_molecules),
        "seed": int(seed),
        "rdkit": rdkit_version,
    }
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    out = resolve_cache_dir(cache_dir) / "moses3d" / f"moses3d_{split}_{num_molecules}_{key}.npz"
    return build_conformers(
        [all_smiles[i] for i in picked],
        out,
        ids=picked.tolist(),
        seed=seed,
        workers=workers,
        chunk_size=chunk_size,
        metadata=recipe,
        progress=progress,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Build (or load) a ``moses3d`` set and print what it holds (``--help`` for options)."""
    import argparse
    import sys
    import time

    parser = argparse.ArgumentParser(
        prog="python -m symgen.molecules.moses3d",
        description="Build the offline drug-like 3D set moses3d: MOSES SMILES from the molsets "
        "wheel, ETKDGv3 + MMFF94, explicit hydrogens, one conformer each; cached, resumable.",
    )
    parser.add_argument("--num-molecules", type=int, default=3000, help="molecules (3000)")
    parser.add_argument("--split", choices=MOSES_SPLITS, default="train", help="MOSES split")
    parser.add_argument("--seed", type=int, default=0, help="selection and conformer seed")
    parser.add_argument("--workers", type=int, default=None, help="processes (CPU count)")
    parser.add_argument("--chunk-size", type=int, default=250, help="molecules per chunk")
    parser.add_argument("--cache-dir", default=None, help="symgen cache folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    try:
        ds = build_moses3d(
            args.num_molecules,
            split=args.split,
            seed=args.seed,
            workers=args.workers,
            chunk_size=args.chunk_size,
            cache_dir=args.cache_dir,
            progress=not args.no_progress,
        )
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - t0
    from symgen.molecules.elements import SYMBOLS

    elements = sorted({SYMBOLS[int(z)] for z in np.unique(ds.atomic_numbers)})
    print(
        f"moses3d ({args.split}, seed {args.seed}): {len(ds)} of {ds.metadata['requested']} "
        f"molecules in {seconds:.1f} s; atoms with hydrogens mean {ds.num_atoms.mean():.1f}, "
        f"max {ds.num_atoms.max()}; elements {' '.join(elements)}; failures "
        f"{ds.metadata['failures']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
