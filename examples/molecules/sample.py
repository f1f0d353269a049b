"""Sample molecules from a trained checkpoint, write SDF/XYZ/PNG and the evaluator's JSON.

Examples:
    python examples/molecules/sample.py --checkpoint runs/quick/checkpoint.pt --num 1000 --steps 50
    python examples/molecules/sample.py --checkpoint runs/quick/checkpoint.pt --num 200 --steps 10 \
        --solver heun --out runs/quick/few_step
    python examples/molecules/sample.py --pretrained qm9-canonflow   # a shipped model
    python examples/molecules/sample.py --checkpoint runs/cond/checkpoint.pt \
        --condition "alpha=70,gap=6000" --guidance 1.5    # a model trained with --condition
    python examples/molecules/sample.py --checkpoint runs/complete/checkpoint.pt \
        --scaffold ring.sdf --num 100       # a model trained with --fixed-parts fragments

The generator is rebuilt from the checkpoint alone (size histogram, categorical marginals,
sampler defaults and feature layout travel in it), so sampling starts without loading or
canonicalizing the dataset; the run's training molecules are read only afterwards, as the
evaluator's reference.
Samples use the EMA weights and are symmetrized: each generated canonical molecule gets a
Haar-random rotation and a uniformly random atom order (centroid at the origin), so the output
distribution is exactly S_n × SO(3) invariant whatever the network.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from symgen import pretrained
from symgen.files import atomic_write_json
from symgen.generators import SOLVERS, CanonicalGenerator
from symgen.molecules import canonflow as cf
from symgen.molecules.molecule import Molecule
from symgen.molecules.property_context import parse_targets

#: Sampler settings of the checkpoint that command-line flags may override.
SAMPLER_OPTIONS = (
    "steps",
    "solver",
    "time_grid",
    "temperature",
    "stochasticity",
    "final_tokens",
    "shortcut",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="checkpoint.pt written by train.py")
    source.add_argument(
        "--pretrained",
        metavar="NAME",
        help="a model shipped with symgen (symgen.pretrained; its SHA-256 is checked and it is "
        "evaluated against its shipped reference, so no dataset is needed); an unknown name "
        "lists the available ones",
    )
    p.add_argument("--num", type=int, default=1000, help="number of molecules (default 1000)")
    p.add_argument("--out", default=None, help="output folder (default: next to the checkpoint)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--steps", type=int, help="solver steps (default: the run's)")
    p.add_argument("--solver", choices=sorted(SOLVERS), help="ODE solver (default: the run's)")
    p.add_argument("--time-grid", type=float, help="time grid exponent p, t_k = (k/N)^p")
    p.add_argument(
        "--temperature", type=float, help="temperature of the token draws (< 1 sharpens)"
    )
    p.add_argument("--stochasticity", type=float, help="detailed-balance re-noising rate of tokens")
    p.add_argument("--final-tokens", choices=("argmax", "sample"), help="last-step token read-out")
    p.add_argument(
        "--no-shortcut",
        dest="shortcut",
        action="store_const",
        const=False,
        default=None,
        help="a few-step-trained run: Euler steps ask for the instantaneous velocity (d = 0), "
        "the ordinary many-step path, instead of the average over each step",
    )
    p.add_argument("--device", default="cpu", help="torch device")
    p.add_argument(
        "--precision",
        choices=("auto", "float32", "bfloat16"),
        help="network precision (default: the one the run trained in)",
    )
    p.add_argument("--batch-size", type=int, default=250, help="molecules per sampling batch")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA")
    p.add_argument(
        "--no-eval", action="store_true", help="skip the evaluation (only write molecules)"
    )
    p.add_argument(
        "--strain-molecules", type=int, default=200, help="molecules whose MMFF strain is computed"
    )
    p.add_argument(
        "--xtb-molecules",
        type=int,
        default=0,
        help="GFN2-xTB relaxations of the geom-revisited protocol (needs tblite; default 0)",
    )
    p.add_argument(
        "--posebusters-molecules",
        type=int,
        default=100,
        help="molecules checked by posebusters (about a second each; default 100)",
    )
    p.add_argument(
        "--protocol",
        nargs="+",
        default=None,
        metavar="NAME",
        help="evaluation protocols (default: every one whose extra is installed; see "
        "python -m symgen.molecules.evaluate --help)",
    )
    p.add_argument(
        "--condition",
        default=None,
        metavar="NAME=VALUE,...",
        help="target properties of a conditional model in their units (alpha Bohr^3; gap, homo, "
        "lumo meV; mu D; Cv cal/(mol K)), the same for every molecule; sizes follow p(n | "
        "targets)",
    )
    p.add_argument(
        "--guidance", type=float, default=None, help="classifier-free guidance (default: the run's)"
    )
    p.add_argument(
        "--predictor",
        default=None,
        metavar="CHECKPOINT",
        help="with --condition: a property predictor (benchmarks/conditional_qm9.py writes one) "
        "that scores the molecules: its mean absolute error to each target is printed",
    )
    p.add_argument(
        "--scaffold",
        default=None,
        metavar="FILE",
        help="completion models (trained with --fixed-parts fragments): an SD file (3D, with "
        "bonds) whose first record is the fixed part; every molecule starts with its atoms, "
        "unchanged, and the share of molecules that contain it is printed",
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    return p.parse_args(argv)


def condition_targets(gen: CanonicalGenerator, args: argparse.Namespace) -> np.ndarray | None:
    """The ``(num, c)`` targets of ``--condition`` (``None`` without it).

    Raises:
        ValueError: a condition for an unconditional model, or a bad condition (names the
            model's properties), or ``--guidance`` without a condition.
    """
    context = cf.property_context(gen)
    if args.condition is None:
        if args.guidance is not None:
            raise ValueError("--guidance needs --condition")
        return None
    if context is None:
        raise ValueError("--condition needs a model trained with condition=...; this one is not")
    row = parse_targets(args.condition, context.names)
    given = ", ".join(
        f"{n} = {v:g} {u}" for n, v, u in zip(context.names, row, context.units) if v == v
    )
    cf.eprint(f"conditioning on {given}")
    return np.tile(row, (args.num, 1))


def read_scaffold(gen: CanonicalGenerator, path: str | None) -> Molecule | None:
    """The fixed part of ``--scaffold`` (its first SD record), checked against the model.

    Raises:
        ValueError: a scaffold for a model without fixed parts, a completion model without a
            scaffold, or an unreadable file or record.
    """
    if path is None:
        if gen.fixed_parts is not None:
            raise ValueError(
                "this model completes fixed parts (trained with fixed_parts): pass --scaffold"
            )
        return None
    if gen.fixed_parts is None:
        raise ValueError("--scaffold needs a model trained with --fixed-parts fragments")
    from symgen.molecules import io as mio

    records = mio.read_sdf(path)
    if not records:
        raise ValueError(f"{path} holds no molecule")
    scaffold = records[0]
    if scaffold.problems:
        raise ValueError(f"{path}, first record: {'; '.join(scaffold.problems)}")
    if scaffold.bonds is None:
        raise ValueError(f"{path}, first record: the scaffold needs its bonds")
    return scaffold


def completion_scores(mols: list, scaffold: Molecule) -> dict[str, float]:
    """Share of molecules that are valid and contain the scaffold
    (:func:`~symgen.molecules.fragments.contains_substructure`), validity under the ``midi``
    rule (largest fragment, own bonds), and the share of distinct SMILES among the valid ones
    (uniqueness of the completions)."""
    from symgen.molecules.bonds import molecule_bond_orders
    from symgen.molecules.fragments import contains_substructure
    from symgen.molecules.metrics import rdkit_validity

    contained = [contains_substructure(m, scaffold) for m in mols]
    check = rdkit_validity(mols, [molecule_bond_orders(m) for m in mols], rule="midi")
    smiles = [s for s, ok in zip(check.smiles, check.valid) if ok]
    return {
        "contains_scaffold": float(np.mean(contained)),
        "midi_validity": len(smiles) / max(len(mols), 1),
        "unique_of_valid": len(set(smiles)) / max(len(smiles), 1),
    }


def property_errors(
    gen: CanonicalGenerator, predictor: object, mols: list, targets: np.ndarray
) -> dict[str, float]:
    """Print and return the predictor's mean absolute error to each given target."""
    from symgen.molecules.property_predictor import predict_molecules

    context = cf.property_context(gen)
    assert context is not None
    predicted = predict_molecules(predictor, mols)  # type: ignore[arg-type]
    names = list(predictor.names)  # type: ignore[attr-defined]
    errors = {}
    for k, (name, unit) in enumerate(zip(context.names, context.units)):
        if np.isnan(targets[0, k]):
            continue
        mae = float(np.abs(predicted[:, names.index(name)] - targets[:, k]).mean())
        errors[name] = mae
        print(f"property {name}: target {targets[0, k]:g} {unit}, predictor's MAE {mae:.4g} {unit}")
    return errors


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.num < 1 or args.threads < 0 or args.batch_size < 1:
        cf.eprint("error: --num and --batch-size must be positive and --threads >= 0")
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    try:
        if not args.no_eval:
            from symgen.molecules.evaluate import select_protocols

            select_protocols(args.protocol)  # a bad name fails before sampling, not after
        checkpoint = (
            pretrained.pretrained_path(args.pretrained) if args.pretrained else args.checkpoint
        )
        gen, cfg, state = cf.load_generator(
            checkpoint, ema=not args.no_ema, device=args.device, precision=args.precision
        )
        gen.sampler = gen.sampler.replace(**{k: getattr(args, k) for k in SAMPLER_OPTIONS})
        targets = condition_targets(gen, args)
        predictor = None
        if args.predictor is not None:
            if targets is None:
                raise ValueError("--predictor needs --condition")
            from symgen.molecules.property_predictor import load_predictor

            predictor = load_predictor(args.predictor)
            context = cf.property_context(gen)
            assert context is not None
            missing = [n for n in context.names if n not in predictor.names]
            if missing:
                raise ValueError(f"the predictor does not predict {', '.join(missing)}")
        scaffold = read_scaffold(gen, args.scaffold)
        mols, rate = cf.sample_molecules(
            gen,
            args.num,
            seed=args.seed,
            batch_size=args.batch_size,
            progress=not args.no_progress,
            targets=targets,
            guidance=args.guidance,
            fixed=None if scaffold is None else [scaffold],
        )
    except (FileNotFoundError, ValueError, ImportError) as err:
        cf.eprint(f"error: {err}")
        return 2
    if args.out:
        out = Path(args.out)
    elif args.pretrained:
        out = Path("runs") / "pretrained" / args.pretrained / f"samples_{gen.sampler.steps}"
    else:
        out = Path(args.checkpoint).parent / f"samples_{gen.sampler.steps}"
    from symgen.molecules import io as mio

    mio.write_sdf(mols, out / "samples.sdf")  # written first: a failed evaluation keeps them
    mio.write_xyz(mols, out / "samples.xyz")
    status, reference = 0, None
    if not args.no_eval:
        try:
            if args.pretrained:
                reference = pretrained.pretrained_reference(args.pretrained)
            if reference is None:
                reference = cf.load_reference(cfg, progress=not args.no_progress)
        except (FileNotFoundError, ValueError, ImportError) as err:
            cf.eprint(
                f"error: the run's training data ({cfg.data}) cannot be loaded here, so the "
                f"samples in {out}/ were not evaluated: {err}"
            )
            reference, status = None, 2
    if reference is not None:
        report = cf.evaluate_molecules(
            mols,
            reference,
            strain_molecules=args.strain_molecules,
            xtb_molecules=args.xtb_molecules,
            posebusters_molecules=args.posebusters_molecules,
            protocols=args.protocol,
            progress=not args.no_progress,
        )
        cf.save_samples(mols, report, out)
        print(report.table())
        print("\nheadline protocols side by side:")
        print(report.side_by_side(reference.headline_protocols))
    record = cf.sampling_record(
        gen,
        state,
        num=args.num,
        molecules_per_second=rate,
        device=args.device,
        ema=state.get("weights") == "ema" or not args.no_ema,
        seed=args.seed,
        total_seconds=time.perf_counter() - t_start,
    )
    if predictor is not None:
        assert targets is not None
        record["property_mae"] = property_errors(gen, predictor, mols, targets)
    if scaffold is not None:
        record["scaffold"] = {"file": str(args.scaffold), **completion_scores(mols, scaffold)}
        share = record["scaffold"]["contains_scaffold"]
        print(f"\n{100 * share:.1f} % of the molecules are valid and contain the scaffold")
    if targets is not None:
        record["condition"] = args.condition
        record["guidance"] = args.guidance if args.guidance is not None else cf.guidance_of(gen)
    atomic_write_json(out / "sampling.json", record)
    print(
        f"{args.num} molecules in {args.num / rate:.1f} s: {rate:.1f} molecules/s "
        f"({gen.sampler.steps} steps, {args.device}, {gen.precision}, "
        f"step {state['step']} checkpoint); "
        f"outputs in {out}/"
    )
    return status


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    sys.exit(main())
