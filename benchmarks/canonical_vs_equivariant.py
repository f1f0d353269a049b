"""Controlled head-to-head on QM9: canonicalization vs augmentation vs an equivariant EGNN.

Every method trains the ``quick`` preset's recipe through ``examples/molecules/train.py`` with
the same data, coupling (minibatch OT), budget (``--budget-min`` of wall-clock training, the
learning rate annealed over it), precision (float32, eager, AdamW's default kernel: the
baselines are not tuned for bfloat16 or compilation) and one torch thread, two runs side by
side on a 2-core machine. The methods differ in one thing at a time:

- ``canonical``: canonical representatives (S_n × SE(3) canonicalizer), centred Gaussian prior;
- ``augment``: the same transformer on the molecules as given with a random S_n × SO(3)
  transform of every batch, centred Gaussian prior: ``canonical`` − ``augment`` is the effect of
  canonicalization alone;
- ``canonflow``: ``canonical`` with the aligned prior (the CanonFlow recipe), a separate row;
- ``egnn``: an EGNN (E(3)-equivariant, permutation-equivariant) with self-conditioning, centred
  prior;
- on request (``--methods``): ``canonflow-shortcut``, ``canonflow`` trained with the few-step
  shortcut objective (``benchmarks/few_step.py`` measures it at the main job's budget), and
  ``e3nn``.

Learning rates: one sweep, the same for every method (``--sweep-lrs`` at seed 0; the lowest
final validation loss wins; the shortcut row uses ``canonflow``'s). By default each sweep run
trains for the full budget, and the winning run is reused as the seed-0 run (copied): a shorter
sweep (``--sweep-min``) favours large learning rates, and at ``eeff5e8`` a 1.5-minute sweep chose
2e-3 for the EGNN, which then diverged over the 8-minute budget. Then ``--seeds`` full runs
per method, each scored on ``--samples`` molecules at every step count in ``--steps`` under
``midi``, ``edm``, ``symgen-geometry-w1`` and ``mmff94-strain``. A learning curve
(``--eval-samples`` molecules every ``--eval-every`` steps, outside the budget) gives the plot
of quality against training time.

Jobs run two at a time (``OMP_NUM_THREADS=1``), are skipped when already finished (rerun the
same command to resume after an interruption), and are refused when the output folder was
started at another commit, so that every row comes from one commit. Outputs in ``--out``:
``table.md``, ``results.json``, ``commands.txt`` (every command run), ``quality_vs_time.png``.

    python benchmarks/canonical_vs_equivariant.py --budget-min 8 --seeds 0 1 2 --samples 1000
    python benchmarks/canonical_vs_equivariant.py --budget-min 0.3 --sweep-min 0.2 \\
        --sweep-lrs 1e-3 --seeds 0 --samples 10 --steps 2 --out runs/h2h_smoke   # smoke
"""

import argparse
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from _common import (
    EX,
    ROOT,
    last_value,
    machine,
    mean_se,
    one_commit,
    read_scores,
    sample_command,
    sampled,
)

