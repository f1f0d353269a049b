"""Training: the library's one training loop and its parts.

* :class:`Trainer` / :class:`TrainingConfig` — AdamW, warm-up and cosine schedule, gradient
  clipping, EMA, time budget, progress, CSV/TensorBoard logs, validation and hooks, atomic
  checkpoints, exact resume, DistributedDataParallel under ``torchrun``;
* :mod:`~symgen.training.seeds` — per-step and per-epoch generators (exact resumption);
* :class:`ExponentialMovingAverage`, :func:`save_checkpoint` / :func:`load_checkpoint`,
  :class:`CSVLogger`.
"""

from symgen.training.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from symgen.training.ema import ExponentialMovingAverage
from symgen.training.logs import CSVLogger
from symgen.training.loop import (
    Hook,
    Trainer,
    TrainingConfig,
    TrainingResult,
    init_distributed,
    learning_rate,
)
from symgen.training.seeds import epoch_generator, epoch_permutation, mix_seed, step_generator

__all__ = [
    "Trainer",
    "TrainingConfig",
    "TrainingResult",
    "Hook",
    "learning_rate",
    "init_distributed",
    "ExponentialMovingAverage",
    "CHECKPOINT_FORMAT",
    "save_checkpoint",
    "load_checkpoint",
    "CSVLogger",
    "mix_seed",
    "step_generator",
    "epoch_generator",
    "epoch_permutation",
]
