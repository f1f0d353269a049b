"""LJ13 under S_13 × SE(3): a canonical generator against an equivariant baseline, equal CPU time.

What it does, in order:

1. draws Metropolis samples of the confined Lennard-Jones cluster (:mod:`lj`): a training set,
   a held-out reference set and a second independent set (the noise floor of every metric);
2. canonicalizes the training set once with :func:`symgen.canon.geometric_spectral_canonicalizer`
   and reports how much of it is flagged (near a tie), and how the icosahedral minimum fares;
3. trains, each for the same wall-clock budget on the same threads,

   * **canonical**: canonical slice + aligned Gaussian prior + minibatch OT coupling +
     ``CanonTransformer`` + flow matching (CanonFlow recipe), and
   * **equivariant**: no canonicalizer, centred Gaussian prior + aligned (Hungarian/Kabsch)
     coupling + EGNN + flow matching (equivariant flow matching), and
   * **canonical-shortcut**: the canonical recipe trained with the few-step shortcut objective
     (:class:`~symgen.generators.FlowMatching` ``shortcut=0.25``; the network takes the step size);

4. samples each (EMA weights) and scores energies and pair distances against the reference,
   with the second MCMC set and the prior itself as context rows, and the energy W1 again at
   the few step counts of ``--few-steps`` (1 and 4); prints one table and writes
   ``report.json`` and ``samples.npz`` (read by ``plots.py``).

Run ``python examples/lj13/run.py --help``; ``--quick`` is a CI-sized run of a few seconds.
"""

import argparse
import csv
import hashlib
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lj import LJParams, lj_energy, metropolis_samples, pair_distances, wasserstein1  # noqa: E402

from symgen.canon import Canonicalizer, geometric_spectral_canonicalizer  # noqa: E402
from symgen.couplings import AlignedCoupling, IndependentCoupling, MinibatchOTCoupling  # noqa: E402
from symgen.files import atomic_write, atomic_write_json  # noqa: E402
from symgen.generators import CanonicalGenerator, FlowMatching  # noqa: E402
from symgen.models import build_network  # noqa: E402
from symgen.priors import AlignedPrior, CenteredGaussianPrior  # noqa: E402
from symgen.state import GeometricGraph  # noqa: E402
from symgen.training import Trainer, TrainingConfig  # noqa: E402