CENTRED = ["--prior", "centered"]
METHODS = {
    "canonical": ["--canonicalize", "true", "--augment", "false", *CENTRED],
    "augment": ["--canonicalize", "false", "--augment", "true", *CENTRED],
    "canonflow": ["--canonicalize", "true", "--augment", "false", "--prior", "aligned"],
    "canonflow-shortcut": [
        "--canonicalize",
        "true",
        "--augment",
        "false",
        "--prior",
        "aligned",
        "--shortcut",
        "0.25",
        "--shortcut-levels",
        "4",
    ],
    "egnn": ["--config", "egnn_baseline", "--self-condition", "true", *CENTRED],
    "e3nn": ["--config", "e3nn_baseline", *CENTRED],
}
LR_FROM = {"canonflow-shortcut": "canonflow"}  # variants that reuse another row's sweep
SHARED = [
    "--preset",
    "quick",
    "--coupling",
    "ot",
    "--precision",
    "float32",
    "--compile",
    "false",
    "--fused-optimizer",
    "false",
    "--schedule-clock",
    "time",
    "--max-steps",
    "1000000",
    "--final-samples",
    "0",
    "--threads",
    "1",
    "--progress",
    "false",
    "--tensorboard",
    "false",
]
PROTOCOLS = ["midi", "edm", "symgen-geometry-w1", "mmff94-strain"]
COLUMNS = [  # (metric, header)
    ("midi/molecule_stability", "mol st. (`midi`)"),
    ("midi/validity", "valid (`midi`)"),
    ("midi/valid_and_unique", "V&U (`midi`)"),
    ("midi/connectivity", "connected (`midi`)"),
    ("edm/atom_stability", "atom st. (`edm`)"),
    ("edm/molecule_stability", "mol st. (`edm`)"),
    ("edm/validity", "valid (`edm`)"),
    ("mmff94-strain/mmff_strain_median", "strain median (`mmff94-strain`)"),
    ("symgen-geometry-w1/bond_length_w1", "bond W1 (`symgen-geometry-w1`)"),
    ("mol_per_s", "mol/s"),
]
HEADLINE = ["midi/molecule_stability", "midi/validity", "edm/molecule_stability"]


@dataclass
class Job:
    """One command of the experiment: run when its dependencies are done, once."""

    name: str
    make_cmd: Callable[[], list[str]]
    done: Path
    clean: Path | None = None  # a folder removed before (re)starting
    after: list[str] = field(default_factory=list)


def train_command(method: str, lr: float, seed: int, minutes: float, run_dir: Path, **kw: int):
    return [
        sys.executable,
        str(EX / "train.py"),
        *SHARED,
        *METHODS[method],
        "--lr",
        repr(lr),
        "--seed",
        str(seed),
        "--time-budget-min",
        repr(minutes),
        "--val-every",
        str(kw["val_every"]),
        "--eval-every",
        str(kw["eval_every"]),
        "--eval-samples",
        str(kw["eval_samples"]),
        "--out-dir",
        str(run_dir),
    ]


def run_pool(jobs: list[Job], out: Path, workers: int) -> None:
    """Run ``jobs`` ``workers`` at a time in dependency order, skipping finished ones."""
    pending = [j for j in jobs if not j.done.exists()]
    finished = {j.name for j in jobs if j.done.exists()}
    running: list[tuple[Job, subprocess.Popen, object, float]] = []
    env = dict(os.environ, OMP_NUM_THREADS="1")
    total = len(pending)
    while pending or running:
        ready = [j for j in pending if all(a in finished for a in j.after)]
        while ready and len(running) < workers:
            job = ready.pop(0)
            pending.remove(job)
            if job.clean is not None and job.clean.exists():
                shutil.rmtree(job.clean)
            cmd = job.make_cmd()
            with (out / "commands.txt").open("a") as f:
                f.write(shlex.join(cmd) + "\n")
            log = (out / "logs" / f"{job.name}.log").open("w")
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
            running.append((job, proc, log, time.perf_counter()))
            done_so_far = total - len(pending) - len(running)
            print(f"[{done_so_far}/{total} done] start {job.name}", flush=True)
        if not running:
            names = [j.name for j in pending]
            raise SystemExit(f"jobs whose dependencies failed or are missing: {names}")
        time.sleep(2.0)
        for item in list(running):
            job, proc, log, t0 = item
            if proc.poll() is None:
                continue
            running.remove(item)
            log.close()  # type: ignore[attr-defined]
            if proc.returncode != 0:
                for _job, p, lg, _ in running:
                    p.terminate()
                    p.wait()
                    lg.close()  # type: ignore[attr-defined]
                raise SystemExit(
                    f"{job.name} failed ({proc.returncode}); see {out / 'logs' / job.name}.log"
                )
            job.done.write_text(f"{time.perf_counter() - t0:.1f} s\n")
            finished.add(job.name)
            print(f"  done {job.name} in {(time.perf_counter() - t0) / 60:.1f} min", flush=True)


