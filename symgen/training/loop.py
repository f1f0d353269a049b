"""The training loop: any generator with a ``loss(batch)``, on any graph data.

:class:`Trainer` runs AdamW with a warm-up and cosine learning-rate schedule, gradient
clipping, an exponential moving average of the weights, a time budget, a progress bar, CSV
(and optionally TensorBoard) logs, periodic validation and hooks (e.g. sample-and-evaluate),
atomic checkpoints with exact resumption, and DistributedDataParallel under ``torchrun``.

Exact resumption: step ``s`` draws all its randomness from ``step_generator`` and its batch
from the order of its epoch (:mod:`symgen.training.seeds`), so a run killed at any moment (in
the middle of a checkpoint write included) and resumed from its last checkpoint replays the
remaining steps exactly as the uninterrupted run would.
"""

import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from symgen.conditioning import Context
from symgen.data import GraphSource, PaddedGraphs, SizeBucketBatcher, batch_context
from symgen.precision import (
    Precision,
    PrecisionChoice,
    bfloat16_is_native,
    check_precision,
)
from symgen.state import GeometricGraph
from symgen.training.checkpoint import (
    CHECKPOINT_FORMAT,
    load_checkpoint,
    remove_partial_writes,
    save_checkpoint,
)
from symgen.training.ema import ExponentialMovingAverage
from symgen.training.logs import CSVLogger
from symgen.training.seeds import epoch_generator, mix_seed, step_generator

__all__ = [
    "TrainingConfig",
    "Trainer",
    "TrainingResult",
    "Hook",
    "learning_rate",
    "init_distributed",
]


@dataclass
class TrainingConfig:
    """Settings of the training loop (the model and data are the trainer's arguments).

    Attributes:
        max_steps: total optimizer steps (the schedule's length with ``schedule_clock="steps"``).
        batch_size: graphs per step (per process under DDP).
        lr: peak learning rate of AdamW.
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up steps.
        final_lr_fraction: the cosine decays to this fraction of ``lr``.
        schedule_clock: ``"steps"`` anneals over ``max_steps``; ``"time"`` over
            ``time_budget_s`` of training (so runs of different speed anneal alike).
        time_budget_s: stop after this many seconds of training, summed over resumed runs
            (0: no limit).
        grad_clip: gradient-norm clipping threshold (0: off).
        ema_decay: decay of the weight average used for validation, hooks and sampling.
        seed: base seed of the data order and of every step's draws.
        log_every: steps between log rows (each row has the step's loss and terms and
            ``loss_window``, the mean loss since the previous row).
        ckpt_every: steps between checkpoints (one is also written at the end).
        val_every: steps between validation losses (0: off; needs validation data).
        bucket_batches: batches per size-sorted pool of the batcher (1: plain random batches).
        device: torch device.
        precision: the network's precision: ``"float32"``, ``"bfloat16"`` (autocast, float32
            weights; :mod:`symgen.precision`) or ``"auto"``: bfloat16 where the hardware
            computes it natively and a timing of a few steps on this machine finds it faster,
            float32 otherwise. The choice is logged and kept in the checkpoint.
        compile: run the network through ``torch.compile`` (needs a generator with
            ``compile_network``); the first steps compile (logged; they count against the
            time budget).
        fused_optimizer: AdamW's fused kernel (``torch.optim.AdamW(fused=True)``; CPU and
            CUDA) instead of its per-parameter loop: the same update up to float rounding, ~4 ms
            less per step for a 1.3 M-parameter network on 2 CPU threads. Off by default so
            that a run repeats earlier runs bit for bit.
        progress: show a progress bar.
        tensorboard: also write TensorBoard scalars (needs the ``logging`` extra).
    """

    max_steps: int = 10_000
    batch_size: int = 64
    lr: float = 5e-4
    weight_decay: float = 0.0
    warmup_steps: int = 200
    final_lr_fraction: float = 0.1
    schedule_clock: Literal["steps", "time"] = "steps"
    time_budget_s: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    log_every: int = 25
    ckpt_every: int = 250
    val_every: int = 0
    bucket_batches: int = 50
    device: str = "cpu"
    precision: PrecisionChoice = "float32"
    compile: bool = False
    fused_optimizer: bool = False
    progress: bool = True
    tensorboard: bool = False

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "log_every", "ckpt_every", "bucket_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "val_every", "time_budget_s", "grad_clip", "weight_decay"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.final_lr_fraction <= 1:
            raise ValueError(f"final_lr_fraction must lie in [0, 1], got {self.final_lr_fraction}")
        if self.schedule_clock not in ("steps", "time"):
            raise ValueError(f"schedule_clock must be 'steps' or 'time', got {self.schedule_clock}")
        check_precision(self.precision, allow_auto=True)
        if self.schedule_clock == "time" and not self.time_budget_s > 0:
            raise ValueError("schedule_clock='time' anneals over time_budget_s: set it > 0")


