"""The GPU measurement, end to end: train for a fixed time, sample, write the results file.

Prepared so that a lent GPU is used at once, within one command of a few minutes. Two steps:

``device`` runs on the GPU machine (needs torch and numpy, no RDKit), inside a deadline:

1. ``smoke``: a tiny QM9 run on the device (20 steps, 5-step sampling, 5 resumed steps,
   sampling checkpoint written and reloaded);
   the script stops here if it fails, so a broken device path costs a minute, not the lease;
2. ``throughput``: the ``full`` preset on QM9 and the ``geom`` preset on drug-sized molecules
   (``--drugs``: a symgen ``.npz`` dataset, e.g. a ``moses3d`` cache file), ``--steps`` steps
   each with the library's Trainer; molecules per second after the first steps, peak memory;
3. ``train``: the CanonFlow recipe on QM9 at ``--width/--depth/--heads``, batch
   ``--batch-size``, learning rate annealed over the time left before the deadline (less a
   reserve for sampling); a sampling checkpoint (EMA weights, float32) is written in parts of
   at most 15 MB (the GPU machine returns files of at most 16 MB);
4. ``sample``: 1,000 molecules at each of ``--sample-steps`` solver steps, saved as arrays
   (``samples.npz``) with the sampling rate.

``results.json`` is rewritten after every phase, so a run cut short keeps what it measured.

``evaluate`` runs where RDKit is installed: it scores ``samples.npz`` under the named
protocols against QM9's training split, reassembles the checkpoint and checks that it loads
and samples on the CPU, and prints a table with the machine each number comes from.

``pack`` writes what the GPU machine needs and cannot build (it has no ``qm9pack``, RDKit or
``molsets``): the QM9 cache, compressed (copy it to ``~/.cache/symgen/qm9/`` there), and the
first ``--drugs-molecules`` molecules of a cached ``moses3d`` set. ``throughput`` repeats the
throughput phase for several precisions on one machine (ratios in the same run); ``profile``
times the ``full`` preset's training step with cProfile (where the time goes).

    python benchmarks/gpu_run.py pack --out .gpu --drugs-molecules 5000 --moses-molecules 50000
    python benchmarks/gpu_run.py device --out $OUT --drugs .gpu/moses3d_5000.npz
    python benchmarks/gpu_run.py throughput --out $OUT --drugs .gpu/moses3d_5000.npz
    python benchmarks/gpu_run.py profile
    python benchmarks/gpu_run.py evaluate --results runs/gpu
    python benchmarks/gpu_run.py table --results runs/gpu
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

PART_BYTES = 15 * 1024 * 1024
T0 = time.perf_counter()


def log(*args: object) -> None:
    print(f"[{time.perf_counter() - T0:6.1f} s]", *args, file=sys.stderr, flush=True)


class Results:
    """``results.json``, rewritten atomically after every phase."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict = {"phases": {}, "errors": {}}

    def set(self, phase: str, value: object) -> None:
        self.data["phases"][phase] = value
        self.write()

    def error(self, phase: str, err: BaseException) -> None:
        self.data["errors"][phase] = "".join(traceback.format_exception(err))[-4000:]
        log(f"{phase} failed: {err!r}")
        self.write()

    def write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str))
        os.replace(tmp, self.path)


def config(preset: str, **overrides: object):  # noqa: ANN201 - a CanonFlowConfig
    from symgen.molecules import canonflow as cf

    values = cf.config_from_file(preset)
    values.update(overrides)
    cfg = cf.CanonFlowConfig(**values)
    cf.validate_config(cfg)
    return cfg


def common(device: str, out_dir: Path, **overrides: object) -> dict:
    """Settings every device phase shares: no CPU-only extras, no evaluation on the device."""
    base = dict(
        device=device,
        precision="bfloat16",
        compile=False,
        threads=0,
        out_dir=str(out_dir),
        tensorboard=False,
        progress=False,
        eval_every=0,
        final_samples=0,
        val_every=0,
    )
    base.update(overrides)
    return base