METHODS = ("canonical", "equivariant", "canonical-shortcut")
#: Share of each batch trained with the shortcut self-consistency target (Frans et al. 2024).
SHORTCUT_SHARE = 0.25
#: Samples with E above this are counted as clashes (two particles far inside r_min).
CLASH_ENERGY = 50.0
#: Energies are clipped here before the energy W1 and mean, so one clash (E ~ 1e9) cannot hide
#: the rest of the distribution; the clash fraction is reported separately.
ENERGY_CLIP = 100.0


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one comparison run (written into ``report.json``)."""

    budget_seconds: float = 240.0
    samples: int = 2000
    train_samples: int = 16384
    sample_steps: int = 50
    few_steps: tuple[int, ...] = (1, 4)
    batch_size: int = 128
    lr: float = 1e-3
    warmup_steps: int = 100
    ema_decay: float = 0.995
    width: int = 64
    depth: int = 4
    mcmc_chains: int = 4096
    mcmc_burn_in: int = 5000
    mcmc_thin: int = 40
    methods: tuple[str, ...] = METHODS
    equivariant_coupling: str = "aligned"
    threads: int = 1
    seed: int = 0
    progress: bool = True


QUICK = dict(
    budget_seconds=4.0,
    samples=128,
    train_samples=512,
    sample_steps=8,
    few_steps=(1,),
    batch_size=64,
    width=32,
    depth=2,
    mcmc_chains=256,
    mcmc_burn_in=300,
    mcmc_thin=5,
)


# ------------------------------------------------------------------------------------- data
def as_graphs(pos: torch.Tensor) -> GeometricGraph:
    """A batch of identical particles: positions, one constant (zero) node channel, no padding."""
    b, n, _ = pos.shape
    return GeometricGraph(
        pos=pos.to(torch.float32),
        node=torch.zeros(b, n, 1),
        mask=torch.ones(b, n, dtype=torch.bool),
    )


def mcmc_data(cfg: RunConfig, params: LJParams, cache: Path | None) -> dict[str, torch.Tensor]:
    """Training, reference and noise-floor sets (float64), from disjoint sets of chains.

    The training set is several thinned samples per chain; the two evaluation sets take one
    sample from each of ``2 * samples`` fresh chains, so they are independent of each other and
    of the training set. Cached under ``cache`` keyed by every setting that changes them.
    """
    key = hashlib.sha1(
        json.dumps(
            [
                asdict(params),
                cfg.train_samples,
                cfg.samples,
                cfg.mcmc_chains,
                cfg.mcmc_burn_in,
                cfg.mcmc_thin,
                cfg.seed,
            ]
        ).encode()
    ).hexdigest()[:12]
    path = None if cache is None else cache / f"lj13_mcmc_{key}.pt"
    if path is not None and path.exists():
        return torch.load(path)
    g = torch.Generator().manual_seed(cfg.seed)
    train = metropolis_samples(
        cfg.train_samples,
        params,
        chains=min(cfg.mcmc_chains, cfg.train_samples),
        burn_in=cfg.mcmc_burn_in,
        thin=cfg.mcmc_thin,
        generator=g,
        progress=cfg.progress,
    )
    evals = metropolis_samples(
        2 * cfg.samples,
        params,
        chains=2 * cfg.samples,
        burn_in=cfg.mcmc_burn_in,
        thin=cfg.mcmc_thin,
        generator=g,
        progress=cfg.progress,
    )
    data = {"train": train, "reference": evals[: cfg.samples], "floor": evals[cfg.samples :]}
    if path is not None:
        atomic_write(path, lambda f: torch.save(data, f))
    return data


def icosahedral_minimum(params: LJParams, *, iterations: int = 500) -> torch.Tensor:
    """The Mackay icosahedron (centre + 12 vertices) relaxed to a local minimum of ``E``."""
    phi = (1 + 5**0.5) / 2
    v = []
    for a in (-1.0, 1.0):
        for b in (-phi, phi):
            v += [(0.0, a, b), (a, b, 0.0), (b, 0.0, a)]
    verts = torch.tensor(v, dtype=torch.float64)
    verts = verts / verts.norm(dim=-1, keepdim=True) * params.r_min
    pos = torch.cat([torch.zeros(1, 3, dtype=torch.float64), verts])[None].requires_grad_(True)
    opt = torch.optim.LBFGS([pos], max_iter=iterations, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        e = lj_energy(pos, params).sum()
        e.backward()
        return e

    opt.step(closure)
    out = pos.detach()
    return out - out.mean(1, keepdim=True)


def canonicalization_report(canon: Canonicalizer, pos: torch.Tensor) -> dict[str, Any]:
    """Flagged share and which decision (eigengap, sign, order) is closest to a tie."""
    out = canon.canonicalize(as_graphs(pos).to(dtype=torch.float64))
    d = out.details
    rep: dict[str, Any] = {"n": int(pos.shape[0]), "flagged": float(out.flagged.double().mean())}
    for name, thr in (
        ("eigengap", "eigengap_threshold"),
        ("sign_gap", "sign_threshold"),
        ("order_gap", "order_threshold"),
    ):
        if name in d:
            rep[f"{name}_below_threshold"] = float((d[name] < getattr(canon, thr)).double().mean())
            rep[f"{name}_median"] = float(d[name].median())
    return rep


def symmetric_minimum_report(canon: Canonicalizer, params: LJParams) -> dict[str, Any]:
    """Energy of the icosahedral minimum and flagged shares of jittered copies of it."""
    ico = icosahedral_minimum(params)
    g = torch.Generator().manual_seed(123)
    rows = {}
    for sigma in (0.0, 1e-3, 1e-2, 0.05, 0.1, 0.2):
        noisy = ico + sigma * torch.randn(256, 13, 3, generator=g, dtype=torch.float64)
        noisy = noisy - noisy.mean(1, keepdim=True)
        rows[str(sigma)] = canonicalization_report(canon, noisy)["flagged"]
    return {"energy": float(lj_energy(ico, params)), "flagged_by_jitter": rows}


# ------------------------------------------------------------------------------ generators
def build_generator(method: str, cfg: RunConfig, prior_std: float) -> CanonicalGenerator:
    """The canonical generator or the equivariant baseline, through the same pipeline."""
    n = LJParams().num_particles
    sizes = torch.zeros(n + 1)
    sizes[n] = 1.0
    # particles carry no features to generate: the zero node channel is input only (weight 0)
    shortcut = SHORTCUT_SHARE if method == "canonical-shortcut" else 0.0
    process = FlowMatching(weights={"node": 0.0}, shortcut=shortcut)
    base = CenteredGaussianPrior(std=prior_std, features=False)
    if method in ("canonical", "canonical-shortcut"):
        canon = geometric_spectral_canonicalizer()
        model = build_network(
            "canon_transformer",
            node_in=1,
            node_out=1,
            width=cfg.width,
            depth=cfg.depth,
            heads=4,
            pair_width=16,
            num_rbf=16,
            cutoff=4.0,
            step_size=shortcut > 0,
        )
        return CanonicalGenerator(
            canon,
            AlignedPrior(base, canon),
            MinibatchOTCoupling(),
            process,
            model,
            assume_canonical=True,
            sizes=sizes,
            node_dim=1,
        )
    if method == "equivariant":
        model = build_network(
            "egnn",
            node_in=1,
            node_out=1,
            width=cfg.width,
            depth=cfg.depth,
            num_rbf=16,
            cutoff=4.0,
        )
        coupling = (
            AlignedCoupling() if cfg.equivariant_coupling == "aligned" else IndependentCoupling()
        )
        return CanonicalGenerator(None, base, coupling, process, model, sizes=sizes, node_dim=1)
    raise ValueError(f"unknown method {method!r}; choose from {METHODS}")


@dataclass
class TrainResult:
    """What a time-budgeted training run did."""

    steps: int
    wall_seconds: float
    cpu_seconds: float
    final_loss: float
    load_before: float
    load_after: float
    curve: list[tuple[int, float, float]]  # (step, seconds, loss averaged over the log window)


def training_config(cfg: RunConfig) -> TrainingConfig:
    """The library loop's settings: AdamW, warm-up, cosine decay over the *time* budget.

    Annealing over the spent fraction of the budget (``schedule_clock="time"``, down to 5 % of
    the peak) lets both methods finish their schedule whatever their step rate.
    """
    return TrainingConfig(
        max_steps=10**9,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        warmup_steps=cfg.warmup_steps,
        final_lr_fraction=0.05,
        schedule_clock="time",
        time_budget_s=cfg.budget_seconds,
        ema_decay=cfg.ema_decay,
        seed=cfg.seed,
        log_every=25,
        ckpt_every=10**9,
        bucket_batches=1,
        progress=cfg.progress,
    )


def train(
    gen: CanonicalGenerator, data: GeometricGraph, cfg: RunConfig, out: Path
) -> tuple[Trainer, TrainResult]:
    """Train with :class:`symgen.training.Trainer` for the budget (logs in ``out``)."""
    trainer = Trainer(gen, data, training_config(cfg), out_dir=out)
    load_before = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    result = trainer.fit()
    with (out / "log.csv").open() as f:
        rows = list(csv.DictReader(f))
    curve = [(int(r["step"]), float(r["train_seconds"]), float(r["loss_window"])) for r in rows]
    tail = [c[2] for c in curve[-4:]]
    return trainer, TrainResult(
        steps=result.step,
        wall_seconds=time.perf_counter() - t0,
        cpu_seconds=time.process_time() - c0,
        final_loss=float(np.mean(tail)) if tail else float("nan"),
        load_before=load_before,
        load_after=os.getloadavg()[0],
        curve=curve,
    )


@torch.no_grad()
def sample(
    trainer: Trainer, cfg: RunConfig, label: str, steps: int | None = None
) -> tuple[torch.Tensor, float]:
    """``cfg.samples`` symmetrized samples with the EMA weights at ``steps`` Euler steps
    (default ``cfg.sample_steps``); positions (float64) and seconds."""
    steps = cfg.sample_steps if steps is None else steps
    g = torch.Generator().manual_seed(cfg.seed + 1000)
    out, t0 = [], time.perf_counter()
    chunk = 500
    with (
        trainer.averaged() as gen,
        tqdm(
            total=cfg.samples, desc=f"sample {label}", unit="cfg", disable=not cfg.progress
        ) as bar,
    ):
        while sum(len(o) for o in out) < cfg.samples:
            b = min(chunk, cfg.samples - sum(len(o) for o in out))
            x = gen.sample(b, steps=steps, generator=g)
            out.append(x.pos.to(torch.float64))
            bar.update(b)
    return torch.cat(out), time.perf_counter() - t0


# ------------------------------------------------------------------------------- metrics
def metrics(pos: torch.Tensor, reference: torch.Tensor, params: LJParams) -> dict[str, float]:
    """Energy and pair-distance statistics of ``pos`` against the reference configurations.

    * ``w1_energy``: W1 between the energy distributions, energies clipped at ``ENERGY_CLIP``;
    * ``w1_distance``: W1 between the distributions of all interparticle distances;
    * ``mean_energy``: mean of the clipped energies; ``median_energy``: unclipped median;
    * ``clash_free``: share of samples with ``E < CLASH_ENERGY``;
    * ``finite``: share of samples with finite coordinates (non-finite ones count as clashes).
    """
    finite = torch.isfinite(pos).all(-1).all(-1)
    e = torch.full((pos.shape[0],), math.inf, dtype=torch.float64)
    if bool(finite.any()):
        e[finite] = lj_energy(pos[finite].to(torch.float64), params)
    e = torch.nan_to_num(e, nan=math.inf)
    e_ref = lj_energy(reference.to(torch.float64), params)
    clip = e.clamp(max=ENERGY_CLIP)
    ok = pos[finite]
    return {
        "w1_energy": wasserstein1(clip, e_ref.clamp(max=ENERGY_CLIP)),
        "w1_distance": wasserstein1(pair_distances(ok), pair_distances(reference))
        if len(ok)
        else math.inf,
        "mean_energy": float(clip.mean()),
        "median_energy": float(e.median()),
        "clash_free": float((e < CLASH_ENERGY).double().mean()),
        "finite": float(finite.double().mean()),
    }


def format_table(rows: dict[str, dict[str, Any]], few_steps: tuple[int, ...] = ()) -> str:
    """The comparison as a Markdown table (also printed)."""
    few = [
        (f"w1_energy_steps{k}", f"W1 energy, {k} step{'s' * (k > 1)}", "{:.2f}") for k in few_steps
    ]
    cols = [
        ("steps", "train steps", "{:.0f}"),
        ("final_loss", "final loss", "{:.3f}"),
        ("w1_energy", "W1 energy", "{:.2f}"),
        *few,
        ("w1_distance", "W1 pair dist.", "{:.4f}"),
        ("mean_energy", "mean E", "{:.2f}"),
        ("median_energy", "median E", "{:.2f}"),
        ("clash_free", f"E < {CLASH_ENERGY:g}", "{:.1%}"),
        ("sample_seconds", "sampling s", "{:.1f}"),
    ]
    lines = ["| method | " + " | ".join(c[1] for c in cols) + " |", "|---|" + "---:|" * len(cols)]
    for name, r in rows.items():
        cells = [
            fmt.format(r[k]) if isinstance(r.get(k), (int, float)) else "–" for k, _, fmt in cols
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> tuple[RunConfig, Path, Path | None]:
    d = RunConfig()
    p = argparse.ArgumentParser(
        description="LJ13: canonical generator vs equivariant baseline at equal wall-clock time.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--budget-seconds",
        type=float,
        default=d.budget_seconds,
        help="wall-clock training time of each method",
    )
    p.add_argument(
        "--samples",
        type=int,
        default=d.samples,
        help="generated samples per method (and size of each MCMC evaluation set)",
    )
    p.add_argument(
        "--train-samples", type=int, default=d.train_samples, help="MCMC training configurations"
    )
    p.add_argument(
        "--sample-steps", type=int, default=d.sample_steps, help="Euler steps when sampling"
    )
    p.add_argument(
        "--few-steps",
        type=int,
        nargs="*",
        default=None,
        help=f"also report the energy W1 at these step counts (default {list(d.few_steps)}; "
        f"--quick: {list(QUICK['few_steps'])})",
    )
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--width", type=int, default=d.width, help="hidden width of both networks")
    p.add_argument("--depth", type=int, default=d.depth, help="layers of both networks")
    p.add_argument(
        "--methods",
        default=",".join(d.methods),
        help="comma-separated subset of " + ",".join(METHODS),
    )
    p.add_argument(
        "--equivariant-coupling", choices=("aligned", "independent"), default=d.equivariant_coupling
    )
    p.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--out", type=Path, default=Path("runs/lj13"), help="output folder")
    p.add_argument(
        "--mcmc-cache",
        type=Path,
        default=None,
        help="folder caching the MCMC sets (default: the output folder; 'none' disables)",
    )
    p.add_argument(
        "--quick", action="store_true", help="CI-sized run (seconds): tiny data, nets and budget"
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    a = p.parse_args(argv)
    base = replace(d, **QUICK) if a.quick else d
    explicit = {
        k: getattr(a, k)
        for k in (
            "budget_seconds",
            "samples",
            "train_samples",
            "sample_steps",
            "batch_size",
            "width",
            "depth",
        )
        if getattr(a, k) != getattr(d, k)
    }
    methods = tuple(m.strip() for m in a.methods.split(",") if m.strip())
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        p.error(f"--methods: unknown {bad}; choose from {METHODS}")
    if a.few_steps is not None:
        explicit["few_steps"] = tuple(a.few_steps)
    cfg = replace(
        base,
        **explicit,
        methods=methods,
        equivariant_coupling=a.equivariant_coupling,
        threads=a.threads,
        seed=a.seed,
        progress=not a.no_progress,
    )
    for name in (
        "samples",
        "train_samples",
        "sample_steps",
        "batch_size",
        "width",
        "depth",
        "threads",
    ):
        if getattr(cfg, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if any(k < 1 for k in cfg.few_steps):
        p.error("--few-steps must be >= 1")
    if cfg.budget_seconds <= 0:
        p.error("--budget-seconds must be positive")
    if cfg.batch_size > cfg.train_samples:
        p.error("--batch-size must not exceed --train-samples")
    cache = (
        a.out if a.mcmc_cache is None else (None if str(a.mcmc_cache) == "none" else a.mcmc_cache)
    )
    return cfg, a.out, cache


def machine_info(threads: int) -> dict[str, Any]:
    """The machine a run measured (written into the report)."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": threads,
        "torch": torch.__version__,
        "load_average_at_start": list(os.getloadavg()),
    }


