"""Where the time of one training step and one sampling step of the quick preset goes.

Builds the README main job's generator (``--preset quick``) on its cached canonical QM9 data and
times, over ``--steps`` training steps (after warm-up), each phase of a step: reading the batch
from the tensor cache, preparing it, drawing the aligned prior (noise canonicalization), the
minibatch OT coupling, the loss's forward pass (the network and the loss), the backward pass,
the optimizer step and the EMA update; then the network's share of the forward pass by
operator (``torch.profiler``), and the time per sampling step split into the network and the
rest (solver, token jumps, self-conditioning estimate). Both precisions, side by side.

    python benchmarks/profile_step.py                        # 2 threads, 30 steps
    python benchmarks/profile_step.py --precision float32 --steps 50 --json prof.json
"""

import argparse
import statistics
import time
from collections import defaultdict

import numpy as np
import torch

from symgen.molecules import canonflow as cf
from symgen.training import ExponentialMovingAverage, step_generator


class _Timed(torch.nn.Module):
    """Accumulates the wall-clock of every call of the wrapped network."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net
        self.self_conditioning = getattr(net, "self_conditioning", False)
        self.seconds = 0.0

    def forward(self, x, t, cond=None):  # noqa: ANN001, ANN201
        t0 = time.perf_counter()
        out = self.net(x, t) if cond is None else self.net(x, t, cond=cond)
        self.seconds += time.perf_counter() - t0
        return out


def training_phases(gen, data, cfg, precision: str, steps: int) -> dict[str, float]:  # noqa: ANN001
    """Median seconds per phase of a training step."""
    gen.precision = precision
    opt = torch.optim.AdamW(gen.parameters(), lr=1e-4)
    ema = ExponentialMovingAverage(gen, decay=0.999)
    order = np.random.default_rng(0).permutation(len(data.train))
    phases: dict[str, list[float]] = defaultdict(list)
    for step in range(steps + 3):
        idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
        g = step_generator(0, step)
        t = [time.perf_counter()]
        batch = data.train.batch(torch.from_numpy(idx))
        t.append(time.perf_counter())
        x1 = gen.prepare(batch, generator=g)
        t.append(time.perf_counter())
        x0 = gen.prior.sample(x1, generator=g)
        t.append(time.perf_counter())
        coupled = gen.coupling.couple(x0, x1, generator=g)
        t.append(time.perf_counter())
        loss = gen.process.loss(gen.network, coupled.x0, coupled.x1, generator=g)
        t.append(time.perf_counter())
        opt.zero_grad(set_to_none=True)
        loss.total.backward()
        t.append(time.perf_counter())
        torch.nn.utils.clip_grad_norm_(gen.parameters(), 1.0)
        opt.step()
        t.append(time.perf_counter())
        ema.update(gen)
        float(loss.total.detach())  # the per-step host synchronization of logging
        t.append(time.perf_counter())
        if step >= 3:
            names = (
                "batch from tensor cache",
                "prepare (centre)",
                "prior (aligned: noise canonicalization)",
                "coupling (minibatch OT)",
                "loss forward (network + loss)",
                "backward",
                "clip + optimizer step",
                "EMA update + loss sync",
            )
            for name, a, b in zip(names, t[:-1], t[1:]):
                phases[name].append(b - a)
    return {k: statistics.median(v) for k, v in phases.items()}


def network_operators(gen, data, cfg, precision: str, top: int) -> list[tuple[str, float]]:  # noqa: ANN001
    """Self CPU time per operator of the loss's forward and backward, share of the total."""
    from torch.profiler import ProfilerActivity, profile

    gen.precision = precision
    idx = np.arange(cfg.batch_size)
    batch = data.train.batch(torch.from_numpy(idx))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for step in range(3):
            out = gen.loss(batch, generator=step_generator(0, step))
            out.total.backward()
    rows = [(e.key, e.self_cpu_time_total) for e in prof.key_averages()]
    total = sum(v for _, v in rows)
    rows.sort(key=lambda r: -r[1])
    return [(k, v / total) for k, v in rows[:top]]


def sampling_split(gen, precision: str, steps: int, batch: int) -> dict[str, float]:  # noqa: ANN001
    """Seconds per sampling step: the network, and everything else."""
    gen.precision = precision
    inner = gen.network.model
    timed = _Timed(inner)
    gen.network.model = timed
    try:
        with torch.no_grad():
            gen.sample(batch, steps=2, generator=torch.Generator().manual_seed(0))  # warm-up
            timed.seconds = 0.0
            t0 = time.perf_counter()
            gen.sample(batch, steps=steps, generator=torch.Generator().manual_seed(1))
            total = time.perf_counter() - t0
    finally:
        gen.network.model = inner
    return {
        "network": timed.seconds / steps,
        "rest (solver, token jumps, estimate)": (total - timed.seconds) / steps,
        "total": total / steps,
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--steps", type=int, default=30, help="timed training steps per precision")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument(
        "--precision", nargs="+", default=["float32", "bfloat16"], help="precisions to profile"
    )
    p.add_argument("--sample-batch", type=int, default=250, help="graphs per sampling batch")
    p.add_argument("--sample-steps", type=int, default=10, help="timed sampling steps")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = cf.resolve_config(argparse.Namespace(preset="quick", config=None))
    cfg.progress = False
    data = cf.prepare_data(cfg, progress=False)
    torch.manual_seed(0)
    gen = cf.build_generator(cfg, data)
    results: dict[str, dict] = {}
    for precision in args.precision:
        phases = training_phases(gen, data, cfg, precision, args.steps)
        ops = network_operators(gen, data, cfg, precision, top=12)
        sampling = sampling_split(gen, precision, args.sample_steps, args.sample_batch)
        results[precision] = {"training": phases, "operators": ops, "sampling": sampling}
        total = sum(phases.values())
        print(
            f"\n== {precision}: training step {1000 * total:.0f} ms "
            f"({cfg.batch_size / total:.0f} molecules/s), batch {cfg.batch_size}"
        )
        for name, sec in phases.items():
            print(f"  {name:42s} {1000 * sec:7.1f} ms  {100 * sec / total:5.1f} %")
        print("  operators (self CPU time, loss forward + backward):")
        for name, share in ops:
            print(f"    {name:40s} {100 * share:5.1f} %")
        print(f"  sampling step, batch {args.sample_batch}:")
        for name, sec in sampling.items():
            print(f"    {name:40s} {1000 * sec:7.1f} ms")
    if args.json:
        from symgen.files import atomic_write_json

        atomic_write_json(args.json, {"args": vars(args), "results": results})


if __name__ == "__main__":
    main()