def copy_command(src: Path, dst: Path) -> list[str]:
    """A command copying a finished run folder (the sweep's winner becomes the seed-0 run)."""
    code = "import shutil, sys; shutil.copytree(sys.argv[1], sys.argv[2])"
    return [sys.executable, "-c", code, str(src), str(dst)]


def chosen_lr(method: str, args: argparse.Namespace, out: Path) -> tuple[float, dict[str, float]]:
    """The sweep's learning rate for ``method``: lowest final validation loss at seed 0."""
    source = LR_FROM.get(method, method)
    losses = {}
    for lr in args.sweep_lrs:
        loss = last_value(out / "sweep" / f"{source}_lr{lr:g}" / "validation.csv", "loss")
        losses[f"{lr:g}"] = loss
    finite = {k: v for k, v in losses.items() if math.isfinite(v)}
    if not finite:
        raise SystemExit(f"{source}: no learning rate of the sweep gave a finite validation loss")
    best = min(finite, key=finite.__getitem__)
    return float(best), losses


def build_jobs(args: argparse.Namespace, out: Path) -> list[Job]:
    jobs: list[Job] = []
    kw = dict(val_every=args.val_every, eval_every=args.eval_every, eval_samples=args.eval_samples)
    swept = sorted({LR_FROM.get(m, m) for m in args.methods})
    full = args.sweep_min == args.budget_min  # the winning sweep run is the seed-0 run
    for m in swept:
        for lr in args.sweep_lrs:
            d = out / "sweep" / f"{m}_lr{lr:g}"
            jobs.append(
                Job(
                    f"sweep_{m}_lr{lr:g}",
                    lambda m=m, lr=lr, d=d: train_command(
                        m, lr, 0, args.sweep_min, d, **(kw if full else dict(kw, eval_every=0))
                    ),
                    out / "sweep" / f"{m}_lr{lr:g}.done",
                    clean=d,
                )
            )
    for seed in args.seeds:
        for m in args.methods:
            d = out / f"{m}_seed{seed}"
            src = LR_FROM.get(m, m)
            reuse = full and seed == 0 and src == m
            jobs.append(
                Job(
                    f"train_{m}_seed{seed}",
                    (
                        lambda m=m, d=d: copy_command(
                            out / "sweep" / f"{m}_lr{chosen_lr(m, args, out)[0]:g}", d
                        )
                    )
                    if reuse
                    else lambda m=m, seed=seed, d=d: train_command(
                        m, chosen_lr(m, args, out)[0], seed, args.budget_min, d, **kw
                    ),
                    out / f"{m}_seed{seed}.done",
                    clean=d,
                    after=[f"sweep_{src}_lr{lr:g}" for lr in args.sweep_lrs],
                )
            )
    for seed in args.seeds:
        for m in args.methods:
            d = out / f"{m}_seed{seed}"
            for steps in args.steps:
                s = d / f"samples_{steps}"
                jobs.append(
                    Job(
                        f"sample_{m}_seed{seed}_steps{steps}",
                        lambda d=d, s=s, steps=steps, seed=seed: sample_command(
                            d / "checkpoint.pt",
                            s,
                            num=args.samples,
                            steps=steps,
                            threads=1,
                            protocols=PROTOCOLS,
                            extra=["--seed", str(seed)],
                        ),
                        s / "done",
                        clean=s,
                        after=[f"train_{m}_seed{seed}"],
                    )
                )
    return jobs


def fmt(mu: float, se: float, key: str) -> str:
    if math.isnan(mu):
        return "n/a"
    if key == "mol_per_s" or "strain" in key or "w1" in key:
        return f"{mu:.3g} ± {se:.2g}" if math.isfinite(se) else f"{mu:.3g}"
    return f"{100 * mu:.1f} ± {100 * se:.1f}" if math.isfinite(se) else f"{100 * mu:.1f}"


