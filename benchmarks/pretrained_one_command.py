"""Wall-clock of the one command that samples and scores a shipped model, as a user runs it.

Runs ``<repo>/examples/molecules/sample.py --pretrained NAME --num N`` (sampling at the
model's default step count, then the evaluator's table against the shipped reference)
``--repeats`` times, each with an empty ``SYMGEN_CACHE`` (so no dataset and no cache can help),
and prints the median wall-clock of the whole command: interpreter start, imports, checksum,
sampling, evaluation and writing the outputs. The split between sampling and the rest comes
from the ``sampling.json`` each run writes. Give ``--repo`` a fresh clone to time what a new
user gets. With ``--baseline-repo`` (and its ``--baseline-python``) the runs alternate between
the two checkouts and the ratio of the median times is printed, measured in the same sitting.

    python benchmarks/pretrained_one_command.py --name qm9-canonflow-quick
    python benchmarks/pretrained_one_command.py --name qm9-canonflow-quick \\
        --repo /tmp/fresh_clone --python /tmp/fresh_clone/.venv/bin/python
    python benchmarks/pretrained_one_command.py --name qm9-canonflow-quick --no-eval \\
        --baseline-repo /tmp/old --baseline-python /tmp/old/.venv/bin/python
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Checkout:
    """A symgen checkout and the interpreter whose environment imports symgen from it."""

    repo: Path
    python: str
    totals: list[float] = field(default_factory=list)
    sampling: list[float] = field(default_factory=list)

    def check(self) -> str | None:
        """Why this checkout cannot be timed (``None`` when it can)."""
        if not (self.repo / "examples" / "molecules" / "sample.py").is_file():
            return f"no examples/molecules/sample.py in {self.repo}"
        where = subprocess.run(
            [self.python, "-c", "import symgen; print(symgen.__file__)"],
            cwd="/",
            capture_output=True,
            text=True,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        )
        installed = Path(where.stdout.strip()).resolve()
        if where.returncode != 0 or self.repo.resolve() not in installed.parents:
            return (
                f"{self.python} imports symgen from {installed or 'nowhere'}, not from "
                f"{self.repo}: give the interpreter of that checkout's environment"
            )
        return None

    def run(self, args: argparse.Namespace) -> str:
        """Time the command once; return its standard output."""
        with tempfile.TemporaryDirectory() as out, tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, SYMGEN_CACHE=cache, OMP_NUM_THREADS=str(args.threads))
            env.pop("PYTHONPATH", None)  # the checkout's own install, as a user has it
            cmd = [
                self.python,
                str(self.repo / "examples" / "molecules" / "sample.py"),
                "--pretrained",
                args.name,
                "--num",
                str(args.num),
                "--threads",
                str(args.threads),
                "--no-progress",
                "--out",
                out,
                *(["--no-eval"] if args.no_eval else []),
            ]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, cwd=self.repo, env=env, capture_output=True, text=True)
            elapsed = time.perf_counter() - t0
            if proc.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
            if os.listdir(cache):
                raise RuntimeError(f"the command wrote to the cache: {os.listdir(cache)}")
            record = json.loads((Path(out) / "sampling.json").read_text())
        self.totals.append(elapsed)
        self.sampling.append(args.num / record["molecules_per_second"])
        return proc.stdout

    def summary(self, args: argparse.Namespace) -> str:
        """The medians of this checkout's runs, as one line."""
        rest = [t - s for t, s in zip(self.totals, self.sampling)]
        what = "sampling only" if args.no_eval else "sampling and the evaluator's table"
        return (
            f"{self.repo}: `sample.py --pretrained {args.name} --num {args.num}` ({what}) took "
            f"{statistics.median(self.totals):.1f} s (median of {len(self.totals)}: "
            f"{', '.join(f'{t:.1f}' for t in self.totals)} s; {args.threads} threads): sampling "
            f"{statistics.median(self.sampling):.1f} s, everything else (start, imports, "
            f"checksum, evaluation, outputs) {statistics.median(rest):.1f} s"
        )


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--name", required=True, help="a shipped model (symgen.pretrained)")
    p.add_argument("--repo", type=Path, default=ROOT, help="the symgen checkout to run")
    p.add_argument(
        "--python", default=sys.executable, help="the interpreter (e.g. a fresh clone's venv)"
    )
    p.add_argument("--baseline-repo", type=Path, help="a second checkout, timed alternately")
    p.add_argument("--baseline-python", help="the baseline checkout's interpreter")
    p.add_argument("--num", type=int, default=1000, help="molecules per command")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each (median reported)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument(
        "--no-eval", action="store_true", help="time sampling only (sample.py --no-eval)"
    )
    args = p.parse_args()
    if args.num < 1 or args.repeats < 1 or args.threads < 1:
        p.error("--num, --repeats and --threads must be positive")
    if (args.baseline_repo is None) != (args.baseline_python is None):
        p.error("--baseline-repo and --baseline-python go together")
    checkouts = [Checkout(args.repo, args.python)]
    if args.baseline_repo is not None:
        checkouts.insert(0, Checkout(args.baseline_repo, args.baseline_python))
    for c in checkouts:
        problem = c.check()
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
    try:
        for k in range(args.repeats):
            for c in checkouts:
                stdout = c.run(args)
                if k == 0 and c is checkouts[-1] and not args.no_eval:
                    print(stdout)
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for c in checkouts:
        print(c.summary(args))
    if len(checkouts) == 2:
        base, new = (statistics.median(c.totals) for c in checkouts)
        sb, sn = (statistics.median(c.sampling) for c in checkouts)
        print(
            f"ratio baseline / {args.repo}: whole command {base / new:.2f}x, "
            f"sampling {sb / sn:.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
