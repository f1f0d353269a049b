"""Training-step time and peak memory of the Canon transformer against molecule size.

Drug-like molecules have 40–100 atoms with hydrogens (GEOM-DRUGS up to 181) where QM9 has at
most 29, and the Canon transformer's pair features grow as n². For each size ``n`` in
``--sizes`` this script builds the quick preset's network (width 128, depth 4, 8 heads, self-
conditioning off) with the GEOM-DRUGS feature layout (16 elements, 6 charges, 4 bond classes),
and times the forward and backward pass of one training batch of ``--batch-size`` molecules of
exactly ``n`` atoms (random positions, types and bonds; the cost does not depend on the values),
median over ``--repeats`` after a warm-up. Each size runs in a fresh process, so the peak
resident memory it reports (``ru_maxrss``) belongs to that size alone; the memory of the
process before the first pass (PyTorch and the model) is printed next to it. The batch size
that would fit in ``--memory-gb`` is extrapolated linearly from the measured increase (said so
in the output): activations scale with the batch.

    python benchmarks/size_scaling.py --sizes 20 40 60 80 100 --batch-size 64

``--padding N`` instead reports how much of a batch is padding on the first ``N`` molecules of
the cached ``moses3d`` set of ``--moses-molecules`` molecules: plain random batches against the
Trainer's size-bucketed batches (``bucket_batches`` 10 and 50), as the share of padded node
slots and of padded atom pairs (the transformer's pair features cost n² per molecule).

    python benchmarks/size_scaling.py --padding 20000 --moses-molecules 20000
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import torch  # noqa: E402

from symgen.models import build_network  # noqa: E402
from symgen.molecules.featurize import FeatureLayout  # noqa: E402
from symgen.state import GeometricGraph  # noqa: E402


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes


def measure(n: int, batch_size: int, repeats: int, precision: str, threads: int) -> dict:
    """Median forward+backward seconds and peak memory for one size (in this process)."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    layout = FeatureLayout.geom()
    net = build_network(
        "canon_transformer",
        node_in=layout.node_dim,
        node_out=layout.node_dim,
        edge_in=layout.edge_dim,
        edge_out=layout.edge_dim,
        width=128,
        depth=4,
        heads=8,
        self_condition=False,
    )
    g = torch.Generator().manual_seed(n)
    pos = torch.randn(batch_size, n, 3, generator=g) * 3.0
    types = torch.randint(layout.num_types, (batch_size, n), generator=g)
    node = torch.nn.functional.one_hot(types, layout.node_dim).float()
    bonds = torch.randint(len(layout.bond_orders), (batch_size, n, n), generator=g)
    bonds = torch.triu(bonds, 1)
    bonds = bonds + bonds.transpose(1, 2)
    edge = torch.nn.functional.one_hot(bonds, layout.edge_dim).float()
    mask = torch.ones(batch_size, n, dtype=torch.bool)
    x = GeometricGraph(pos, node, mask, edge=edge)
    t = torch.linspace(0.05, 0.95, batch_size)
    before = _rss_mb()
    seconds = []
    for _ in range(repeats + 1):
        net.zero_grad(set_to_none=True)
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16"):
            out = net(x, t)
        loss = out.pos.float().square().mean() + out.node.float().square().mean()
        if out.edge is not None:
            loss = loss + out.edge.float().square().mean()
        loss.backward()
        seconds.append(time.perf_counter() - start)
    return {
        "atoms": n,
        "batch_size": batch_size,
        "precision": precision,
        "seconds": statistics.median(seconds[1:]),
        "base_mb": before,
        "peak_mb": _rss_mb(),
    }


def report_padding(num: int, moses_molecules: int, batch_size: int) -> int:
    """Padded node slots and atom pairs: random batches vs size-bucketed batches."""
    import numpy as np

    from symgen.data import SizeBucketBatcher, padding_fraction
    from symgen.molecules.moses3d import build_moses3d

    sizes = build_moses3d(moses_molecules, progress=True).num_atoms[:num].astype(np.int64)
    print(f"moses3d, {len(sizes)} molecules (mean {sizes.mean():.1f} atoms, max {sizes.max()}), "
          f"batch {batch_size}, one epoch")  # fmt: skip
    print("batches                     padded node slots  padded atom pairs")
    padded_to_max = 1 - sizes.mean() / sizes.max()
    pairs_to_max = 1 - (sizes.astype(float) ** 2).mean() / sizes.max() ** 2
    print(f"{'all padded to the largest':26s}  {padded_to_max:17.1%}  {pairs_to_max:17.1%}")
    for pools in (1, 10, 50):
        batcher = SizeBucketBatcher(sizes, batch_size, bucket_batches=pools, drop_last=True)
        batches = batcher.epoch(torch.Generator().manual_seed(0))
        used = sum(float((sizes[b].astype(float) ** 2).sum()) for b in batches)
        slots = sum(len(b) * float(sizes[b].max()) ** 2 for b in batches)
        label = "random" if pools == 1 else f"bucketed, {pools} per pool"
        print(f"{label:26s}  {padding_fraction(sizes, batches):17.1%}  {1 - used / slots:17.1%}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--sizes", type=int, nargs="+", default=[20, 40, 60, 80, 100])
    p.add_argument("--batch-size", type=int, default=64, help="molecules per batch (64)")
    p.add_argument("--repeats", type=int, default=3, help="timed passes per size (3)")
    p.add_argument("--precision", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--threads", type=int, default=2, help="torch threads (2)")
    p.add_argument("--memory-gb", type=float, default=24.0, help="memory for the fit column")
    p.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # child process
    p.add_argument("--json", default=None, help="also write the rows here")
    p.add_argument("--padding", type=int, default=0, help="report batch padding on N molecules")
    p.add_argument("--moses-molecules", type=int, default=20000, help="moses3d set (--padding)")
    args = p.parse_args(argv)
    if args.padding < 0 or args.moses_molecules < 1:
        p.error("--padding must be >= 0 and --moses-molecules >= 1")
    if args.padding:
        return report_padding(args.padding, args.moses_molecules, args.batch_size)
    if min(args.sizes) < 2 or args.batch_size < 1 or args.repeats < 1:
        p.error("sizes must be >= 2, --batch-size and --repeats >= 1")
    if args.one is not None:
        print(json.dumps(measure(args.one, args.batch_size, args.repeats, args.precision,
                                 args.threads)))  # fmt: skip
        return 0
    rows = []
    print(f"Canon transformer (width 128, depth 4, 8 heads), GEOM layout, batch {args.batch_size}, "
          f"{args.precision}, {args.threads} threads; one process per size")  # fmt: skip
    print(
        "atoms  step (s)  ms per molecule  peak MB  over base MB  batch fitting "
        f"{args.memory_gb:g} GB (extrapolated)"
    )
    for n in args.sizes:
        cmd = [sys.executable, __file__, "--one", str(n), "--batch-size", str(args.batch_size),
               "--repeats", str(args.repeats), "--precision", args.precision,
               "--threads", str(args.threads)]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{n:5d}  failed: {done.stderr.strip().splitlines()[-1]}")
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        extra = max(row["peak_mb"] - row["base_mb"], 1.0)
        fit = int((args.memory_gb * 1024 - row["base_mb"]) / extra * args.batch_size)
        row["fits"] = fit
        rows.append(row)
        print(f"{n:5d}  {row['seconds']:8.2f}  {1000 * row['seconds'] / args.batch_size:15.1f}  "
              f"{row['peak_mb']:7.0f}  {extra:12.0f}  {fit}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
