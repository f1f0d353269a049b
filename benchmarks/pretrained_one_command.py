"""Wall-clock of the one command that samples and scores a shipped model, as a user runs it.

Runs ``<repo>/examples/molecules/sample.py --pretrained NAME --num N`` (sampling at the
model's default step count, then the evaluator's table against the shipped reference)
``--repeats`` times, each with an empty ``SYMGEN_CACHE`` (so no dataset and no cache can help),
and prints the median wall-clock of the whole command: interpreter start, imports, checksum,
sampling, evaluation and writing the outputs. The split between sampling and the rest comes
from the ``sampling.json`` each run writes. Give ``--repo`` a fresh clone to time what a new
user gets.

    python benchmarks/pretrained_one_command.py --name qm9-canonflow-quick
    python benchmarks/pretrained_one_command.py --name qm9-canonflow-quick \
        --repo /tmp/fresh_clone --python /tmp/fresh_clone/.venv/bin/python
"""

import argparse
import json
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
    p.add_argument("--name", required=True, help="a shipped model (symgen.pretrained)")
    p.add_argument("--repo", type=Path, default=ROOT, help="the symgen checkout to run")
    p.add_argument("--num", type=int, default=1000, help="molecules per command")
    p.add_argument("--repeats", type=int, default=3, help="timed runs (median reported)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument(
        "--python", default=sys.executable, help="the interpreter (e.g. a fresh clone's venv)"
    )
    p.add_argument("extra", nargs="*", help="more sample.py options, after --")
    args = p.parse_args()
    script = args.repo / "examples" / "molecules" / "sample.py"
    if not script.is_file():
        print(f"error: no {script}", file=sys.stderr)
        return 2
    where = subprocess.run(
        [args.python, "-c", "import symgen; print(symgen.__file__)"],
        cwd="/",
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    installed = Path(where.stdout.strip()).resolve()
    if where.returncode != 0 or args.repo.resolve() not in installed.parents:
        print(
            f"error: {args.python} imports symgen from {installed or 'nowhere'}, not from "
            f"{args.repo}: give --python the interpreter of that checkout's environment",
            file=sys.stderr,
        )
        return 2
    totals, sampling = [], []
    for k in range(args.repeats):
        with tempfile.TemporaryDirectory() as out, tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, SYMGEN_CACHE=cache, OMP_NUM_THREADS=str(args.threads))
            env.pop("PYTHONPATH", None)  # the checkout's own install, as a user has it
            cmd = [
                args.python,
                str(script),
                "--pretrained",
                args.name,
                "--num",
                str(args.num),
                "--threads",
                str(args.threads),
                "--no-progress",
                "--out",
                out,
                *args.extra,
            ]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, cwd=args.repo, env=env, capture_output=True, text=True)
            totals.append(time.perf_counter() - t0)
            if proc.returncode != 0:
                print(proc.stdout[-2000:], proc.stderr[-2000:], file=sys.stderr)
                return proc.returncode
            if os.listdir(cache):
                wrote = os.listdir(cache)
                print(f"error: the command wrote to the cache: {wrote}", file=sys.stderr)
                return 1
            record = json.loads((Path(out) / "sampling.json").read_text())
            sampling.append(args.num / record["molecules_per_second"])
            if k == 0:
                print(proc.stdout)
    rest = [t - s for t, s in zip(totals, sampling)]
    print(
        f"{args.repo}: `sample.py --pretrained {args.name} --num {args.num}` took "
        f"{statistics.median(totals):.1f} s (median of {args.repeats}: "
        f"{', '.join(f'{t:.1f}' for t in totals)} s; {args.threads} threads): sampling "
        f"{statistics.median(sampling):.1f} s, everything else (start, imports, checksum, "
        f"evaluation, outputs) {statistics.median(rest):.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
