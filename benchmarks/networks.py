"""Forward+backward time of the networks on QM9-sized batches, as ratios to the Canon transformer.

Each network (Canon transformer, EGNN, e3nn) is timed at two sizes ("small", "base") on one
batch of ``--batch`` real QM9 molecules padded to ``--max-nodes`` slots (node features: 5 atom
types + 3 charge classes; edge features: 4 bond classes). Timing does not depend on the feature
values: bonds are a distance-threshold stand-in (single bond below 1.6 Å) so that the script
needs neither RDKit nor a cache. Ratios are against the Canon transformer of the same size,
measured in the same run; on a shared machine the minimum over repeats is the more stable
estimate (the median includes waiting for other processes), so both are printed.

Example:
    python benchmarks/networks.py --repeats 3
    python benchmarks/networks.py --networks egnn canon_transformer --sizes small
"""

import argparse
import ast
import csv
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from symgen.models import NETWORK_NAMES, build_network  # noqa: E402
from symgen.state import GeometricGraph  # noqa: E402

QM9_TYPES = ("H", "C", "N", "O", "F")
NUM_CHARGES, NUM_BONDS = 3, 4

SIZES: dict[str, dict[str, dict]] = {
    "canon_transformer": {
        "small": dict(width=128, depth=4, heads=8, pair_width=32),
        "base": dict(width=256, depth=8, heads=8, pair_width=64),
    },
    "egnn": {
        "small": dict(width=128, depth=4),
        "base": dict(width=256, depth=9),  # EDM's QM9 network
    },
    "e3nn": {
        "small": dict(scalars=64, vectors=16, lmax=2, depth=3),
        "base": dict(scalars=128, vectors=32, tensors=16, lmax=2, depth=5),
    },
}


def _qm9_dir() -> Path | None:
    spec = importlib.util.find_spec(
        "qm9pack"
    )  # located, never imported (its __init__ needs pkg_resources)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def load_qm9_sample(count: int, seed: int) -> list[tuple[list[str], np.ndarray]]:
    """``count`` random QM9 molecules (elements, positions in Å) read from qm9pack's CSV files."""
    data = _qm9_dir()
    if data is None:
        raise FileNotFoundError("qm9pack is not installed; use --synthetic")
    csv.field_size_limit(1 << 30)
    rows = []
    for part in ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv"):
        with open(data / part, newline="") as f:
            rows.extend((r["Elements"], r["XYZ_Ang"]) for r in csv.DictReader(f))
    pick = np.random.default_rng(seed).choice(len(rows), size=count, replace=False)
    out = []
    for i in pick:
        elements, xyz = rows[i]
        out.append(
            (list(ast.literal_eval(elements)), np.asarray(ast.literal_eval(xyz), dtype=np.float64))
        )
    return out


def synthetic_sample(count: int, seed: int, max_nodes: int) -> list[tuple[list[str], np.ndarray]]:
    """Molecule-like stand-ins: sizes around QM9's mean (18 atoms), random 3D positions."""
    rng = np.random.default_rng(seed)
    out = []
    for k in np.clip(rng.normal(18.0, 3.0, size=count).round().astype(int), 3, max_nodes):
        elements = list(rng.choice(QM9_TYPES, size=k))
        out.append((elements, rng.normal(scale=1.5, size=(k, 3))))
    return out


def make_batch(molecules: list[tuple[list[str], np.ndarray]], max_nodes: int) -> GeometricGraph:
    """Featurize and pad: one-hot types (5) + neutral charge one-hot (3); bonds one-hot (4)."""
    pos, node, edge = [], [], []
    for elements, xyz in molecules:
        k = len(elements)
        if k > max_nodes:
            raise ValueError(f"a molecule has {k} atoms > --max-nodes {max_nodes}")
        types = torch.tensor([QM9_TYPES.index(e) for e in elements])
        feat = torch.cat(
            [
                torch.nn.functional.one_hot(types, len(QM9_TYPES)),
                torch.nn.functional.one_hot(torch.ones(k, dtype=torch.long), NUM_CHARGES),
            ],
            -1,
        )
        p = torch.tensor(xyz, dtype=torch.float32)
        p = p - p.mean(0)
        bonded = (torch.cdist(p, p) < 1.6) & ~torch.eye(k, dtype=torch.bool)
        edge.append(torch.nn.functional.one_hot(bonded.long(), NUM_BONDS).float())
        pos.append(p)
        node.append(feat.float())
    return GeometricGraph.from_graphs(pos, node, edge, max_nodes=max_nodes)


