"""Package a trained CanonFlow checkpoint as a shipped pretrained model, with its model card.

Writes into the registry folder (default: ``symgen/pretrained/models/``):

1. ``<name>.pt``: the sampling checkpoint (EMA weights only, ``--dtype``), with the run record;
2. the compact evaluation reference of the run's data (shared by models of the same data): a
   fixed random subset of the training molecules (``--reference-molecules``, seed 0) and the
   training SMILES for novelty, when the data have them;
3. ``<name>.md``: the model card: data and split, recipe and config, training steps and
   wall-clock, machine and commit of the training run, file size and SHA-256, and the scores of
   ``--samples`` molecules drawn *from the shipped file* at its default step count, under
   named protocols;
4. the registry entry (``index.json``) with the SHA-256 of every file.

    python examples/molecules/package_pretrained.py --checkpoint runs/quick/checkpoint.pt \\
        --name qm9-canonflow-quick --dtype float16 --samples 1000

The run's training data must be loadable here (for the reference); sampling later needs
nothing but the shipped files (``sample.py --pretrained NAME``).
"""

import argparse
import dataclasses
import gzip
import hashlib
import json
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from symgen import pretrained
from symgen.molecules import canonflow as cf
from symgen.provenance import git_commit, machine_name

DTYPES = {"float16": torch.float16, "float32": torch.float32}
CARD_METRICS = [  # (metric, label), in the card's order; others follow in the full table
    ("midi/molecule_stability", "molecule stability"),
    ("midi/atom_stability", "atom stability"),
    ("midi/validity", "validity"),
    ("midi/valid_and_unique", "valid and unique"),
    ("midi/connectivity", "connectivity"),
    ("midi/novelty", "novelty"),
    ("edm/molecule_stability", "molecule stability"),
    ("edm/atom_stability", "atom stability"),
    ("edm/validity", "validity"),
    ("geom-revisited/molecule_stability", "molecule stability"),
    ("geom-revisited/atom_stability", "atom stability"),
    ("geom-revisited/validity_and_connectivity", "validity and connectivity"),
    ("mmff94-strain/mmff_strain_median", "MMFF94 strain, median (kcal/mol)"),
    ("symgen-geometry-w1/bond_length_w1", "bond-length W1 (Å)"),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint.pt written by train.py")
    p.add_argument("--name", required=True, help="registry name, e.g. qm9-canonflow-quick")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float16", help="stored weights")
    p.add_argument("--samples", type=int, default=1000, help="molecules scored for the card")
    p.add_argument("--steps", type=int, default=None, help="default step count (run's if unset)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed of the card's scores")
    p.add_argument("--reference-molecules", type=int, default=10000, help="reference subset")
    p.add_argument("--index", default=str(pretrained.INDEX), help="registry file to update")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument(
        "--trained-commit",
        default=None,
        help="commit the run trained at (default: the one its checkpoint records)",
    )
    p.add_argument(
        "--trained-machine",
        default=None,
        help="machine the run trained on (default: the one its checkpoint records)",
    )
    p.add_argument("--training-command", default=None, help="the command that trained the run")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    args = p.parse_args(argv)
    if args.samples < 1 or args.reference_molecules < 1 or (args.steps or 1) < 1:
        p.error("--samples, --reference-molecules and --steps must be positive")
    if not args.name.replace("-", "").replace("_", "").isalnum():
        p.error(f"--name must be letters, digits, '-' and '_', got {args.name!r}")
    return args


def write_reference(cfg: cf.CanonFlowConfig, folder: Path, count: int) -> dict[str, str | None]:
    """The compact reference files of the run's data (written once per data set)."""
    source = cf.load_data(cfg, progress=False)
    key = json.dumps(source.key, sort_keys=True, default=str).encode()
    stem = f"{Path(source.name).stem}-{hashlib.sha256(key).hexdigest()[:8]}"
    out: dict[str, str | None] = {"reference": f"{stem}-reference.npz", "reference_smiles": None}
    path = folder / str(out["reference"])
    if not path.is_file():
        rng = np.random.default_rng(0)
        n = len(source.train)
        idx = np.sort(rng.choice(n, size=min(count, n), replace=False))
        subset = source.train.subset(idx)
        subset.metadata = {
            "data": cfg.data,
            "subset_of": n,
            "seed": 0,
            "headline_protocols": list(source.headline_protocols),
        }
        subset.save(path)
    if source.reference_smiles is not None:
        out["reference_smiles"] = f"{stem}-train-smiles.txt.gz"
        spath = folder / out["reference_smiles"]
        if not spath.is_file():
            with gzip.open(spath, "wt", compresslevel=9) as f:
                f.write("\n".join(source.reference_smiles) + "\n")
    return out


def card_text(
    args: argparse.Namespace,
    model: pretrained.PretrainedModel,
    state: dict,
    report,
    rate: float,
    steps: int,
    sampler: dict,
    size_mb: float,
) -> str:
    run = state.get("run", {})
    config = run.get("config", {})
    prov = run.get("provenance", {})
    commit = args.trained_commit or prov.get("commit") or "not recorded"
    machine = args.trained_machine or prov.get("machine") or "not recorded"
    minutes = float(state.get("train_seconds", math.nan)) / 60
    threads = torch.get_num_threads()
    rows = []
    for key, label in CARD_METRICS:
        if key in report.metrics:
            m = report.metrics[key]
            v = "n/a" if not math.isfinite(m.value) else f"{m.value:.4g}"
            rows.append(f"| `{m.protocol}` v{m.version} | {label} | {v} | {m.count} |")
    lines = [
        f"# {args.name}",
        "",
        model.summary,
        "",
        "## Data",
        "",
        f"- data: `{config.get('data', 'qm9')}`, training split of the run "
        f"(`train_limit` {config.get('train_limit', 0) or 'none'}, `split_seed` "
        f"{config.get('split_seed', 'n/a')}); feature layout {run.get('layout')}",
        "",
        "## Training",
        "",
        f"- recipe: CanonFlow (`symgen.molecules.canonflow`), method: canonicalize="
        f"{config.get('canonicalize')}, prior={config.get('prior')}, coupling="
        f"{config.get('coupling')}, process={config.get('process')}, categorical="
        f"{config.get('categorical')}, self-conditioning={config.get('self_condition')}, "
        f"shortcut={config.get('shortcut', 0.0)}",
        f"- network: `{config.get('network')}`, width {config.get('width')}, depth "
        f"{config.get('depth')}, heads {config.get('heads')}",
        f"- {state.get('step')} optimizer steps in {minutes:.1f} minutes of training, "
        f"precision {state.get('precision')}, batch {config.get('batch_size')}, "
        f"learning rate {config.get('lr')}",
        f"- trained at commit `{commit}` on {machine}",
    ]
    if args.training_command:
        lines.append(f"- command: `{args.training_command}`")
    lines += [
        "",
        "## File",
        "",
        f"- `{model.file}`: {size_mb:.1f} MB, EMA weights stored as {args.dtype}, "
        f"SHA-256 `{model.sha256}`",
        f"- default sampler: {json.dumps(sampler)}",
        "",
        f"## Scores of the shipped file ({args.samples} molecules, {steps} steps, seed "
        f"{args.seed})",
        "",
        f"Sampled from the file above at its default settings with {threads} CPU "
        f"thread{'' if threads == 1 else 's'} on {machine_name()} ({rate:.1f} molecules/s), "
        "scored against the shipped reference (a fixed subset of the training molecules; the "
        f"training SMILES for novelty), at commit `{git_commit() or 'unknown'}`.",
        "",
        "| protocol | metric | value | n |",
        "|---|---|---:|---:|",
        *rows,
        "",
        "Reproduce (the same molecules with the sampling code of the commit above; another "
        "commit may draw other molecules, with the same scores within sampling error):",
        "",
        "```bash",
        f"python examples/molecules/sample.py --pretrained {args.name} --num {args.samples} "
        f"--seed {args.seed}" + (f" --steps {args.steps}" if args.steps else ""),
        "```",
        "",
        "Packaged with:",
        "",
        "```bash",
        "python examples/molecules/package_pretrained.py " + shlex.join(sys.argv[1:]),
        "```",
        "",
        "<details><summary>Full configuration</summary>",
        "",
        "```json",
        json.dumps(config, indent=1, sort_keys=True),
        "```",
        "",
        "</details>",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    index = Path(args.index)
    folder = index.parent
    folder.mkdir(parents=True, exist_ok=True)
    try:
        _, cfg, state = cf.load_generator(args.checkpoint)
        refs = write_reference(cfg, folder, args.reference_molecules)
    except (FileNotFoundError, ValueError, ImportError) as err:
        cf.eprint(f"error: {err}")
        return 2
    file = f"{args.name}.pt"
    cf.export_from_checkpoint(args.checkpoint, folder / file, dtype=DTYPES[args.dtype])

    def digest(name: str | None) -> str | None:
        return None if name is None else pretrained.sha256_file(folder / name)

    entry = pretrained.PretrainedModel(
        name=args.name,
        file=file,
        sha256=pretrained.sha256_file(folder / file),
        card=f"{args.name}.md",
        summary="(being packaged)",
        reference=refs["reference"],
        reference_sha256=digest(refs["reference"]),
        reference_smiles=refs["reference_smiles"],
        reference_smiles_sha256=digest(refs["reference_smiles"]),
    )
    # the registry changes only at the end: meanwhile a private one-entry index lets the
    # scores be drawn from the file exactly as it will ship (its checksum checked)
    staging = folder / f".{args.name}.staging.json"
    pretrained.write_index({args.name: entry}, staging)
    try:
        gen = pretrained.load_pretrained(args.name, index=staging)
        reference = pretrained.pretrained_reference(args.name, index=staging)
    finally:
        staging.unlink()
    if args.steps:
        gen.sampler = gen.sampler.replace(steps=args.steps)
    steps = gen.sampler.steps
    assert reference is not None
    t0 = time.perf_counter()
    mols, rate = cf.sample_molecules(
        gen, args.samples, seed=args.seed, progress=not args.no_progress
    )
    report = cf.evaluate_molecules(mols, reference, progress=not args.no_progress)
    print(report.table())
    first, *others = [
        p
        for p in dict.fromkeys(["midi", *reference.headline_protocols])
        if f"{p}/molecule_stability" in report.metrics
    ]
    summary = (
        f"CanonFlow on `{cfg.data}`, {state.get('step')} steps "
        f"({float(state.get('train_seconds', math.nan)) / 60:.0f} min); `{first}` molecule "
        f"stability {100 * report.get(f'{first}/molecule_stability'):.1f} % at {steps} steps"
    )
    for p in others:
        summary += f", `{p}` {100 * report.get(f'{p}/molecule_stability'):.1f} %"
    scores = {k: float(report.get(k)) for k, _ in CARD_METRICS if k in report.metrics}
    entry = dataclasses.replace(
        entry,
        summary=summary,
        scores={k: v for k, v in scores.items() if math.isfinite(v)},
        score_samples=args.samples,
        score_steps=steps,
    )
    sampler = dataclasses.asdict(gen.sampler)
    size_mb = (folder / file).stat().st_size / 1e6
    text = card_text(args, entry, state, report, rate, steps, sampler, size_mb)
    (folder / entry.card).write_text(text)
    models = pretrained.read_index(index)
    models[args.name] = entry
    pretrained.write_index(models, index)
    print(
        f"\npackaged {args.name}: {folder / file} ({size_mb:.1f} MB), card {folder / entry.card}, "
        f"registry {index}; scored in {time.perf_counter() - t0:.0f} s"
    )
    return 0


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    sys.exit(main())
