"""Time from ``sample.py``'s start to its first molecule, for a checkpoint and a symgen checkout.

Runs ``<repo>/examples/molecules/sample.py --checkpoint CKPT --num 1 --no-eval`` (one molecule,
no evaluation) ``--repeats`` times and prints the median wall-clock of the whole command:
interpreter start, imports, rebuilding the generator, and sampling one molecule. Give ``--repo``
another checkout (e.g. a ``git worktree`` of an older commit, with a checkpoint that commit
wrote) to measure it the same way, in the same sitting.

    python benchmarks/time_to_first_molecule.py --checkpoint runs/quick/checkpoint.pt
    git worktree add /tmp/before 12d8e9f
    python benchmarks/time_to_first_molecule.py --repo /tmp/before --checkpoint old/checkpoint.pt
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkpoint", required=True, help="a train.py checkpoint")
    p.add_argument("--repo", type=Path, default=ROOT, help="the symgen checkout to run")
    p.add_argument("--steps", type=int, default=50, help="sampling steps")
    p.add_argument("--repeats", type=int, default=3, help="timed runs (median reported)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = p.parse_args()
    script = args.repo / "examples" / "molecules" / "sample.py"
    if not script.is_file():
        print(f"error: no {script}", file=sys.stderr)
        return 2
    env = dict(os.environ, PYTHONPATH=str(args.repo), OMP_NUM_THREADS=str(args.threads))
    times = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as out:
            cmd = [
                sys.executable,
                str(script),
                "--checkpoint",
                args.checkpoint,
                "--num",
                "1",
                "--steps",
                str(args.steps),
                "--no-eval",
                "--no-progress",
                "--out",
                out,
                "--threads",
                str(args.threads),
            ]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, cwd=args.repo, env=env, capture_output=True, text=True)
            times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
            return proc.returncode
    print(
        f"{args.repo}: first molecule after {statistics.median(times):.1f} s "
        f"(median of {args.repeats}: {', '.join(f'{t:.1f}' for t in times)} s; "
        f"{args.steps} steps, {args.threads} threads)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
