"""Training utilities shared by the example scripts: EMA, atomic checkpoints, logs, step seeds.

Exact resumption rests on one rule: every random draw of training step ``s`` comes from
:func:`step_generator` ``(seed, s)`` and the data order of epoch ``e`` from
:func:`epoch_permutation` ``(seed, e)``. A run killed after step ``s`` and resumed from its
checkpoint therefore replays steps ``s + 1, s + 2, ...`` exactly as the uninterrupted run would.
"""

import copy
import csv
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "ExponentialMovingAverage",
    "step_generator",
    "epoch_permutation",
    "save_checkpoint",
    "load_checkpoint",
    "CSVLogger",
]

_MIX = 0x9E3779B97F4A7C15  # odd 64-bit constant (golden ratio) to decorrelate nearby seeds


def _mix(seed: int, stream: int, index: int) -> int:
    x = (seed * _MIX + stream * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB) % (1 << 63)
    return x


def step_generator(seed: int, step: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh generator for training step ``step`` of a run with base seed ``seed``.

    ``g = Generator(device).manual_seed(mix(seed, step))``; the mixing makes streams of
    neighbouring steps and seeds unrelated.

    Examples:
        >>> a = torch.rand(2, generator=step_generator(0, 5))
        >>> torch.equal(a, torch.rand(2, generator=step_generator(0, 5)))
        True
    """
    return torch.Generator(device=device).manual_seed(_mix(seed, 1, step))


def epoch_permutation(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The data order of epoch ``epoch``: a permutation of ``range(n)`` set by ``(seed, epoch)``."""
    g = torch.Generator().manual_seed(_mix(seed, 2, epoch))
    return torch.randperm(n, generator=g)


class ExponentialMovingAverage:
    """Exponential moving average of a model's parameters and buffers.

    ``θ_ema <- β_k · θ_ema + (1 - β_k) · θ`` after the ``k``-th optimizer step (buffers are
    copied), with the warmed-up decay ``β_k = min(decay, (1 + k) / (10 + k))`` (``k = 1, 2, ...``).
    Without the warm-up the average of a short run would still hold a share ``decay^k`` of the
    random initial weights (30 % after 1,200 steps at ``decay = 0.999``); with it the early
    average follows the recent weights. ``warmup=False`` gives the plain constant decay.

    Examples:
        >>> net = nn.Linear(1, 1, bias=False)
        >>> _ = nn.init.zeros_(net.weight)
        >>> ema = ExponentialMovingAverage(net, decay=0.9, warmup=False)
        >>> _ = nn.init.ones_(net.weight)
        >>> ema.update(net)  # 0.9 * 0 + 0.1 * 1
        >>> with ema.averaged(net):
        ...     round(net.weight.item(), 6)
        0.1
        >>> net.weight.item()  # restored on exit
        1.0
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, *, warmup: bool = True) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must lie in [0, 1), got {decay}")
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.num_updates = 0
        self.shadow: dict[str, torch.Tensor] = {
            k: v.detach().clone() for k, v in model.state_dict().items()
        }

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Blend the model's current weights into the average."""
        self.num_updates += 1
        beta = self.current_decay()
        for name, value in model.state_dict().items():
            avg = self.shadow[name]
            if value.is_floating_point():
                avg.mul_(beta).add_(value.detach(), alpha=1.0 - beta)
            else:
                avg.copy_(value)

    def current_decay(self) -> float:
        """The decay ``β_k`` used by the latest update (``k = num_updates``)."""
        if not self.warmup:
            return self.decay
        k = self.num_updates
        return min(self.decay, (1.0 + k) / (10.0 + k))

    @contextmanager
    def averaged(self, model: nn.Module) -> Iterator[nn.Module]:
        """Temporarily load the averaged weights into ``model`` (restored on exit)."""
        backup = copy.deepcopy(model.state_dict())
        model.load_state_dict(self.shadow)
        try:
            yield model
        finally:
            model.load_state_dict(backup)

    def state_dict(self) -> dict[str, Any]:
        """Serializable state (decay, warm-up, update count and averaged tensors)."""
        return {
            "decay": self.decay,
            "warmup": self.warmup,
            "num_updates": self.num_updates,
            "shadow": self.shadow,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        self.decay = float(state["decay"])
        # checkpoints written before the warm-up existed: constant decay, as they were trained
        self.warmup = bool(state.get("warmup", False))
        self.num_updates = int(state.get("num_updates", 0))
        self.shadow = {k: v.clone() for k, v in state["shadow"].items()}


def save_checkpoint(path: str | os.PathLike, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` with ``torch.save`` atomically: a temporary file, fsync, then rename.

    A crash at any moment leaves either the previous checkpoint or the new one, never a torn file.

    Examples:
        >>> with tempfile.TemporaryDirectory() as d:
        ...     save_checkpoint(Path(d) / "ckpt.pt", {"step": 3, "w": torch.ones(2)})
        ...     state = load_checkpoint(Path(d) / "ckpt.pt")
        ...     leftovers = sorted(p.name for p in Path(d).iterdir())
        >>> state["step"], state["w"].tolist(), leftovers
        (3, [1.0, 1.0], ['ckpt.pt'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(dict(payload), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`; a clear error if it is missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return torch.load(path, map_location=map_location, weights_only=False)


class CSVLogger:
    """Append rows of metrics to a CSV file; on resume, rows after ``resume_step`` are dropped.

    Columns are fixed by the first row written (later rows may omit some). Each write is
    flushed, so the file is readable while training runs.

    Examples:
        >>> with tempfile.TemporaryDirectory() as d:
        ...     log = CSVLogger(Path(d) / "log.csv")
        ...     for step in (1, 2, 3):
        ...         log.log({"step": step, "loss": 1.0 / step})
        ...     resumed = CSVLogger(Path(d) / "log.csv", resume_step=2)  # drops step 3
        ...     resumed.log({"step": 3, "loss": 0.25})
        ...     lines = (Path(d) / "log.csv").read_text().splitlines()
        >>> lines
        ['step,loss', '1,1.0', '2,0.5', '3,0.25']
    """

    def __init__(self, path: str | os.PathLike, *, resume_step: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fieldnames: list[str] | None = None
        rows: list[dict[str, str]] = []
        if resume_step is not None and self.path.exists():
            with self.path.open(newline="") as f:
                reader = csv.DictReader(f)
                self.fieldnames = list(reader.fieldnames or [])
                rows = [r for r in reader if int(float(r.get("step", 0))) <= resume_step]
        elif self.path.exists():
            self.path.unlink()
        if self.fieldnames:
            with self.path.open("w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=self.fieldnames)
                w.writeheader()
                w.writerows(rows)

    def log(self, row: Mapping[str, float | int | str]) -> None:
        """Append one row (must contain ``step``)."""
        if "step" not in row:
            raise ValueError("every logged row needs a 'step' entry")
        new = not self.path.exists() or self.fieldnames is None
        if self.fieldnames is None:
            self.fieldnames = list(row.keys())
        extra = [k for k in row if k not in self.fieldnames]
        if extra:
            raise ValueError(f"columns {extra} were not in the first logged row {self.fieldnames}")
        with self.path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fieldnames)
            if new:
                w.writeheader()
            w.writerow(dict(row))
