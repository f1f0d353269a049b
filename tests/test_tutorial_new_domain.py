"""Runs the "your own tensors" program of docs/tutorials/new-domain.md and checks its promise:
a canonical generator trained by the library loop on a user's tensors, in under 40 lines."""

import re
from pathlib import Path

import torch

PAGE = Path(__file__).resolve().parents[1] / "docs" / "tutorials" / "new-domain.md"


def test_own_tensors_program_runs_and_learns_the_shape(tmp_path, monkeypatch):
    text = PAGE.read_text()
    match = re.search(r"<!-- runnable: own-tensors -->\n```python\n(.*?)```", text, flags=re.S)
    assert match, "the tutorial's runnable block is missing"
    code = match.group(1)
    lines = [line for line in code.splitlines() if line.strip()]
    assert len(lines) < 40, f"the program should stay under 40 lines, has {len(lines)}"
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)
    ns: dict = {}
    exec(compile(code, f"{PAGE.name}[own-tensors]", "exec"), ns)  # noqa: S102
    assert (tmp_path / "runs" / "shape" / "checkpoint.pt").is_file()
    assert (tmp_path / "runs" / "shape" / "log.csv").is_file()

    def sorted_distances(p: torch.Tensor) -> torch.Tensor:
        return torch.cdist(p, p).flatten(1).sort(-1).values

    reference = sorted_distances(ns["shape"][None])[0]
    samples = ns["samples"]
    assert samples.pos.shape == (500, 8, 3)
    error = (sorted_distances(samples.pos) - reference).abs().mean(-1).median()
    prior = ns["generator"].prior.sample(samples, generator=torch.Generator().manual_seed(3))
    error_prior = (sorted_distances(prior.pos) - reference).abs().mean(-1).median()
    assert error < 0.5 * error_prior, (float(error), float(error_prior))