def peak_memory_gb() -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 1e9 if torch.cuda.is_available() else float("nan")


def reset_peak() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def read_rates(log_csv: Path, skip_steps: int) -> dict:
    import csv

    with open(log_csv) as handle:
        rows = [r for r in csv.DictReader(handle) if int(r["step"]) > skip_steps]
    rates = [float(r["graphs_per_s"]) for r in rows]
    return {"graphs_per_s_rows": rates, "graphs_per_s": sum(rates) / len(rates) if rates else None}


def phase_smoke(device: str, work: Path) -> dict:
    from symgen.molecules import canonflow as cf

    cfg = config(
        "quick",
        **common(
            device,
            work / "smoke",
            width=64,
            depth=2,
            heads=4,
            batch_size=32,
            max_steps=20,
            schedule_clock="steps",
            time_budget_min=0.0,
            warmup_steps=5,
            train_limit=2000,
            val_limit=64,
            val_every=10,
            ckpt_every=10,
            log_every=5,
        ),
    )
    gen, trainer, result = cf.train(cfg)
    with trainer.averaged():
        mols, rate = cf.sample_molecules(gen, 16, seed=1, progress=False, steps=5)
    cfg.max_steps = 25  # resume from the step-20 checkpoint
    gen, trainer, result = cf.train(cfg, resume=True)
    cf.export_sampling_checkpoint(trainer, work / "smoke" / "sampling.pt")
    again, _, _ = cf.load_generator(work / "smoke" / "sampling.pt", device=device)
    more, _ = cf.sample_molecules(again, 8, seed=2, progress=False, steps=3)
    return {"steps": result.step, "loss": result.final_loss, "molecules": len(mols) + len(more)}