def learning_rate(step: int, train_seconds: float, cfg: TrainingConfig) -> float:
    """Linear warm-up, then cosine decay to ``final_lr_fraction`` of the peak.

    ``lr_k = lr · min(1, k / warmup) · (f + (1 - f) · ½ (1 + cos π p))`` with ``p`` the
    progress after the warm-up: ``(k - warmup) / (max_steps - warmup)`` on the step clock,
    ``seconds / time_budget_s`` on the time clock (clamped to [0, 1]).

    Examples:
        >>> cfg = TrainingConfig(lr=1.0, warmup_steps=10, max_steps=110, final_lr_fraction=0.1)
        >>> [round(learning_rate(k, 0.0, cfg), 3) for k in (5, 10, 60, 110)]
        [0.5, 1.0, 0.55, 0.1]
    """
    warm = min(1.0, step / cfg.warmup_steps) if cfg.warmup_steps > 0 else 1.0
    if cfg.schedule_clock == "steps":
        span = max(1, cfg.max_steps - cfg.warmup_steps)
        progress = (step - cfg.warmup_steps) / span
    else:
        progress = train_seconds / cfg.time_budget_s
    progress = min(1.0, max(0.0, progress))
    f = cfg.final_lr_fraction
    return cfg.lr * warm * (f + (1 - f) * 0.5 * (1 + math.cos(math.pi * progress)))


@runtime_checkable
class Hook(Protocol):
    """Something to run every ``every`` steps on the main process, e.g. sample-and-evaluate.

    ``hook(trainer, step)`` returns metrics to log (or ``None``); with an output folder they
    are also appended to ``<name>.csv`` there (``name`` attribute, default the class name).
    Use ``with trainer.averaged():`` to run it on the EMA weights in evaluation mode.
    """

    every: int

    def __call__(self, trainer: "Trainer", step: int) -> Mapping[str, float] | None: ...


@dataclass(frozen=True)
class TrainingResult:
    """What a call of :meth:`Trainer.fit` did.

    Attributes:
        step: the last step reached (over all resumed runs).
        steps_this_run: steps taken by this call.
        train_seconds: training time over all resumed runs.
        final_loss: mean training loss of the last logged window (``nan`` if none).
        stopped_by: ``"max_steps"`` or ``"time_budget"``.
    """

    step: int
    steps_this_run: int
    train_seconds: float
    final_loss: float
    stopped_by: str


def init_distributed(device: str) -> tuple[int, int, str]:
    """Start the process group when launched by ``torchrun`` (``WORLD_SIZE > 1``).

    Returns ``(rank, world_size, device)``: NCCL and the local GPU for CUDA, Gloo on the CPU;
    ``(0, 1, device)`` without ``torchrun``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    cuda = device.startswith("cuda")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    if cuda:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return dist.get_rank(), dist.get_world_size(), device


class _LossModule(nn.Module):
    """``forward(batch, generator) -> LossOutput``, so that DDP can wrap the whole loss."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(  # noqa: ANN201
        self, batch: GeometricGraph, rng: torch.Generator, context: Context | None = None
    ):
        if context is None:  # generators without conditioning need not take the argument
            return self.generator.loss(batch, generator=rng)
        return self.generator.loss(batch, generator=rng, context=context)


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


def _eprint(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)


