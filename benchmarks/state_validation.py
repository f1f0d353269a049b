"""What value-checking every intermediate state costs per sampling step.

symgen checks a ``GeometricGraph``'s values (finite numbers, prefix mask) where data enter and
only its structure on states computed inside a solver step; the test suite checks everything
(``strict_validation``), as every constructor did before the second architecture pass. This
script samples with the quick preset's network (Canon transformer, width 128, depth 4, 8 heads,
self-conditioning, discrete tokens), untrained, on batches of QM9-sized graphs (random sizes
10-29, 5 atom types, 3 charges, 4 bond classes), in both modes, alternating repeats, and prints
the time per sampling step and the ratio.

    python benchmarks/state_validation.py                  # batch 250, 20 steps, 2 threads
    python benchmarks/state_validation.py --batch 64 --repeats 5
"""

import argparse
import platform
import statistics
import time

import torch

from symgen.canon import geometric_spectral_canonicalizer
from symgen.generators import CanonicalGenerator, FlowMatching, PowerTokenSchedule, SamplerOptions
from symgen.models import build_network
from symgen.priors import (
    AlignedPrior,
    CategoricalPrior,
    CategoricalSpec,
    CenteredGaussianPrior,
    ProductPrior,
)
from symgen.state import strict_validation


def build() -> CanonicalGenerator:
    spec = CategoricalSpec(node_blocks=(5, 3), edge_classes=4)
    canon = geometric_spectral_canonicalizer()
    prior = AlignedPrior(
        ProductPrior(CenteredGaussianPrior(features=False), CategoricalPrior(spec, "uniform")),
        canon,
    )
    net = build_network(
        "canon_transformer",
        node_in=8,
        node_out=8,
        edge_in=4,
        edge_out=4,
        width=128,
        depth=4,
        heads=8,
        self_condition=True,
    )
    process = FlowMatching(
        spec=spec, token_schedule=PowerTokenSchedule(0.5), self_conditioning=True
    )
    sizes = torch.zeros(30)
    sizes[10:] = 1.0
    return CanonicalGenerator(
        canon,
        prior,
        None,
        process,
        net,
        assume_canonical=True,
        sizes=sizes,
        node_dim=8,
        edge_dim=4,
        sampler=SamplerOptions(stochasticity=30.0, time_grid=0.5, temperature=0.5),
    ).eval()


def seconds_per_step(gen: CanonicalGenerator, batch: int, steps: int, strict: bool) -> float:
    with strict_validation(strict), torch.no_grad():
        t0 = time.perf_counter()
        gen.sample(batch, steps=steps, generator=torch.Generator().manual_seed(0))
        return (time.perf_counter() - t0) / steps


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--batch", type=int, default=250, help="graphs per sampling batch")
    p.add_argument("--steps", type=int, default=20, help="solver steps per sampling run")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per mode (alternating)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    gen = build()
    seconds_per_step(gen, args.batch, 2, False)  # warm-up
    times: dict[str, list[float]] = {"structure only": [], "every state checked": []}
    for _ in range(args.repeats):
        times["structure only"].append(seconds_per_step(gen, args.batch, args.steps, False))
        times["every state checked"].append(seconds_per_step(gen, args.batch, args.steps, True))
    med = {k: statistics.median(v) for k, v in times.items()}
    saved = med["every state checked"] - med["structure only"]
    print(
        f"batch {args.batch}, {args.steps} steps, {args.threads} threads, median of {args.repeats}"
    )
    for k, v in med.items():
        print(f"  {k:22s} {1000 * v:8.1f} ms per step")
    checked = med["every state checked"]
    print(
        f"  saved per step: {1000 * saved:.1f} ms ({100 * saved / checked:.1f} %); "
        f"ratio {checked / med['structure only']:.3f}"
    )
    if args.json:
        from symgen.files import atomic_write_json

        atomic_write_json(
            args.json,
            {
                "args": vars(args),
                "seconds_per_step": times,
                "median": med,
                "machine": platform.processor() or platform.machine(),
                "torch": torch.__version__,
            },
        )


if __name__ == "__main__":
    main()
