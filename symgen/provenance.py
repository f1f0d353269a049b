"""Where a run ran: the symgen commit, the machine, torch's version and the device.

Recorded in checkpoints (:func:`symgen.molecules.canonflow.run_info`) and printed by the
benchmark scripts, so that a figure can name its commit and machine.
"""

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["cpuinfo", "git_commit", "machine_name", "provenance"]


def git_commit(root: str | os.PathLike[str] | None = None) -> str | None:
    """The short commit of the git checkout at ``root`` (default: the one symgen is imported
    from), with ``+dirty`` when tracked files differ from it; ``None`` outside a checkout."""
    root = Path(root) if root is not None else Path(__file__).resolve().parents[1]
    git = ["git", "-C", str(root)]
    try:
        rev = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev.stdout.strip() + ("+dirty" if dirty else "")


def cpuinfo() -> dict[str, str] | None:
    """The first processor's entries of ``/proc/cpuinfo`` (``None`` where there is no such
    file, as outside Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    info: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            if info:  # a blank line ends the first processor's block
                break
            continue
        info.setdefault(key.strip(), value.strip())
    return info


def machine_name() -> str:
    """The processor's model name (from ``/proc/cpuinfo`` on Linux), else the architecture.

    Examples:
        >>> isinstance(machine_name(), str) and len(machine_name()) > 0
        True
    """
    name = (cpuinfo() or {}).get("model name")
    return name or platform.processor() or platform.machine()


def provenance(device: str = "cpu") -> dict[str, Any]:
    """The run's commit (:func:`git_commit`), machine, CPU count, torch version and device
    (with the GPU's name on CUDA).

    Examples:
        >>> sorted(provenance())
        ['commit', 'cpu_count', 'device', 'machine', 'torch']
    """
    import torch

    machine = machine_name()
    if device.startswith("cuda") and torch.cuda.is_available():
        machine += f"; {torch.cuda.get_device_name(torch.device(device))}"
    return {
        "commit": git_commit(),
        "machine": machine,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "device": device,
    }
