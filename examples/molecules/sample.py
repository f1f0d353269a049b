"""Sample molecules from a trained checkpoint, write SDF/XYZ/PNG and the evaluator's JSON.

Examples:
    python examples/molecules/sample.py --checkpoint runs/quick/checkpoint.pt --num 1000 --steps 50
    python examples/molecules/sample.py --checkpoint runs/quick/checkpoint.pt --num 200 --steps 10 \
        --out runs/quick/few_step

Samples use the EMA weights and are symmetrized: each generated canonical molecule gets a
Haar-random rotation and a uniformly random atom order (centroid at the origin), so the output
distribution is exactly S_n × SO(3) invariant whatever the network.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import canonflow as cf  # noqa: E402
import torch  # noqa: E402

from symgen.molecules.featurize import MolecularFeaturizer  # noqa: E402
from symgen.training import ExponentialMovingAverage, load_checkpoint  # noqa: E402

#: Sampler settings of the run's config that command-line flags may override.
SAMPLER_OPTIONS = ("solver", "time_grid", "temperature", "stochasticity", "final_tokens")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint.pt written by train.py")
    p.add_argument("--num", type=int, default=1000, help="number of molecules (default 1000)")
    p.add_argument(
        "--steps", type=int, default=50, help="solver steps (few-step sampling works, e.g. 10)"
    )
    p.add_argument(
        "--out",
        default=None,
        help="output folder (default: next to the checkpoint, samples_<steps>)",
    )
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="temperature of the token draws (< 1 sharpens; default: the run's config)",
    )
    p.add_argument(
        "--time-grid",
        type=float,
        default=None,
        help="sampling time grid exponent p, t_k = (k/N)^p (default: the run's config)",
    )
    p.add_argument(
        "--stochasticity",
        type=float,
        default=None,
        help="detailed-balance re-noising rate of tokens (default: the run's config)",
    )
    p.add_argument(
        "--solver",
        choices=("euler", "heun", "midpoint"),
        default=None,
        help="flow ODE solver; heun and midpoint cost two network calls per step "
        "(default: the run's config)",
    )
    p.add_argument(
        "--final-tokens",
        choices=("argmax", "sample"),
        default=None,
        help="read-out of atom/bond tokens at the last step (default: the run's config)",
    )
    p.add_argument("--device", default="cpu", help="torch device")
    p.add_argument("--batch-size", type=int, default=250, help="molecules per sampling batch")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA")
    p.add_argument(
        "--no-eval", action="store_true", help="skip the evaluation (only write molecules)"
    )
    p.add_argument(
        "--strain-molecules", type=int, default=200, help="molecules whose MMFF strain is computed"
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.num < 1 or args.steps < 1:
        cf.eprint("error: --num and --steps must be positive")
        return 2
    if args.threads < 0:
        cf.eprint("error: --threads must be >= 0")
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        state = load_checkpoint(args.checkpoint, map_location=args.device)
    except FileNotFoundError as err:
        cf.eprint(f"error: {err}")
        return 2
    cfg = cf.TrainConfig(**state["config"])
    cfg.device = args.device
    for name in SAMPLER_OPTIONS:
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    data = cf.prepare_data(cfg, progress=not args.no_progress)
    featurizer = MolecularFeaturizer(cf.LAYOUT)
    gen = cf.build_generator(cfg, data, featurizer).to(args.device)
    gen.load_state_dict(state["model"])
    if not args.no_ema:
        ema = ExponentialMovingAverage(gen)
        ema.load_state_dict(state["ema"])
        gen.load_state_dict(ema.shadow)
    gen.eval()
    mols, rate = cf.sample_molecules(
        gen,
        args.num,
        num_steps=args.steps,
        featurizer=featurizer,
        seed=args.seed,
        device=args.device,
        batch_size=args.batch_size,
        progress=not args.no_progress,
    )
    out = Path(args.out) if args.out else Path(args.checkpoint).parent / f"samples_{args.steps}"
    if args.no_eval:
        from symgen.molecules import io as mio

        out.mkdir(parents=True, exist_ok=True)
        mio.write_sdf(mols, out / "samples.sdf")
        mio.write_xyz(mols, out / "samples.xyz")
    else:
        report = cf.evaluate_molecules(mols, data, strain_molecules=args.strain_molecules)
        cf.save_samples(mols, report, out)
        print(report.table())
    cf.write_json_atomic(
        out / "sampling.json",
        {
            "num": args.num,
            "steps": args.steps,
            "molecules_per_second": rate,
            "device": args.device,
            "checkpoint_step": int(state["step"]),
            "ema": not args.no_ema,
            "seed": args.seed,
            **{name: getattr(cfg, name) for name in SAMPLER_OPTIONS},
        },
    )
    print(
        f"{args.num} molecules in {args.num / rate:.1f} s: {rate:.1f} molecules/s "
        f"({args.steps} steps, {args.device}, step {state['step']} checkpoint); outputs in {out}/"
    )
    return 0


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    sys.exit(main())
