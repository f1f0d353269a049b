"""Training throughput of the quick preset in float32 and bfloat16, eager and compiled, one run.

The last mode, ``bfloat16+compile+fused``, adds AdamW's fused kernel: the quick preset's path.

Each mode trains the README main job's network (``--preset quick``: Canon transformer with
self-conditioning, batch 64 on size-bucketed batches of the cached canonical QM9 data, AdamW,
EMA) from the same initialization for ``--steps`` steps in its own process, with ``--threads``
threads, and reports the median step time after the first ``--skip`` steps, the first step
(where ``torch.compile`` compiles), and molecules per second; the ratio is against the float32
eager mode of the same run. Compiled modes start from an empty inductor cache (a new
``TORCHINDUCTOR_CACHE_DIR``) unless ``--warm-cache``, so their first step shows what a new
machine pays. ``steps in 22 min`` amortizes that first step over the main job's budget.
``--cold-data`` gives each mode an empty symgen cache too, so that, like the main job on a new
machine, the process parses QM9 and canonicalizes it before training.

    python benchmarks/training_throughput.py                      # 5 modes, 150 steps each
    python benchmarks/training_throughput.py --modes float32 bfloat16 --steps 100
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: precision, then options: ``+compile`` (torch.compile), ``+fused`` (AdamW's fused kernel);
#: the last mode is what the quick preset runs on a CPU with native bfloat16
MODES = (
    "float32",
    "bfloat16",
    "float32+compile",
    "bfloat16+compile",
    "bfloat16+compile+fused",
)


def run_mode(mode: str, steps: int, threads: int) -> dict:
    """Train ``steps`` steps in this process; step times in seconds."""
    import numpy as np
    import torch

    from symgen.data import SizeBucketBatcher
    from symgen.molecules import canonflow as cf
    from symgen.training import ExponentialMovingAverage, step_generator

    torch.set_num_threads(threads)
    cfg = cf.resolve_config(argparse.Namespace(preset="quick", config=None))
    data = cf.prepare_data(cfg, progress=False)
    torch.manual_seed(0)
    gen = cf.build_generator(cfg, data)
    precision, *options = mode.split("+")
    gen.precision = precision
    if "compile" in options:
        gen.compile_network()
    opt = torch.optim.AdamW(gen.parameters(), lr=cfg.lr, fused=True if "fused" in options else None)
    ema = ExponentialMovingAverage(gen, decay=cfg.ema_decay)
    batcher = SizeBucketBatcher(data.train.num_nodes.numpy(), cfg.batch_size, drop_last=True)
    batches = batcher.epoch(torch.Generator().manual_seed(0))
    times, losses = [], []
    for step in range(steps):
        t0 = time.perf_counter()
        batch = data.train.batch(torch.from_numpy(batches[step]))
        out = gen.loss(batch, generator=step_generator(0, step))
        opt.zero_grad(set_to_none=True)
        out.total.backward()
        torch.nn.utils.clip_grad_norm_(gen.parameters(), cfg.grad_clip)
        opt.step()
        ema.update(gen)
        losses.append(float(out.total.detach()))
        times.append(time.perf_counter() - t0)
    return {
        "times": times,
        "losses": losses,
        "batch_size": cfg.batch_size,
        "mean_nodes": float(
            np.mean([data.train.num_nodes[b].float().mean() for b in batches[:steps]])
        ),
    }


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    p.add_argument("--steps", type=int, default=150, help="training steps per mode")
    p.add_argument("--skip", type=int, default=20, help="steps left out of the median")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--warm-cache", action="store_true", help="reuse inductor's cache")
    p.add_argument(
        "--cold-data",
        action="store_true",
        help="build the QM9 and canonical caches in each mode's process before training",
    )
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:  # one mode, in its own process
        print(json.dumps(run_mode(args.child, args.steps, args.threads)))
        return 0
    if args.steps <= args.skip:
        p.error("--steps must exceed --skip")
    results = {}
    for mode in args.modes:
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
        with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as data:
            if not args.warm_cache:
                env["TORCHINDUCTOR_CACHE_DIR"] = cache
            if args.cold_data:
                env["SYMGEN_CACHE"] = data
            cmd = [
                sys.executable,
                __file__,
                "--child",
                mode,
                "--steps",
                str(args.steps),
                "--threads",
                str(args.threads),
            ]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{mode}: done", file=sys.stderr, flush=True)
    base = statistics.median(results[args.modes[0]]["times"][args.skip :])
    print(
        f"batch {results[args.modes[0]]['batch_size']}, {args.threads} threads, median step "
        f"over steps {args.skip + 1}-{args.steps}; ratios against {args.modes[0]}"
    )
    print("| mode | first step | median step | molecules/s | ratio | steps in 22 min |")
    print("|---|---:|---:|---:|---:|---:|")
    for mode, r in results.items():
        med = statistics.median(r["times"][args.skip :])
        first = r["times"][0]
        in_budget = int((22 * 60 - first) / med) + 1
        print(
            f"| {mode} | {first:.1f} s | {1000 * med:.0f} ms | {r['batch_size'] / med:.0f} | "
            f"{base / med:.2f} | {in_budget:,} |"
        )
    if args.json:
        from symgen.files import atomic_write_json
        from symgen.provenance import git_commit, machine_name

        atomic_write_json(
            args.json,
            {
                "args": vars(args),
                "results": results,
                "machine": machine_name(),
                "commit": git_commit(Path(__file__).resolve().parents[1]),
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
