"""Helpers shared by the benchmark scripts that train and sample through the example scripts.

Each script runs ``examples/molecules/train.py`` and ``sample.py`` as subprocesses (the same
commands a user types), records every command it ran, and reports mean ± standard error over
seeds together with the commit and the machine.
"""

import math
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from symgen.provenance import git_commit, machine_name  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EX = ROOT / "examples" / "molecules"


def commit() -> str:
    """The checkout's short commit hash, with ``+dirty`` when tracked files changed."""
    return git_commit(ROOT) or "unknown"


def machine() -> str:
    """The processor and its core count, as the docs quote them."""
    return f"{machine_name()}, {os.cpu_count()} CPUs"


def one_commit(out: Path) -> str:
    """This checkout's commit, stamped into ``out/commit.txt``; stops (``SystemExit``) if
    ``out`` was started at another commit, so that no table mixes rows of two commits."""
    rev = commit()
    stamp = out / "commit.txt"
    if stamp.exists() and stamp.read_text().strip() != rev:
        raise SystemExit(
            f"{out} was started at commit {stamp.read_text().strip()}, this checkout is {rev}: "
            "rows from two commits would be mixed; use another --out or that commit"
        )
    stamp.write_text(rev + "\n")
    return rev


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (``nan`` error for fewer than two values)."""
    vals = [float(v) for v in values]
    n = len(vals)
    if n == 0:
        return math.nan, math.nan
    m = sum(vals) / n
    if n < 2:
        return m, math.nan
    var = sum((v - m) ** 2 for v in vals) / (n - 1)
    return m, math.sqrt(var / n)


def run_logged(cmd: Sequence[str], log: Path, record: list[str] | None = None) -> None:
    """Run ``cmd`` from the repository root with its output in ``log``; stop on failure."""
    if record is not None:
        record.append(shlex.join(cmd))
    with log.open("w") as f:
        proc = subprocess.run(list(cmd), stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}), see {log}: {shlex.join(cmd)}")


def side_by_side(
    cmds: Sequence[Sequence[str]], logs: Sequence[Path], record: list[str] | None = None
) -> None:
    """Run the commands at the same time, one thread each; stop if any fails."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if record is not None:
        record.extend(shlex.join(c) for c in cmds)
    procs = []
    for cmd, log in zip(cmds, logs):
        handle = log.open("w")
        proc = subprocess.Popen(
            list(cmd), stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT, env=env
        )
        procs.append((proc, handle, log))
    failed = []
    for proc, handle, log in procs:
        if proc.wait() != 0:
            failed.append(str(log))
        handle.close()
    if failed:
        raise SystemExit(f"a run failed; see {', '.join(failed)}")


def sample_command(
    checkpoint: Path,
    out: Path,
    *,
    num: int,
    steps: int,
    threads: int,
    protocols: Sequence[str],
    extra: Sequence[str] = (),
    device: str = "cpu",
) -> list[str]:
    """``sample.py`` drawing ``num`` molecules with ``steps`` solver steps and scoring them."""
    return [
        sys.executable,
        str(EX / "sample.py"),
        "--checkpoint",
        str(checkpoint),
        "--num",
        str(num),
        "--steps",
        str(steps),
        "--out",
        str(out),
        "--device",
        device,
        "--threads",
        str(threads),
        "--no-progress",
        *extra,
        "--protocol",
        *protocols,
    ]


def sampled(folder: Path) -> bool:
    """Whether ``folder`` holds a finished sample-and-score run of ``sample.py``."""
    return (folder / "metrics.json").is_file() and (folder / "sampling.json").is_file()


def read_scores(folder: Path) -> dict[str, float]:
    """The metrics of a ``sample.py`` folder, plus its sampling rate as ``mol_per_s``."""
    import json

    metrics = json.loads((folder / "metrics.json").read_text())["metrics"]
    row = {k: float(v["value"]) for k, v in metrics.items() if v.get("value") is not None}
    rate = json.loads((folder / "sampling.json").read_text())["molecules_per_second"]
    row["mol_per_s"] = float(rate)
    return row


def last_value(csv_path: Path, column: str) -> float:
    """The last row's ``column`` of a run's CSV log (``nan`` when empty or missing)."""
    import csv

    if not csv_path.is_file():
        return math.nan
    with csv_path.open() as f:
        rows = list(csv.DictReader(f))
    return float(rows[-1][column]) if rows else math.nan


def quick_train_command(
    folder: Path,
    minutes: float,
    *,
    device: str = "cpu",
    qm9_limit: int = 0,
    extra: Sequence[str] = (),
) -> list[str]:
    """``train.py --preset quick`` for ``minutes`` at one thread, writing ``folder``, without
    the final and periodic evaluations (the benchmark scores the samples itself); resumes when
    ``folder`` holds a checkpoint. ``qm9_limit`` parses only the first molecules (smoke runs)."""
    cmd = [
        sys.executable,
        str(EX / "train.py"),
        "--preset",
        "quick",
        *extra,
        "--time-budget-min",
        str(minutes),
        "--final-samples",
        "0",
        "--eval-every",
        "0",
        "--out-dir",
        str(folder),
        "--progress",
        "false",
        "--threads",
        "1",
        "--device",
        device,
    ]
    if qm9_limit:
        cmd += ["--qm9-limit", str(qm9_limit), "--val-limit", "64"]
    if (folder / "checkpoint.pt").exists():
        cmd.append("--resume")
    return cmd