class Trainer:
    """Train ``generator`` (an ``nn.Module`` with ``loss(batch, generator=...)``) on ``data``.

    Args:
        generator: e.g. a :class:`~symgen.generators.CanonicalGenerator`.
        data: training graphs: a :class:`~symgen.data.GraphSource` (e.g. a
            :class:`~symgen.data.GraphStore`) or one padded :class:`GeometricGraph`.
        config: the loop's settings.
        out_dir: folder of ``checkpoint.pt``, ``log.csv`` (training losses),
            ``validation.csv`` (EMA validation losses) and the hooks' CSVs (``None``: no files).
        val_data: validation graphs for the validation loss (same forms as ``data``).
        hooks: run every ``hook.every`` steps on the main process (see :class:`Hook`).
        run_info: JSON-ready description of the run (e.g. a recipe config), stored in every
            checkpoint under ``"run"``.
        log: where progress messages go (default: standard error).

    Examples:
        >>> from symgen.generators import CanonicalGenerator, FlowMatching
        >>> from symgen.models import build_network
        >>> from symgen.priors import CenteredGaussianPrior
        >>> from symgen.testing import make_graph
        >>> data = make_graph([4, 5, 3, 4] * 4, num_types=2, seed=0)
        >>> net = build_network("egnn", node_in=2, node_out=2, width=8, depth=1)
        >>> gen = CanonicalGenerator(None, CenteredGaussianPrior(features=False), None,
        ...                          FlowMatching(weights={"node": 0.0}), net, node_dim=2)
        >>> cfg = TrainingConfig(max_steps=3, batch_size=4, warmup_steps=1, progress=False)
        >>> Trainer(gen, data, cfg).fit().step
        3
    """

    def __init__(
        self,
        generator: nn.Module,
        data: GraphSource | GeometricGraph,
        config: TrainingConfig,
        *,
        out_dir: str | os.PathLike | None = None,
        val_data: GraphSource | GeometricGraph | None = None,
        hooks: Sequence[Hook] = (),
        run_info: Mapping[str, Any] | None = None,
        log: Callable[..., None] = _eprint,
    ) -> None:
        self.generator = generator
        self.data = PaddedGraphs(data) if isinstance(data, GeometricGraph) else data
        self.val_data = PaddedGraphs(val_data) if isinstance(val_data, GeometricGraph) else val_data
        self.config = config
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.hooks = list(hooks)
        self.run_info = dict(run_info or {})
        self.log = log
        if dist.is_available() and dist.is_initialized():
            self.rank, self.world = dist.get_rank(), dist.get_world_size()
        else:
            self.rank, self.world = 0, 1
        self.device = torch.device(config.device)
        self.generator.to(self.device)
        self.optimizer = torch.optim.AdamW(
            [p for p in generator.parameters() if p.requires_grad],
            lr=config.lr,
            weight_decay=config.weight_decay,
            fused=True if config.fused_optimizer else None,
        )
        self.ema = ExponentialMovingAverage(generator, decay=config.ema_decay)
        self.step = 0
        self.train_seconds = 0.0
        self.precision: Precision = "float32"
        self._last_window: list[float] = []
        self._csv_logs: dict[str, CSVLogger] = {}
        self.batcher = SizeBucketBatcher(
            self.data.num_nodes.numpy(),
            config.batch_size * self.world,
            bucket_batches=config.bucket_batches,
            drop_last=True,
        )
        if len(self.batcher) == 0:
            raise ValueError(
                f"the training set ({len(self.data)} graphs) is smaller than one batch "
                f"({config.batch_size * self.world})"
            )
        for hook in self.hooks:
            if getattr(hook, "every", 0) < 1:
                raise ValueError(f"hook {hook!r} needs an 'every' of at least 1 step")

    # ------------------------------------------------------------------ state
    @property
    def is_main(self) -> bool:
        """Whether this is the process that logs, evaluates and writes files (rank 0)."""
        return self.rank == 0

    @property
    def checkpoint_path(self) -> Path | None:
        """``out_dir/checkpoint.pt`` (``None`` without an output folder)."""
        return None if self.out_dir is None else self.out_dir / "checkpoint.pt"

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs (the checkpoint's payload)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "step": self.step,
            "train_seconds": self.train_seconds,
            "generator": self.generator.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.state_dict(),
            "training": asdict(self.config),
            "precision": self.precision,
            "run": self.run_info,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(
                f"not a {CHECKPOINT_FORMAT} checkpoint (format {state.get('format')!r})"
            )
        self.generator.load_state_dict(state["generator"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.ema.load_state_dict(state["ema"])
        self.step = int(state["step"])
        self.train_seconds = float(state.get("train_seconds", 0.0))
        self._set_precision(state.get("precision", "float32"))

    def save_checkpoint(self) -> None:
        """Write ``checkpoint.pt`` atomically (main process; every process waits for it)."""
        path = self.checkpoint_path
        if path is not None and self.is_main:
            save_checkpoint(path, self.state_dict())
        if self.world > 1:
            dist.barrier()

    @contextmanager
    def averaged(self) -> Iterator[nn.Module]:
        """The generator with its EMA weights, in evaluation mode (both restored on exit)."""
        was_training = self.generator.training
        with self.ema.averaged(self.generator):
            self.generator.eval()
            try:
                yield self.generator
            finally:
                self.generator.train(was_training)

    # ------------------------------------------------------------------ precision
    def _set_precision(self, precision: Precision) -> None:
        if precision != "float32" and not hasattr(self.generator, "precision"):
            raise ValueError(
                f"{type(self.generator).__name__} has no 'precision' setting: it cannot run "
                f"its network in {precision} (use precision='float32')"
            )
        if hasattr(self.generator, "precision"):
            self.generator.precision = precision  # type: ignore[attr-defined]
        self.precision = precision

    def _seconds_per_step(self, batch: GeometricGraph, precision: Precision, reps: int) -> float:
        """Forward and backward of the loss at ``precision`` (weights untouched), median time."""
        self._set_precision(precision)
        times = []
        for i in range(reps + 1):  # the first repetition warms up
            t0 = time.perf_counter()
            out = self.generator.loss(batch, generator=step_generator(-1, i, self.device))
            out.total.backward()
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        self.optimizer.zero_grad(set_to_none=True)
        return float(np.median(times[1:]))

    def choose_precision(self) -> Precision:
        """Resolve ``config.precision``; ``"auto"`` times both precisions on a training batch.

        ``"auto"`` picks bfloat16 only where the hardware computes it natively and three
        forward/backward passes of the loss are faster with it than in float32. The choice and
        the timings are logged.
        """
        choice = self.config.precision
        if choice != "auto":
            self._set_precision(choice)
            return choice
        best: Precision = "float32"
        reason = "no native bfloat16 on this device"
        if bfloat16_is_native(self.device) and hasattr(self.generator, "precision"):
            idx = self.batcher.epoch(epoch_generator(self.config.seed, 0))[0]
            batch = self.data.batch(torch.from_numpy(idx[self.rank :: self.world]))
            batch = batch.to(device=self.device)
            t32 = self._seconds_per_step(batch, "float32", 3)
            t16 = self._seconds_per_step(batch, "bfloat16", 3)
            best = "bfloat16" if t16 < t32 else "float32"
            reason = (
                f"native bfloat16; loss forward+backward {1000 * t16:.0f} ms in bfloat16 vs "
                f"{1000 * t32:.0f} ms in float32"
            )
        if self.world > 1:  # every rank runs what rank 0 decided
            decided = [best]
            dist.broadcast_object_list(decided, src=0)
            best = decided[0]
        self._set_precision(best)
        if self.is_main:
            self.log(f"precision: {best} (auto: {reason})")
        return best

    def _start_compiling(self) -> bool:
        """Compile the network if possible; ``False`` (logged) when there is no compiler."""
        if not hasattr(self.generator, "compile_network"):
            raise ValueError(
                f"{type(self.generator).__name__} has no compile_network(): it cannot "
                "compile its network (use compile=False)"
            )
        compiler = os.environ.get("CXX", "g++")
        if self.device.type == "cpu" and shutil.which(compiler) is None:
            if self.is_main:
                self.log(
                    f"compile: off (torch.compile needs a C++ compiler on the CPU; no {compiler})"
                )
            return False
        self.generator.compile_network()  # type: ignore[operator]
        return True

    # ------------------------------------------------------------------ loop
    def _batches(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(step, indices of this process)`` from ``self.step + 1`` on, epoch after epoch."""
        per_epoch = len(self.batcher)
        cached: tuple[int, list[np.ndarray]] | None = None
        step = self.step
        while True:
            step += 1
            epoch, j = divmod(step - 1, per_epoch)
            if cached is None or cached[0] != epoch:
                cached = (epoch, self.batcher.epoch(epoch_generator(self.config.seed, epoch)))
            yield step, cached[1][j][self.rank :: self.world]

    @torch.no_grad()
    def validation_loss(self) -> float:
        """Mean loss over the validation data (fixed draws per batch), current weights."""
        if self.val_data is None:
            raise ValueError("no validation data was given")
        batcher = SizeBucketBatcher(
            self.val_data.num_nodes.numpy(), self.config.batch_size, shuffle=False
        )
        total, count = 0.0, 0
        for i, idx in enumerate(batcher.epoch()):
            batch = self.val_data.batch(torch.from_numpy(idx)).to(device=self.device)
            rng = step_generator(self.config.seed + 7919, i, self.device)
            ctx = batch_context(self.val_data, torch.from_numpy(idx))
            out = _LossModule(self.generator)(batch, rng, ctx)
            total += float(out.total) * len(idx)
            count += len(idx)
        return total / max(count, 1)

    def fit(self, *, resume: bool = False) -> TrainingResult:
        """Train until ``max_steps`` or the time budget; checkpoint, log and run hooks.

        With ``resume=True`` the run continues from ``out_dir/checkpoint.pt`` (which must
        exist); without it an existing checkpoint is overwritten.
        """
        cfg = self.config
        path = self.checkpoint_path
        if resume:
            if path is None or not path.is_file():
                raise FileNotFoundError(
                    f"resume was asked for but there is no checkpoint at {path}"
                )
            # read onto the CPU: weights and averages are copied to their device on load, and
            # AdamW's step counters stay on the CPU (on a GPU they would sync every step)
            self.load_state_dict(load_checkpoint(path, map_location="cpu"))
            if self.is_main:
                remove_partial_writes(path)
                self.log(f"resumed from {path} at step {self.step} (precision {self.precision})")
        else:
            if self.is_main and path is not None and path.exists():
                self.log(f"note: {path} exists and will be overwritten (resume to continue it)")
            self.choose_precision()
        compiling = cfg.compile and self._start_compiling()
        logger = writer = None
        self._csv_logs = {}
        if self.is_main and self.out_dir is not None:
            resume_step = self.step if resume else None
            logger = CSVLogger(self.out_dir / "log.csv", resume_step=resume_step)
            writer = self._tensorboard()
            names = [getattr(h, "name", type(h).__name__) for h in self.hooks]
            if cfg.val_every and self.val_data is not None:
                names.append("validation")
            for name in names:  # rows after the checkpoint's step go (resume) or all (new run)
                self._csv_logs[name] = CSVLogger(
                    self.out_dir / f"{name}.csv", resume_step=resume_step
                )
        model: nn.Module = _LossModule(self.generator)
        if self.world > 1:
            model = nn.parallel.DistributedDataParallel(model)
        start_step, window_losses = self.step, []
        window_graphs, window_t = 0, time.perf_counter()
        budget = cfg.time_budget_s if cfg.time_budget_s > 0 else math.inf
        stopped_by = "max_steps"
        bar = tqdm(  # on the time clock the budget, not max_steps, ends the run
            total=None if cfg.schedule_clock == "time" else cfg.max_steps,
            initial=self.step,
            desc="train",
            disable=not (cfg.progress and self.is_main),
        )
        self.generator.train()
        batches = self._batches()
        while self.step < cfg.max_steps:
            t0 = time.perf_counter()
            step, idx = next(batches)
            batch = self.data.batch(torch.from_numpy(idx)).to(device=self.device)
            ctx = batch_context(self.data, torch.from_numpy(idx))
            lr = learning_rate(step, self.train_seconds, cfg)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            seed = mix_seed(cfg.seed, 4, self.rank)
            self.optimizer.zero_grad(set_to_none=True)
            try:
                loss = model(batch, step_generator(seed, step, self.device), ctx)
                loss.total.backward()
            except Exception as err:  # noqa: BLE001 (any compiler failure: fall back, once)
                if not compiling:
                    raise
                if self.is_main:
                    self.log(f"torch.compile failed ({_first_line(err)}); training without it")
                self.generator.compile_network(False)  # type: ignore[attr-defined]
                self.optimizer.zero_grad(set_to_none=True)
                loss = model(batch, step_generator(seed, step, self.device), ctx)
                loss.total.backward()
            compiled_first_step, compiling = compiling, False
            clip = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
            grad_norm = nn.utils.clip_grad_norm_(self.generator.parameters(), clip)
            self.optimizer.step()
            self.ema.update(self.generator)
            self.step = step
            terms = loss.item()
            if not math.isfinite(terms["total"]):
                raise FloatingPointError(
                    f"the training loss is {terms['total']} at step {step} (terms {terms}); "
                    "lower the learning rate or check the data"
                )
            window_losses.append(terms["total"])
            window_graphs += len(idx) * self.world
            seconds = time.perf_counter() - t0
            self.train_seconds += seconds
            if compiled_first_step and self.is_main:
                self.log(f"first step {seconds:.1f} s (torch.compile compiling the network)")
            bar.update(1)
            over_budget = self.train_seconds > budget
            if self.is_main and (step % cfg.log_every == 0 or step == cfg.max_steps or over_budget):
                rate = window_graphs / max(time.perf_counter() - window_t, 1e-9)
                row = {
                    "step": step,
                    "loss": terms["total"],
                    "loss_window": float(np.mean(window_losses)),
                    **{f"loss_{k}": v for k, v in terms.items() if k != "total"},
                    "grad_norm": float(grad_norm),
                    "lr": lr,
                    "graphs_per_s": rate,
                    "train_seconds": self.train_seconds,
                }
                if logger is not None:
                    logger.log(row)
                self._scalars(writer, "train", row, step)
                bar.set_postfix(loss=f"{terms['total']:.3f}", graphs_s=f"{rate:.0f}")
                self._last_window = list(window_losses)
                window_losses, window_graphs, window_t = [], 0, time.perf_counter()
            # a last validation when the time budget ends the run, so every run reports one
            due = cfg.val_every and (step % cfg.val_every == 0 or over_budget)
            if self.is_main and due and self.val_data is not None:
                with self.averaged():
                    val = self.validation_loss()
                self.log(f"step {step}: validation loss (EMA) {val:.4f}")
                self._scalars(writer, "val", {"loss": val}, step)
                self._csv_row("validation", step, {"loss": val})
            if over_budget:
                stopped_by = "time_budget"
            if step % cfg.ckpt_every == 0 or step == cfg.max_steps or over_budget:
                self.save_checkpoint()
            if self.is_main:
                for hook in self.hooks:
                    if step % hook.every == 0:
                        metrics = hook(self, step)
                        if metrics:
                            self.log(f"step {step}: {dict(metrics)}")
                            self._scalars(writer, "hook", metrics, step)
                            name = getattr(hook, "name", type(hook).__name__)
                            self._csv_row(name, step, metrics)
            if over_budget:
                break
        bar.close()
        if writer is not None:
            writer.close()
        last = window_losses or self._last_window
        return TrainingResult(
            step=self.step,
            steps_this_run=self.step - start_step,
            train_seconds=self.train_seconds,
            final_loss=float(np.mean(last)) if last else math.nan,
            stopped_by=stopped_by,
        )

    # ------------------------------------------------------------------ logging
    def _csv_row(self, name: str, step: int, metrics: Mapping[str, Any]) -> None:
        """Append ``metrics`` to ``out_dir/<name>.csv`` with the step and training time."""
        if name in self._csv_logs:
            row = {"step": step, "train_seconds": self.train_seconds, **metrics}
            try:
                self._csv_logs[name].log(row)
            except ValueError as err:  # a hook's keys changed: tell, but keep training
                self.log(f"{name}.csv: row of step {step} not written ({err})")

    def _tensorboard(self) -> Any:
        if not self.config.tensorboard or self.out_dir is None:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self.log("tensorboard is not installed: CSV logs only (pip install 'symgen[logging]')")
            return None
        return SummaryWriter(str(self.out_dir / "tb"), purge_step=self.step + 1)

    @staticmethod
    def _scalars(writer: Any, prefix: str, values: Mapping[str, Any], step: int) -> None:
        if writer is None:
            return
        for key, value in values.items():
            if key != "step":
                writer.add_scalar(f"{prefix}/{key}", float(value), step)
