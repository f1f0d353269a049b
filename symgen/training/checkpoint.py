"""Checkpoints written atomically: a killed process leaves the previous checkpoint loadable."""

import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import torch

from symgen.files import atomic_write

__all__ = ["CHECKPOINT_FORMAT", "save_checkpoint", "load_checkpoint"]

#: Format tag of the checkpoints the training loop writes.
CHECKPOINT_FORMAT = "symgen-checkpoint/1"


def _serialize(payload: Mapping[str, Any], handle: IO[bytes]) -> None:
    """Write the payload into an open file (one function, so tests can interrupt it)."""
    torch.save(dict(payload), handle)


def save_checkpoint(path: str | os.PathLike, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` with ``torch.save`` atomically (:func:`symgen.files.atomic_write`).

    A crash at any moment, even in the middle of the write, leaves either the previous
    checkpoint or the new one, never a torn file.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     save_checkpoint(Path(d) / "ckpt.pt", {"step": 3, "w": torch.ones(2)})
        ...     state = load_checkpoint(Path(d) / "ckpt.pt")
        ...     leftovers = sorted(p.name for p in Path(d).iterdir())
        >>> state["step"], state["w"].tolist(), leftovers
        (3, [1.0, 1.0], ['ckpt.pt'])
    """
    atomic_write(path, lambda handle: _serialize(payload, handle))


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`; a clear error if it is missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return torch.load(path, map_location=map_location, weights_only=False)


def remove_partial_writes(path: str | os.PathLike) -> list[Path]:
    """Delete temporary files a killed writer left next to ``path``; return what was removed."""
    path = Path(path)
    stale = sorted(path.parent.glob(f".{path.name}.*.tmp"))
    for p in stale:
        p.unlink(missing_ok=True)
    return stale
