"""Train CanonFlow (or a baseline) on QM9, then sample and evaluate.

Examples:
    python examples/molecules/train.py --preset quick                 # the README's main job (CPU)
    python examples/molecules/train.py --preset quick --network egnn --canonicalize false \\
        --prior centered --coupling independent                       # EGNN baseline
    python examples/molecules/train.py --preset full --device cuda --amp true
    python examples/molecules/train.py --out-dir runs/x --resume      # continue a run exactly
    torchrun --nproc_per_node 2 examples/molecules/train.py --preset quick   # DDP

Resumption is exact: step s draws its noise and times from ``step_generator(seed, s)`` and its
batch from the epoch order fixed by ``(seed, epoch)``, so a run killed and resumed from its
last checkpoint replays the remaining steps exactly. Under DDP every process (rank) takes every
``world_size``-th batch of the epoch and computes its minibatch OT coupling on its own batch.
"""

import argparse
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import canonflow as cf  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from symgen.molecules.featurize import MolecularFeaturizer  # noqa: E402
from symgen.molecules.loader import SizeBucketBatcher  # noqa: E402
from symgen.training import (  # noqa: E402
    CSVLogger,
    ExponentialMovingAverage,
    load_checkpoint,
    save_checkpoint,
    step_generator,
)
from symgen.training import _mix as mix_seed  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument(
        "--preset", choices=cf.PRESETS, help="named config in examples/molecules/configs/"
    )
    parser.add_argument("--config", help="a TOML config file (applied after --preset)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT_DIR/checkpoint.pt")
    parser.add_argument(
        "--simulate-crash-at",
        type=int,
        default=0,
        metavar="STEP",
        help="testing aid: kill the process abruptly (os._exit) right after step STEP",
    )
    cf.add_config_arguments(parser)
    return parser.parse_args(argv)


class LossModule(torch.nn.Module):
    """``forward(batch, generator) -> LossOutput``, so that DDP can wrap the whole loss."""

    def __init__(self, gen: torch.nn.Module) -> None:
        super().__init__()
        self.gen = gen

    def forward(self, batch, generator):  # noqa: ANN001, ANN201
        return self.gen.loss(batch, generator=generator)


def lr_at(step: int, cfg: cf.TrainConfig) -> float:
    """Linear warm-up then cosine decay to 10% of the peak."""
    if step <= cfg.warmup_steps:
        return cfg.lr * step / max(1, cfg.warmup_steps)
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


