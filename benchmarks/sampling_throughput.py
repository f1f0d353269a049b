"""Sampling throughput of a trained checkpoint at several step counts, float32 and bfloat16.

Loads a ``train.py`` checkpoint (EMA weights), then for each precision and step count samples
``--num`` molecules in batches of ``--batch-size`` (after one warm-up batch) and prints
molecules per second and the ratio against float32 at the same step count. Sampling uses the
checkpoint's sampler defaults (solver, time grid, token settings) with the step count
overridden. ``--compile`` runs the network through ``torch.compile`` (compile time printed,
not counted).

    python benchmarks/sampling_throughput.py --checkpoint runs/quick/checkpoint.pt
    python benchmarks/sampling_throughput.py --checkpoint ckpt.pt --steps 10 20 50 --num 500
"""

import argparse
import time

import torch

from symgen.molecules import canonflow as cf


def rate(gen, num: int, batch: int, steps: int) -> float:  # noqa: ANN001
    """Molecules per second (decoding included) for ``num`` molecules at ``steps`` steps."""
    t0 = time.perf_counter()
    cf.sample_molecules(gen, num, seed=1, batch_size=batch, progress=False, steps=steps)
    return num / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkpoint", required=True, help="a train.py checkpoint")
    p.add_argument("--steps", type=int, nargs="+", default=[10, 20, 50], help="step counts")
    p.add_argument("--num", type=int, default=500, help="molecules per measurement")
    p.add_argument("--batch-size", type=int, default=250, help="molecules per batch")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--compile", action="store_true", help="torch.compile the network")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    gen, _, state = cf.load_generator(args.checkpoint)
    if args.compile:
        gen.compile_network()
    results: dict[str, dict[int, float]] = {}
    for precision in ("float32", "bfloat16"):
        gen.precision = precision
        t0 = time.perf_counter()
        cf.sample_molecules(gen, args.batch_size, seed=0, progress=False, steps=2)  # warm-up
        warm = time.perf_counter() - t0
        results[precision] = {s: rate(gen, args.num, args.batch_size, s) for s in args.steps}
        print(f"{precision}: warm-up batch {warm:.1f} s", flush=True)
    print(
        f"checkpoint step {state['step']}, {args.threads} threads, batches of {args.batch_size}"
        f"{', compiled' if args.compile else ''}"
    )
    print("| steps | float32 (molecules/s) | bfloat16 (molecules/s) | ratio |")
    print("|---:|---:|---:|---:|")
    for s in args.steps:
        a, b = results["float32"][s], results["bfloat16"][s]
        print(f"| {s} | {a:.1f} | {b:.1f} | {b / a:.2f} |")
    if args.json:
        from symgen.files import atomic_write_json

        atomic_write_json(args.json, {"args": vars(args), "molecules_per_second": results})


if __name__ == "__main__":
    main()
