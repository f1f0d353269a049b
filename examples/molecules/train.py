"""Train CanonFlow (or a baseline) on QM9, drug-like molecules or your own SDF; sample; evaluate.

Examples:
    python examples/molecules/train.py --preset quick                 # the README's main job (CPU)
    python examples/molecules/train.py --preset drugs-quick           # moses3d, drug-sized (CPU)
    python examples/molecules/train.py --preset quick --data my_molecules.sdf --out-dir runs/mine
    python examples/molecules/train.py --preset geom --data geom:/data/geom_midi --device cuda
    python examples/molecules/train.py --preset quick --config egnn_baseline   # EGNN baseline
    python examples/molecules/train.py --preset full --device cuda --precision bfloat16
    python examples/molecules/train.py --out-dir runs/x --resume      # continue a run exactly
    torchrun --nproc_per_node 2 examples/molecules/train.py --preset quick   # DDP

The recipe (configuration, cached canonical data, generator) is symgen.molecules.canonflow; the
loop is symgen.training.Trainer. Resumption is exact: step s draws its noise and times from
step_generator(seed, s) and its batch from the epoch order fixed by (seed, epoch).
"""

import argparse
import os
import sys
import time

from symgen.molecules import canonflow as cf


class CrashAfter:
    """Testing aid: kill the process abruptly (``os._exit``) right after a step."""

    def __init__(self, step: int) -> None:
        self.every = step

    def __call__(self, trainer, step):  # noqa: ANN001, ANN204
        sys.stdout.flush()
        os._exit(17)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = cf.resolve_config(args)
    except (ValueError, FileNotFoundError) as err:
        cf.eprint(f"error: {err}")
        return 2
    t_start = time.perf_counter()
    hooks = [CrashAfter(args.simulate_crash_at)] if args.simulate_crash_at > 0 else []
    try:
        out = cf.train(cfg, resume=args.resume, hooks=hooks)
    except (ValueError, FileNotFoundError) as err:
        cf.eprint(f"error: {err}")
        return 2
    if out is None or cfg.final_samples <= 0:  # another DDP rank, or no final evaluation
        return 0
    gen, trainer, _ = out
    with trainer.averaged():
        mols, rate = cf.sample_molecules(
            gen, cfg.final_samples, seed=cfg.seed + 1, progress=cfg.progress
        )
    reference = cf.load_reference(cfg)
    report = cf.evaluate_molecules(
        mols,
        reference,
        strain_molecules=cfg.strain_molecules,
        xtb_molecules=cfg.xtb_molecules,
        posebusters_molecules=cfg.posebusters_molecules,
        progress=cfg.progress,
    )
    cf.save_samples(mols, report, cfg.out_dir)
    print(report.table())
    print("\nheadline protocols side by side:")
    print(report.side_by_side(reference.headline_protocols))
    compiled = getattr(gen.network, "compiled", False)
    print(
        f"sampling: {rate:.1f} molecules/s ({gen.sampler.steps} steps, {cfg.device}, "
        f"network in {gen.precision}{', compiled' if compiled else ''})"
    )
    minutes = (time.perf_counter() - t_start) / 60
    print(f"total wall-clock: {minutes:.1f} min; outputs in {cfg.out_dir}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