@torch.no_grad()
def validation_loss(gen, featurizer, data, cfg, device) -> float:  # noqa: ANN001
    batcher = SizeBucketBatcher(data.val.num_atoms, cfg.batch_size, shuffle=False)
    total, count = 0.0, 0
    for i, idx in enumerate(batcher.epoch()):
        batch = featurizer.batch_from_dataset(data.val, idx).to(device=device)
        out = gen.loss(batch, generator=step_generator(cfg.seed + 7919, i, device))
        total += float(out.total) * len(idx)
        count += len(idx)
    return total / max(count, 1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = cf.resolve_config(args)
    except (ValueError, FileNotFoundError) as err:
        cf.eprint(f"error: {err}")
        return 2
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        dist.init_process_group("nccl" if cfg.device.startswith("cuda") else "gloo")
        if cfg.device.startswith("cuda"):
            cfg.device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    main_proc = rank == 0
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device)
    out = Path(cfg.out_dir)
    ckpt_path = out / "checkpoint.pt"
    t_start = time.perf_counter()

    # ---------------------------------------------------------------- data and model
    data = cf.prepare_data(cfg, progress=cfg.progress and main_proc)
    featurizer = MolecularFeaturizer(cf.LAYOUT)
    torch.manual_seed(cfg.seed)  # network initialisation only; training draws use step generators
    gen = cf.build_generator(cfg, data, featurizer).to(device)
    params = sum(p.numel() for p in gen.parameters() if p.requires_grad)
    loss_module: torch.nn.Module = LossModule(gen)
    if world > 1:
        loss_module = torch.nn.parallel.DistributedDataParallel(loss_module)
    opt = torch.optim.AdamW(gen.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ema = ExponentialMovingAverage(gen, decay=cfg.ema_decay)
    start_step = 0
    if args.resume:
        if not ckpt_path.exists():
            cf.eprint(f"error: --resume given but there is no checkpoint at {ckpt_path}")
            return 2
        state = load_checkpoint(ckpt_path, map_location=device)
        gen.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        ema.load_state_dict(state["ema"])
        start_step = int(state["step"])
        if main_proc:
            cf.eprint(f"resumed from {ckpt_path} at step {start_step}")
    elif main_proc and ckpt_path.exists():
        cf.eprint(f"note: {ckpt_path} exists and will be overwritten (use --resume to continue it)")

    batcher = SizeBucketBatcher(data.train.num_atoms, cfg.batch_size * world, drop_last=True)
    steps_per_epoch = len(batcher)
    if steps_per_epoch == 0:
        cf.eprint("error: the training set is smaller than one batch")
        return 2
    logger = CSVLogger(out / "log.csv", resume_step=start_step) if main_proc else None
    writer = None
    if main_proc and cfg.tensorboard:
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(out / "tb"), purge_step=start_step + 1)
        except ImportError:
            cf.eprint("tensorboard is not installed: CSV logs only (pip install 'symgen[logging]')")
    if main_proc:
        cf.write_json_atomic(out / "config.json", cf.config_to_dict(cfg))
        cf.eprint(
            f"{cfg.network}: {params:,} parameters | method: canonicalize={cfg.canonicalize} "
            f"augment={cfg.augment} prior={cfg.prior} coupling={cfg.coupling} "
            f"process={cfg.process} | "
            f"train {len(data.train):,} molecules (flagged {100 * data.flagged_share:.2f}%), "
            f"{steps_per_epoch} steps/epoch | data ready in {time.perf_counter() - t_start:.0f} s"
        )

    # ---------------------------------------------------------------- training loop
    epoch_cache: dict[int, list[np.ndarray]] = {}
    budget_s = cfg.time_budget_min * 60 if cfg.time_budget_min else math.inf
    t_train = time.perf_counter()
    window_mols, window_t = 0, time.perf_counter()
    step = start_step
    bar = tqdm(
        total=cfg.max_steps,
        initial=start_step,
        desc="train",
        disable=not (cfg.progress and main_proc),
    )
    stop = False
    while step < cfg.max_steps and not stop:
        step += 1
        epoch, j = divmod(step - 1, steps_per_epoch)
        if epoch not in epoch_cache:
            epoch_cache.clear()
            order_gen = torch.Generator().manual_seed(mix_seed(cfg.seed, 3, epoch))
            epoch_cache[epoch] = batcher.epoch(order_gen)
        idx = epoch_cache[epoch][j][rank::world]
        batch = featurizer.batch_from_dataset(data.train, idx).to(device=device)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        gen.train()
        with torch.autocast(
            device_type=device.type, dtype=torch.bfloat16, enabled=cfg.amp and device.type == "cuda"
        ):
            loss = loss_module(batch, step_generator(mix_seed(cfg.seed, 4, rank), step, device))
        opt.zero_grad(set_to_none=True)
        loss.total.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(
            gen.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else math.inf
        )
        opt.step()
        ema.update(gen)
        window_mols += len(idx) * world
        bar.update(1)
        terms = loss.item()
        if main_proc and (step % cfg.log_every == 0 or step == cfg.max_steps):
            rate = window_mols / max(time.perf_counter() - window_t, 1e-9)
            window_mols, window_t = 0, time.perf_counter()
            row = {
                "step": step,
                "loss": terms["total"],
                **{f"loss_{k}": v for k, v in terms.items() if k != "total"},
                "grad_norm": float(grad_norm),
                "lr": lr_at(step, cfg),
                "mol_per_s": rate,
                "elapsed_s": time.perf_counter() - t_start,
            }
            logger.log(row)
            if writer is not None:
                for k, v in row.items():
                    if k != "step":
                        writer.add_scalar(f"train/{k}", v, step)
            bar.set_postfix(loss=f"{terms['total']:.3f}", mol_s=f"{rate:.0f}")
        if main_proc and cfg.val_every and step % cfg.val_every == 0:
            with ema.averaged(gen):
                gen.eval()
                val = validation_loss(gen, featurizer, data, cfg, device)
            cf.eprint(f"step {step}: validation loss (EMA) {val:.4f}")
            if writer is not None:
                writer.add_scalar("val/loss", val, step)
        if main_proc and cfg.eval_every and step % cfg.eval_every == 0:
            with ema.averaged(gen):
                gen.eval()
                mols, _ = cf.sample_molecules(
                    gen,
                    cfg.eval_samples,
                    num_steps=cfg.sample_steps,
                    featurizer=featurizer,
                    seed=step,
                    device=cfg.device,
                    progress=False,
                )
            rep = cf.evaluate_molecules(mols, data, strain_molecules=0)
            summary = {k: rep[k] for k in ("molecule_stability", "validity") if k in rep.metrics}
            cf.eprint(f"step {step}: sample-and-evaluate on {cfg.eval_samples}: {summary}")
        over_budget = time.perf_counter() - t_train > budget_s
        if over_budget:
            stop = True
        if step % cfg.ckpt_every == 0 or step == cfg.max_steps or stop:
            if main_proc:
                save_checkpoint(
                    ckpt_path,
                    {
                        "step": step,
                        "model": gen.state_dict(),
                        "optimizer": opt.state_dict(),
                        "ema": ema.state_dict(),
                        "config": cf.config_to_dict(cfg),
                    },
                )
            if world > 1:
                dist.barrier()
        if args.simulate_crash_at and step == args.simulate_crash_at:
            sys.stdout.flush()
            os._exit(17)
    bar.close()
    if world > 1:
        flags = torch.tensor([step], dtype=torch.long)
        dist.all_reduce(flags, op=dist.ReduceOp.MIN)
        dist.destroy_process_group()
    if not main_proc:
        return 0
    train_min = (time.perf_counter() - t_train) / 60
    cf.eprint(f"trained {step} steps ({step - start_step} this run) in {train_min:.1f} min")
    if writer is not None:
        writer.close()

    # ---------------------------------------------------------------- sample and evaluate
    if cfg.final_samples > 0:
        with ema.averaged(gen):
            gen.eval()
            mols, rate = cf.sample_molecules(
                gen,
                cfg.final_samples,
                num_steps=cfg.sample_steps,
                featurizer=featurizer,
                seed=cfg.seed + 1,
                device=cfg.device,
                progress=cfg.progress,
            )
        report = cf.evaluate_molecules(mols, data, strain_molecules=cfg.strain_molecules)
        cf.save_samples(mols, report, out)
        print(report.table())
        print(f"sampling: {rate:.1f} molecules/s ({cfg.sample_steps} steps, {cfg.device})")
        print(
            f"total wall-clock: {(time.perf_counter() - t_start) / 60:.1f} min; outputs in {out}/"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
