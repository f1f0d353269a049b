"""Checkpoints that ship inside the package, each with a SHA-256 and a model card.

A registry (``models/index.json`` next to this file) names each shipped sampling checkpoint
(EMA weights only, with the size histogram, marginals, feature layout and sampler defaults, as
written by :func:`symgen.molecules.canonflow.export_sampling_checkpoint`), its checksum, its
model card and, for molecules, a compact evaluation reference. Loading checks the checksum
first and needs neither the dataset nor a network connection:

    >>> from symgen.pretrained import available, load_pretrained
    >>> "qm9-canonflow" in available()
    True
    >>> gen = load_pretrained("qm9-canonflow")  # doctest: +SKIP
    >>> x = gen.sample(10)  # doctest: +SKIP

``examples/molecules/sample.py --pretrained NAME`` samples and evaluates one;
``examples/molecules/package_pretrained.py`` writes a new entry (checkpoint, card, checksum).
"""

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from symgen.generators import CanonicalGenerator
    from symgen.molecules.canonflow import Reference

__all__ = [
    "INDEX",
    "ChecksumMismatchError",
    "PretrainedModel",
    "available",
    "get_model",
    "load_pretrained",
    "model_card",
    "pretrained_path",
    "pretrained_reference",
    "read_index",
    "sha256_file",
    "write_index",
]

#: The registry shipped with the package.
INDEX = Path(__file__).resolve().parent / "models" / "index.json"


class ChecksumMismatchError(ValueError):
    """A shipped file's SHA-256 differs from the one its registry records."""


@dataclass(frozen=True)
class PretrainedModel:
    """One registry entry; file names are relative to the registry's folder.

    Attributes:
        name: the name ``load_pretrained`` takes.
        file: the sampling checkpoint.
        sha256: its SHA-256 (hex).
        card: the model card (Markdown).
        summary: one line: data, recipe, headline numbers.
        reference: a compact evaluation reference (a ``MoleculeDataset`` ``.npz``), or ``None``.
        reference_sha256: its SHA-256.
        reference_smiles: the training SMILES for novelty (gzipped text, one per line), or
            ``None``.
        reference_smiles_sha256: its SHA-256.
        scores: the model card's headline numbers (``"<protocol>/<metric>"`` -> value), from
            ``score_samples`` molecules drawn from the shipped file at ``score_steps`` steps.
        score_samples: how many molecules the scores are over.
        score_steps: the step count they were sampled with (the file's default).
    """

    name: str
    file: str
    sha256: str
    card: str
    summary: str
    reference: str | None = None
    reference_sha256: str | None = None
    reference_smiles: str | None = None
    reference_smiles_sha256: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    score_samples: int = 0
    score_steps: int = 0


def read_index(index: str | os.PathLike[str] | None = None) -> dict[str, PretrainedModel]:
    """The registry at ``index`` (default :data:`INDEX`): name -> entry."""
    path = Path(index) if index is not None else INDEX
    if not path.is_file():
        return {}
    entries = json.loads(path.read_text())
    return {e["name"]: PretrainedModel(**e) for e in entries}


def write_index(models: dict[str, PretrainedModel], index: str | os.PathLike[str]) -> None:
    """Write the registry (sorted by name) to ``index``, atomically."""
    from symgen.files import atomic_write_json

    atomic_write_json(Path(index), [asdict(models[k]) for k in sorted(models)])


def available(index: str | os.PathLike[str] | None = None) -> list[str]:
    """The names of the shipped models."""
    return sorted(read_index(index))


def get_model(name: str, index: str | os.PathLike[str] | None = None) -> PretrainedModel:
    """The registry entry of ``name``; a ``ValueError`` listing the available names otherwise."""
    models = read_index(index)
    if name not in models:
        names = ", ".join(sorted(models)) or "none"
        raise ValueError(f"no pretrained model named {name!r}; available: {names}")
    return models[name]


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _verified(folder: Path, file: str, expected: str | None, what: str) -> Path:
    path = folder / file
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} is missing: the symgen installation is incomplete")
    if expected is not None:
        actual = sha256_file(path)
        if actual != expected:
            raise ChecksumMismatchError(
                f"{what} {path} has SHA-256 {actual}, but the registry records {expected}: the "
                "file is damaged or was replaced; reinstall symgen (it is not loaded)"
            )
    return path


def pretrained_path(
    name: str, *, index: str | os.PathLike[str] | None = None, verify: bool = True
) -> Path:
    """The checkpoint file of ``name``, its SHA-256 checked (``verify``).

    Raises:
        ValueError: unknown name (the message lists the available ones).
        ChecksumMismatchError: the file's SHA-256 differs from the registry's.
        FileNotFoundError: the file is missing.
    """
    model = get_model(name, index)
    folder = (Path(index) if index is not None else INDEX).parent
    return _verified(folder, model.file, model.sha256 if verify else None, f"checkpoint of {name}")


def load_pretrained(
    name: str,
    *,
    device: str = "cpu",
    precision: str | None = None,
    index: str | os.PathLike[str] | None = None,
) -> "CanonicalGenerator":
    """A generator ready to ``sample()`` from the shipped model ``name`` (checksum checked).

    ``precision`` as in :func:`symgen.molecules.canonflow.load_generator` (default: the one
    the model trained in). Needs no dataset and no network connection.
    """
    from symgen.molecules.canonflow import load_generator

    gen, _, _ = load_generator(
        pretrained_path(name, index=index),
        device=device,
        precision=precision,  # type: ignore[arg-type]
    )
    return gen


def pretrained_reference(
    name: str, *, index: str | os.PathLike[str] | None = None
) -> "Reference | None":
    """The compact evaluation reference shipped with ``name`` (checksums checked), or ``None``.

    The molecules are a fixed random subset of the model's training set (the evaluator uses at
    most 10,000 for its distances anyway); the SMILES, when shipped, are the whole training
    set's, for novelty.
    """
    import gzip

    from symgen.molecules.canonflow import Reference
    from symgen.molecules.dataset import MoleculeDataset

    model = get_model(name, index)
    if model.reference is None:
        return None
    folder = (Path(index) if index is not None else INDEX).parent
    path = _verified(folder, model.reference, model.reference_sha256, f"reference of {name}")
    molecules = MoleculeDataset.load(path)
    smiles = None
    if model.reference_smiles is not None:
        spath = _verified(
            folder, model.reference_smiles, model.reference_smiles_sha256, f"SMILES of {name}"
        )
        with gzip.open(spath, "rt") as f:
            smiles = [line.strip() for line in f if line.strip()]
    headline = tuple(molecules.metadata.get("headline_protocols", ("midi",)))
    return Reference(molecules, smiles, headline)


def model_card(name: str, *, index: str | os.PathLike[str] | None = None) -> str:
    """The model card (Markdown) of ``name``."""
    model = get_model(name, index)
    folder = (Path(index) if index is not None else INDEX).parent
    return (folder / model.card).read_text()