def run_method(
    method: str,
    cfg: RunConfig,
    train_data: GeometricGraph,
    prior_std: float,
    out: Path,
    reference: torch.Tensor,
    params: LJParams,
) -> tuple[dict[str, Any], torch.Tensor, list]:
    """Train one method for the budget, sample it at ``sample_steps`` and at each of
    ``few_steps``; its table row (with the metrics), positions and loss curve."""
    gen = build_generator(method, cfg, prior_std)
    trainer, res = train(gen, train_data, cfg, out / method)
    pos, seconds = sample(trainer, cfg, method)
    few = {}
    for k in cfg.few_steps:
        few_pos, _ = sample(trainer, cfg, f"{method} at {k} steps", steps=k)
        few[f"w1_energy_steps{k}"] = metrics(few_pos, reference, params)["w1_energy"]
    row = {
        "steps": res.steps,
        "final_loss": res.final_loss,
        "train_wall_seconds": res.wall_seconds,
        "train_cpu_seconds": res.cpu_seconds,
        "load_before": res.load_before,
        "load_after": res.load_after,
        "sample_seconds": seconds,
        "parameters": sum(p.numel() for p in gen.model.parameters()),
        **metrics(pos, reference, params),
        **few,
    }
    return row, pos, res.curve


LABELS = {
    "canonical": "canonical (spectral canon + CanonTransformer)",
    "equivariant": "equivariant (EGNN, {coupling} coupling)",
    "canonical-shortcut": "canonical + shortcut objective",
}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the comparison; print the table; write ``report.json`` and ``samples.npz``."""
    cfg, out, cache = parse_args(argv)
    torch.set_num_threads(cfg.threads)
    params = LJParams()
    t_start = time.perf_counter()
    machine = machine_info(cfg.threads)
    data = mcmc_data(cfg, params, cache)
    mcmc_seconds = time.perf_counter() - t_start
    train_pos, reference = data["train"], data["reference"]
    prior_std = float(train_pos.std())  # per-coordinate std of the centred data

    canon = geometric_spectral_canonicalizer()
    t0 = time.perf_counter()
    canon_train = canon.canonicalize(as_graphs(train_pos)).representative
    canon_info = {
        "train": canonicalization_report(canon, train_pos),
        "reference": canonicalization_report(canon, reference),
        "icosahedron": symmetric_minimum_report(canon, params),
        "seconds_train_set": time.perf_counter() - t0,
    }
    g = torch.Generator().manual_seed(cfg.seed + 7)
    template = as_graphs(torch.zeros(cfg.samples, params.num_particles, 3))
    prior = CenteredGaussianPrior(std=prior_std, features=False)
    positions = {"floor": data["floor"], "prior": prior.sample(template, generator=g).pos.double()}
    rows = {
        "MCMC (2nd independent set)": metrics(positions["floor"], reference, params),
        "prior (Gaussian)": metrics(positions["prior"], reference, params),
    }
    curves: dict[str, list] = {}
    torch.manual_seed(cfg.seed)  # network initialisation only; all other draws use generators
    for method in cfg.methods:
        train_data = canon_train if method != "equivariant" else as_graphs(train_pos)
        row, positions[method], curves[method] = run_method(
            method, cfg, train_data, prior_std, out, reference, params
        )
        rows[LABELS[method].format(coupling=cfg.equivariant_coupling)] = row
    positions["reference"] = reference
    table = format_table(rows, cfg.few_steps)
    report = {
        "config": asdict(cfg),
        "lj": asdict(params),
        "machine": machine,
        "mcmc_seconds": mcmc_seconds,
        "prior_std": prior_std,
        "canonicalization": canon_info,
        "rows": rows,
        "curves": curves,
        "total_seconds": time.perf_counter() - t_start,
        "load_average_at_end": list(os.getloadavg()),
        "table": table,
    }
    atomic_write_json(out / "report.json", report)
    arrays = {k: v.numpy() for k, v in positions.items()}
    atomic_write(out / "samples.npz", lambda f: np.savez(f, **arrays))
    print(table)
    print(
        f"\nflagged by the canonicalizer: {canon_info['train']['flagged']:.1%} of training "
        f"samples; icosahedral minimum E = {canon_info['icosahedron']['energy']:.2f}, "
        f"flagged share by jitter {canon_info['icosahedron']['flagged_by_jitter']}"
    )
    print(
        f"machine: {machine['processor']}, {machine['cpu_count']} cores, "
        f"{cfg.threads} torch threads, load {machine['load_average_at_start'][0]:.1f} -> "
        f"{report['load_average_at_end'][0]:.1f}; "
        f"total {report['total_seconds']:.0f} s; report in {out / 'report.json'}"
    )
    return report


if __name__ == "__main__":
    main()