def collect(args: argparse.Namespace, out: Path) -> dict:
    runs: dict[str, dict] = {}
    for m in args.methods:
        for seed in args.seeds:
            d = out / f"{m}_seed{seed}"
            row: dict = {
                "steps_trained": last_value(d / "log.csv", "step"),
                "train_seconds": last_value(d / "log.csv", "train_seconds"),
                "val_loss": last_value(d / "validation.csv", "loss"),
                "samples": {},
            }
            for steps in args.steps:
                s = d / f"samples_{steps}"
                if sampled(s):
                    row["samples"][str(steps)] = read_scores(s)
            runs[f"{m}_seed{seed}"] = row
    lrs = {m: chosen_lr(m, args, out) for m in args.methods}
    return {
        "runs": runs,
        "lr": {m: v[0] for m, v in lrs.items()},
        "sweep": {m: v[1] for m, v in lrs.items()},
    }


def table(args: argparse.Namespace, res: dict, rev: str, where: str) -> str:
    runs = res["runs"]
    lines = [
        f"QM9, `quick` recipe, {args.budget_min} min of training per run (two runs side by side, "
        f"one thread each, float32), seeds {args.seeds}, {args.samples} samples per run and step "
        f"count; mean ± standard error over seeds (proportions in %); commit {rev}; {where}",
        "",
        "| method | lr | train steps | sample steps | " + " | ".join(h for _, h in COLUMNS) + " |",
        "|---|---:|---:|---:|" + "---:|" * len(COLUMNS),
    ]
    for m in args.methods:
        trained = mean_se([runs[f"{m}_seed{s}"]["steps_trained"] for s in args.seeds])
        for steps in args.steps:
            cells = []
            for key, _ in COLUMNS:
                vals = [
                    runs[f"{m}_seed{s}"]["samples"].get(str(steps), {}).get(key, math.nan)
                    for s in args.seeds
                ]
                cells.append(fmt(*mean_se(vals), key))
            lines.append(
                f"| {m} | {res['lr'][m]:g} | {trained[0]:.0f} | {steps} | "
                + " | ".join(cells)
                + " |"
            )
    pairs = [("canonical", "augment"), ("canonflow", "canonical"), ("canonflow", "egnn")]
    pairs += [("canonflow-shortcut", "canonflow")]
    pairs = [(a, b) for a, b in pairs if a in args.methods and b in args.methods]
    if pairs:
        lines += [
            "",
            "Paired differences (same seed), mean ± standard error over seeds, in points; "
            "'within noise' when |mean| < 2 standard errors:",
            "",
            "| difference | sample steps | "
            + " | ".join(dict(COLUMNS)[k] for k in HEADLINE)
            + " |",
            "|---|---:|" + "---:|" * len(HEADLINE),
        ]
        for a, b in pairs:
            for steps in args.steps:
                cells = []
                for key in HEADLINE:
                    diffs = [
                        runs[f"{a}_seed{s}"]["samples"].get(str(steps), {}).get(key, math.nan)
                        - runs[f"{b}_seed{s}"]["samples"].get(str(steps), {}).get(key, math.nan)
                        for s in args.seeds
                    ]
                    mu, se = mean_se(diffs)
                    verdict = (
                        ""
                        if not math.isfinite(se)
                        else (" (within noise)" if abs(mu) < 2 * se else "")
                    )
                    cells.append(f"{100 * mu:+.1f} ± {100 * se:.1f}{verdict}")
                lines.append(f"| {a} − {b} | {steps} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(args: argparse.Namespace, out: Path) -> Path | None:
    """Quality against training time: each run's learning curve and its final score."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install 'symgen[plots]')")
        return None
    import csv

    final_steps = 50 if 50 in args.steps else max(args.steps)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, m in enumerate(args.methods):
        for j, seed in enumerate(args.seeds):
            d = out / f"{m}_seed{seed}"
            xs, ys = {0: [], 1: []}, {0: [], 1: []}
            curve = d / "evaluation.csv"
            if curve.is_file():
                with curve.open() as f:
                    for r in csv.DictReader(f):
                        for a, key in enumerate(
                            ("midi/molecule_stability", "edm/molecule_stability")
                        ):
                            xs[a].append(float(r["train_seconds"]) / 60)
                            ys[a].append(float(r[key]))
            s = d / f"samples_{final_steps}"
            if sampled(s):
                scores = read_scores(s)
                for a, key in enumerate(("midi/molecule_stability", "edm/molecule_stability")):
                    xs[a].append(last_value(d / "log.csv", "train_seconds") / 60)
                    ys[a].append(scores.get(key, math.nan))
            for a in (0, 1):
                axes[a].plot(
                    xs[a],
                    [100 * y for y in ys[a]],
                    "o-",
                    color=colours[i % 10],
                    alpha=0.8,
                    label=m if j == 0 else None,
                    markersize=3,
                )
    for a, title in enumerate(("molecule stability (`midi`)", "molecule stability (`edm`)")):
        axes[a].set_title(title)
        axes[a].set_xlabel("training time (min)")
        axes[a].set_ylabel(f"% of samples at {final_steps} steps")
        axes[a].grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path = out / "quality_vs_time.png"
    fig.savefig(path, dpi=120)
    return path


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--budget-min", type=float, default=8.0, help="training minutes per run")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    p.add_argument("--samples", type=int, default=1000, help="molecules per run and step count")
    p.add_argument(
        "--steps",
        type=int,
        nargs="+",
        default=[4, 10, 20, 50, 100],
        help="sampling step counts (default: 4 10 20 50 100)",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        default=["canonical", "augment", "canonflow", "egnn"],
        choices=sorted(METHODS),
    )
    p.add_argument(
        "--sweep-lrs",
        type=float,
        nargs="+",
        default=[2e-4, 5e-4, 1e-3, 2e-3],
        help="learning rates of the sweep, the same for every method",
    )
    p.add_argument(
        "--sweep-min",
        type=float,
        default=None,
        help="minutes per sweep run (default: --budget-min, and the winner is the seed-0 run)",
    )
    p.add_argument("--val-every", type=int, default=200, help="steps between validation losses")
    p.add_argument("--eval-every", type=int, default=500, help="steps between curve points")
    p.add_argument("--eval-samples", type=int, default=100, help="molecules per curve point")
    p.add_argument("--workers", type=int, default=2, help="jobs at a time (one thread each)")
    p.add_argument("--out", default="runs/head_to_head", help="output folder")
    p.add_argument(
        "--report-only", action="store_true", help="write the table from the finished jobs"
    )
    args = p.parse_args()
    if args.sweep_min is None:
        args.sweep_min = args.budget_min
    if args.budget_min <= 0 or args.sweep_min <= 0 or args.samples < 1:
        p.error("--budget-min, --sweep-min and --samples must be positive")
    out = Path(args.out)
    out = out if out.is_absolute() else ROOT / out
    (out / "logs").mkdir(parents=True, exist_ok=True)
    (out / "sweep").mkdir(exist_ok=True)
    rev, where = one_commit(out), machine()
    if not args.report_only:
        run_pool(build_jobs(args, out), out, args.workers)
    res = collect(args, out)
    text = table(args, res, rev, where)
    print("\n" + text)
    (out / "table.md").write_text(text + "\n")
    (out / "results.json").write_text(
        json.dumps({"commit": rev, "machine": where, "args": vars(args), **res}, indent=1)
    )
    path = plot(args, out)
    if path is not None:
        print(f"plot: {path}")
    print(f"commands: {out / 'commands.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