def phase_throughput(device: str, work: Path, name: str, preset: str, steps: int, **extra) -> dict:
    from symgen.molecules import canonflow as cf

    out = work / f"throughput_{name}"
    cfg = config(
        preset,
        **common(
            device,
            out,
            max_steps=steps,
            schedule_clock="steps",
            time_budget_min=0.0,
            warmup_steps=min(10, steps),
            ckpt_every=10**9,
            log_every=5,
            **extra,
        ),
    )
    reset_peak()
    t0 = time.perf_counter()
    gen, trainer, result = cf.train(cfg)
    seconds = time.perf_counter() - t0
    params = sum(p.numel() for p in gen.parameters() if p.requires_grad)
    rates = read_rates(out / "log.csv", skip_steps=min(10, steps // 2))
    mean_atoms = float(trainer.data.num_nodes.double().mean())
    return {
        "preset": preset,
        "data": cfg.data,
        "batch_size": cfg.batch_size,
        "width": cfg.width,
        "depth": cfg.depth,
        "parameters": params,
        "steps": result.step,
        "mean_atoms": mean_atoms,
        "molecules_per_s": rates["graphs_per_s"],
        "steps_per_s": None
        if not rates["graphs_per_s"]
        else rates["graphs_per_s"] / cfg.batch_size,
        "peak_memory_gb": peak_memory_gb(),
        "wall_s_incl_data": seconds,
    }


def phase_train(device: str, work: Path, args: argparse.Namespace, minutes: float) -> tuple:
    from symgen.molecules import canonflow as cf

    out = work / "qm9"
    cfg = config(
        "full",
        **common(
            device,
            out,
            width=args.width,
            depth=args.depth,
            heads=args.heads,
            batch_size=args.batch_size,
            lr=args.lr,
            warmup_steps=args.warmup,
            ema_decay=args.ema_decay,
            schedule_clock="time",
            time_budget_min=minutes,
            max_steps=10**7,
            log_every=50,
            val_every=1000,
            ckpt_every=10**9,
            sample_steps=50,
        ),
    )
    reset_peak()
    gen, trainer, result = cf.train(cfg)
    info = {
        "config": {
            k: getattr(cfg, k)
            for k in (
                "width",
                "depth",
                "heads",
                "batch_size",
                "lr",
                "warmup_steps",
                "ema_decay",
                "time_budget_min",
            )
        },
        "steps": result.step,
        "train_seconds": result.train_seconds,
        "final_loss": result.final_loss,
        "parameters": sum(p.numel() for p in gen.parameters() if p.requires_grad),
        "peak_memory_gb": peak_memory_gb(),
        "molecules_per_s": read_rates(out / "log.csv", skip_steps=50)["graphs_per_s"],
    }
    val = out / "validation.csv"
    if val.is_file():
        info["validation"] = val.read_text()
    return gen, trainer, info


def split_file(path: Path, out: Path, stem: str) -> list[str]:
    data = path.read_bytes()
    names = []
    for i in range(0, len(data), PART_BYTES):
        name = f"{stem}.part{i // PART_BYTES}"
        (out / name).write_bytes(data[i : i + PART_BYTES])
        names.append(name)
    return names


def device_main(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    res = Results(out / "results.json")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not args.allow_cpu:
        log("no CUDA device; pass --allow-cpu to rehearse on the CPU")
        return 2
    env = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": torch.cuda.get_device_name() if device == "cuda" else platform.processor(),
        "cpu_count": os.cpu_count(),
        "commit": os.environ.get("SYMGEN_COMMIT", ""),
        "deadline_s": args.deadline_s,
    }
    res.set("environment", env)
    log(env)
    work = Path(tempfile.mkdtemp(prefix="gpu_run_"))

    def left() -> float:
        return args.deadline_s - (time.perf_counter() - T0)

    try:
        res.set("smoke", phase_smoke(device, work))
    except Exception as err:  # noqa: BLE001 - report and stop: nothing later can work
        res.error("smoke", err)
        return 1
    log("smoke passed")
    measures = [("full_qm9", "full", {})]
    if args.drugs:
        measures.append(("geom_drugs", "geom", {"data": args.drugs}))
    for name, preset, extra in measures:
        if left() < args.reserve_s + 120:
            break
        try:
            res.set(
                f"throughput_{name}",
                phase_throughput(device, work, name, preset, args.steps, **extra),
            )
            log(name, res.data["phases"][f"throughput_{name}"])
        except Exception as err:  # noqa: BLE001 - a failed measurement must not stop the run
            res.error(f"throughput_{name}", err)
    minutes = (left() - args.reserve_s) / 60
    if minutes < 0.5:
        log("no time left to train")
        return 0
    try:
        gen, trainer, info = phase_train(device, work, args, minutes)
        ckpt = work / "qm9_sampling.pt"
        from symgen.molecules import canonflow as cf

        cf.export_sampling_checkpoint(trainer, ckpt)
        info["checkpoint_parts"] = split_file(ckpt, out, "qm9_sampling.pt")
        info["checkpoint_bytes"] = ckpt.stat().st_size
        res.set("train", info)
        log("trained", {k: v for k, v in info.items() if k != "validation"})
    except Exception as err:  # noqa: BLE001
        res.error("train", err)
        return 1
    from symgen.molecules import canonflow as cf
    from symgen.molecules.dataset import MoleculeDataset

    arrays, rates = {}, {}
    with trainer.averaged():
        for steps in args.sample_steps:
            if left() < 10:
                break
            try:
                mols, rate = cf.sample_molecules(
                    gen,
                    args.num_samples,
                    seed=steps,
                    batch_size=args.sample_batch,
                    progress=False,
                    steps=steps,
                )
                for k, v in MoleculeDataset.from_molecules(mols).to_arrays().items():
                    arrays[f"{steps}/{k}"] = v
                rates[steps] = rate
                np.savez(out / "samples.npz", **arrays)
                res.set(
                    "sample",
                    {
                        "molecules_per_s": rates,
                        "num": args.num_samples,
                        "batch_size": args.sample_batch,
                    },
                )
                log(f"sampled {args.num_samples} at {steps} steps: {rate:.1f} molecules/s")
            except Exception as err:  # noqa: BLE001
                res.error(f"sample_{steps}", err)
    res.data["seconds"] = time.perf_counter() - T0
    res.write()
    return 0


def pack_main(args: argparse.Namespace) -> int:
    import numpy as np

    from symgen.molecules.dataset import MoleculeDataset
    from symgen.molecules.moses3d import build_moses3d
    from symgen.molecules.qm9 import load_qm9, qm9_cache_path

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    load_qm9(progress=True)  # builds the cache if missing
    np.savez_compressed(out / "qm9_v1.npz", **dict(np.load(qm9_cache_path())))
    drugs = build_moses3d(args.moses_molecules, progress=True)
    part = drugs.subset(np.arange(min(args.drugs_molecules, len(drugs))))
    plain = out / "drugs.tmp.npz"
    part.save(plain)
    np.savez_compressed(out / f"moses3d_{len(part)}.npz", **dict(np.load(plain)))
    plain.unlink()
    MoleculeDataset.load(out / f"moses3d_{len(part)}.npz")  # readable as a dataset file
    for f in sorted(out.iterdir()):
        print(f"{f}: {f.stat().st_size / 1e6:.1f} MB")
    return 0


def throughput_main(args: argparse.Namespace) -> int:
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    work = Path(tempfile.mkdtemp(prefix="gpu_run_"))
    results = {}
    for precision in args.precisions:
        runs = [("full_qm9", "full", {})]
        if args.drugs:
            runs.append(("geom_drugs", "geom", {"data": args.drugs}))
        for name, preset, extra in runs:
            row = phase_throughput(device, work / precision, name, preset, args.steps,
                                   precision=precision, **extra)  # fmt: skip
            results[f"{name}/{precision}"] = row
            print(f"{name} {precision}: {row['molecules_per_s']:.0f} molecules/s, peak "
                  f"{row['peak_memory_gb']:.1f} GB", flush=True)  # fmt: skip
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "precision.json").write_text(json.dumps(results, indent=1))
    return 0


def profile_main(args: argparse.Namespace) -> int:
    import cProfile
    import pstats

    import torch

    from symgen.data import SizeBucketBatcher
    from symgen.molecules import canonflow as cf
    from symgen.training import step_generator

    device = "cuda" if torch.cuda.is_available() else "cpu"
    values = {**cf.config_from_file("full"), "device": device, "progress": False}
    cfg = cf.CanonFlowConfig(**values)
    data = cf.prepare_data(cfg, progress=False)
    gen = cf.build_generator(cfg, data).to(device)
    gen.precision = args.precision
    opt = torch.optim.AdamW(gen.parameters(), lr=1e-4)
    batcher = SizeBucketBatcher(data.train.num_nodes.numpy(), cfg.batch_size, drop_last=True)
    order = batcher.epoch(torch.Generator().manual_seed(0))

    def step(i: int) -> None:
        batch = data.train.batch(torch.from_numpy(order[i])).to(device)
        out = gen.loss(batch, generator=step_generator(0, i, device))
        opt.zero_grad()
        out.total.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()

    for i in range(5):  # warm-up
        step(i)
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    for i in range(5, 5 + args.steps):
        step(i)
    prof.disable()
    print(f"{(time.perf_counter() - t0) / args.steps:.4f} s per step ({device}, {args.precision})")
    pstats.Stats(prof).sort_stats("cumulative").print_stats(args.rows)
    return 0


def evaluate_main(args: argparse.Namespace) -> int:
    import numpy as np

    from symgen.molecules import canonflow as cf
    from symgen.molecules.dataset import MoleculeDataset

    folder = Path(args.results)
    results = json.loads((folder / "results.json").read_text())
    phases = results["phases"]
    env = phases["environment"]
    print(f"device: {env['device']} (torch {env['torch']}), commit {env.get('commit') or '?'}")
    for name in ("throughput_full_qm9", "throughput_geom_drugs"):
        if name in phases:
            t = phases[name]
            print(
                f"{name}: {t['parameters'] / 1e6:.1f} M parameters, batch {t['batch_size']}, "
                f"mean {t['mean_atoms']:.1f} atoms: {t['molecules_per_s']:.0f} molecules/s "
                f"({t['steps_per_s']:.2f} steps/s), peak {t['peak_memory_gb']:.1f} GB"
            )
    for phase, text in results.get("errors", {}).items():
        print(f"{phase} FAILED on the device:\n{text}")
    if "train" not in phases:
        return 1
    train = phases["train"]
    print(
        f"train: {train['parameters'] / 1e6:.1f} M parameters, {train['steps']} steps in "
        f"{train['train_seconds'] / 60:.1f} min ({train['molecules_per_s']:.0f} molecules/s), "
        f"final loss {train['final_loss']:.3f}, peak {train['peak_memory_gb']:.1f} GB"
    )
    ckpt = folder / "qm9_sampling.pt"
    if not ckpt.is_file():
        ckpt = Path(tempfile.mkdtemp()) / "qm9_sampling.pt"
        ckpt.write_bytes(b"".join((folder / p).read_bytes() for p in train["checkpoint_parts"]))
    gen, cfg, _ = cf.load_generator(ckpt)
    check, _ = cf.sample_molecules(gen, 4, seed=0, steps=2, progress=False)
    print(
        f"checkpoint reassembled ({ckpt.stat().st_size / 1e6:.1f} MB), loads and samples on the CPU"
    )
    reference = cf.load_reference(cfg)
    arrays = np.load(folder / "samples.npz")
    rates = phases.get("sample", {}).get("molecules_per_s", {})
    rows = {}
    for steps in sorted({int(k.split("/")[0]) for k in arrays.files}):
        ds = MoleculeDataset.from_arrays(
            {k.split("/")[1]: arrays[k] for k in arrays.files if k.startswith(f"{steps}/")}
        )
        mols = list(ds)[: args.num]
        report = cf.evaluate_molecules(
            mols,
            reference,
            strain_molecules=args.strain_molecules,
            xtb_molecules=args.xtb_molecules,
            posebusters_molecules=args.posebusters_molecules,
            protocols=args.protocol,
            progress=False,
        )
        rows[steps] = {k: report.get(k) for k in report.metrics}
        rows[steps]["sampling_molecules_per_s_device"] = rates.get(str(steps))
        print(f"\n{steps} steps, {len(mols)} molecules:")
        print(report.side_by_side(reference.headline_protocols))
    out = folder / "evaluation.json"
    out.write_text(json.dumps({"environment": env, "rows": rows}, indent=1, default=str))
    print(f"\nwritten {out}")
    return 0


#: Columns of the summary table: (report key, heading).
TABLE = [
    ("midi/molecule_stability", "mol st. `midi`"),
    ("midi/validity", "valid `midi`"),
    ("midi/connectivity", "connected `midi`"),
    ("midi/uniqueness", "unique `midi`"),
    ("midi/novelty", "novel `midi`"),
    ("edm/molecule_stability", "mol st. `edm`"),
    ("edm/validity", "valid `edm`"),
    ("geom-revisited/molecule_stability", "mol st. `geom-revisited`"),
    ("mmff94-strain/mmff_strain_median", "strain median `mmff94-strain` (kcal/mol)"),
    ("posebusters/pb_valid", "PB-valid `posebusters`"),
    ("geom-revisited/delta_e_relax_median", "ΔE_relax median `geom-revisited` (kcal/mol)"),
]


def table_main(args: argparse.Namespace) -> int:
    """The markdown table of an evaluated run (evaluation.json), one row per step count."""
    folder = Path(args.results)
    data = json.loads((folder / "evaluation.json").read_text())
    env = data["environment"]
    print(f"{env['device']}, torch {env['torch']}, commit {env.get('commit') or '?'}")
    print("\n| steps | " + " | ".join(h for _, h in TABLE) + " | molecules/s on the GPU |")
    print("|---:|" + "---:|" * (len(TABLE) + 1))
    for steps, row in sorted(data["rows"].items(), key=lambda kv: int(kv[0])):
        cells = []
        for key, _ in TABLE:
            v = row.get(key)
            if v is None or v != v:
                cells.append("–")
            elif "strain" in key or "delta_e" in key:
                cells.append(f"{v:.1f}")
            else:
                cells.append(f"{100 * v:.1f} %")
        rate = row.get("sampling_molecules_per_s_device")
        cells.append("–" if rate is None else f"{rate:.0f}")
        print(f"| {steps} | " + " | ".join(cells) + " |")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("device", help="train, measure and sample on the GPU")
    d.add_argument("--out", required=True, help="folder for results.json, samples, checkpoint")
    d.add_argument("--deadline-s", type=float, default=540.0, help="seconds for the whole run")
    d.add_argument("--reserve-s", type=float, default=75.0, help="seconds kept for sampling")
    d.add_argument("--drugs", help="symgen .npz dataset of drug-sized molecules (geom preset)")
    d.add_argument("--steps", type=int, default=40, help="steps per throughput measurement")
    d.add_argument("--width", type=int, default=256, help="network width of the QM9 run")
    d.add_argument("--depth", type=int, default=6, help="layers of the QM9 run")
    d.add_argument("--heads", type=int, default=8, help="attention heads of the QM9 run")
    d.add_argument("--batch-size", type=int, default=256, help="QM9 run batch size")
    d.add_argument("--lr", type=float, default=1e-3, help="QM9 run peak learning rate")
    d.add_argument("--warmup", type=int, default=300, help="QM9 run warm-up steps")
    d.add_argument("--ema-decay", type=float, default=0.999, help="QM9 run EMA decay")
    d.add_argument("--sample-steps", type=int, nargs="+", default=[50, 100, 20, 10])
    d.add_argument("--num-samples", type=int, default=1000, help="molecules per step count")
    d.add_argument("--sample-batch", type=int, default=500, help="molecules per sampling batch")
    d.add_argument("--allow-cpu", action="store_true", help="rehearse without a GPU")
    e = sub.add_parser("evaluate", help="score the returned samples (needs RDKit)")
    e.add_argument("--results", required=True, help="folder the device run wrote")
    e.add_argument("--num", type=int, default=1000, help="molecules scored per step count")
    e.add_argument("--protocol", nargs="+", default=None, help="protocols (default: all installed)")
    e.add_argument("--strain-molecules", type=int, default=200)
    e.add_argument("--xtb-molecules", type=int, default=50)
    e.add_argument("--posebusters-molecules", type=int, default=100)
    k = sub.add_parser("pack", help="write the files the GPU machine needs (needs RDKit)")
    k.add_argument("--out", default=".gpu", help="folder (ignored by git; carried to the GPU)")
    k.add_argument("--drugs-molecules", type=int, default=5000, help="moses3d molecules packed")
    k.add_argument("--moses-molecules", type=int, default=50000, help="cached moses3d set")
    t = sub.add_parser("throughput", help="throughput per precision, on one machine")
    t.add_argument("--out", default="", help="folder for precision.json")
    t.add_argument("--drugs", help="symgen .npz dataset of drug-sized molecules (geom preset)")
    t.add_argument("--steps", type=int, default=60, help="steps per measurement")
    t.add_argument("--precisions", nargs="+", default=["float32", "bfloat16"])
    f = sub.add_parser("profile", help="cProfile of the full preset's training step")
    f.add_argument("--steps", type=int, default=20, help="profiled steps after 5 warm-up steps")
    f.add_argument("--precision", default="float32", choices=["float32", "bfloat16"])
    f.add_argument("--rows", type=int, default=45, help="rows of the profile printed")
    s = sub.add_parser("table", help="markdown table of an evaluated run")
    s.add_argument("--results", required=True, help="folder holding evaluation.json")
    args = p.parse_args()
    commands = {"device": device_main, "evaluate": evaluate_main, "pack": pack_main,
                "throughput": throughput_main, "profile": profile_main,
                "table": table_main}  # fmt: skip
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