def time_pass(net: torch.nn.Module, x: GeometricGraph) -> float:
    """Seconds for one forward+backward pass (sum of mean squared outputs as the loss)."""
    t = torch.linspace(0.05, 0.95, x.batch_size, device=x.device)
    net.zero_grad(set_to_none=True)
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = net(x, t)
    loss = out.pos.square().mean() + out.node.square().mean()
    if out.edge is not None:
        loss = loss + out.edge.square().mean()
    loss.backward()
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=128, help="molecules per batch")
    parser.add_argument("--max-nodes", type=int, default=29, help="padded node slots (QM9: 29)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per network")
    parser.add_argument("--warmup", type=int, default=1, help="untimed passes first")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--sizes", nargs="+", default=["small", "base"], choices=["small", "base"])
    parser.add_argument(
        "--networks", nargs="+", default=list(NETWORK_NAMES), choices=list(NETWORK_NAMES)
    )
    parser.add_argument(
        "--synthetic", action="store_true", help="random molecule-like batch, no QM9"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed for the molecule sample and weights"
    )
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    if args.synthetic:
        mols = synthetic_sample(args.batch, args.seed, args.max_nodes)
        source = "synthetic"
    else:
        mols = load_qm9_sample(args.batch, args.seed)
        source = "QM9 (qm9pack)"
    x = make_batch(mols, args.max_nodes).to(device=args.device)
    sizes = x.num_nodes.float()
    print(
        f"batch: {x.batch_size} molecules from {source}, padded to n={x.max_nodes}, "
        f"atoms per molecule mean {sizes.mean():.1f} "
        f"(min {int(sizes.min())}, max {int(sizes.max())}); "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
        flush=True,
    )

    # Build everything first, then time round-robin (one pass of each network per round), so
    # that load from other processes on a shared machine affects all networks alike.
    jobs = [(size, name) for size in args.sizes for name in args.networks]
    nets, params = {}, {}
    for size, name in jobs:
        torch.manual_seed(args.seed)  # weight init of torch.nn layers
        width = len(QM9_TYPES) + NUM_CHARGES
        nets[(size, name)] = build_network(
            name,
            node_in=width,
            node_out=width,
            edge_in=NUM_BONDS,
            edge_out=NUM_BONDS,
            **SIZES[name][size],
        ).to(args.device)
        params[(size, name)] = sum(p.numel() for p in nets[(size, name)].parameters())
    times: dict[tuple[str, str], list[float]] = {job: [] for job in jobs}
    rounds = args.warmup + args.repeats
    with tqdm(total=rounds * len(jobs), desc="fwd+bwd passes", file=sys.stderr) as bar:
        for r in range(rounds):
            for job in jobs:
                elapsed = time_pass(nets[job], x)
                if r >= args.warmup:
                    times[job].append(elapsed)
                bar.update()
    results = {job: (params[job], statistics.median(times[job]), min(times[job])) for job in jobs}

    print()
    print(
        "| size | network | parameters | fwd+bwd s/batch: median | min "
        "| ratio to Canon transformer: median | min |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        base = results.get((size, "canon_transformer"))
        for name in args.networks:
            params, med, best = results[(size, name)]
            r_med = f"{med / base[1]:.2f}x" if base else "n/a"
            r_min = f"{best / base[2]:.2f}x" if base else "n/a"
            print(
                f"| {size} | {name} | {params / 1e6:.2f} M | {med:.3f} | {best:.3f} "
                f"| {r_med} | {r_min} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
