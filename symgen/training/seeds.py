"""Per-step and per-epoch random generators: the only randomness of a training run.

Exact resumption rests on one rule: every random draw of training step ``s`` comes from
:func:`step_generator` ``(seed, s)`` and the data order of epoch ``e`` from
:func:`epoch_generator` ``(seed, e)``. A run killed after step ``s`` and resumed from its
checkpoint therefore replays steps ``s + 1, s + 2, ...`` exactly as the uninterrupted run would,
with no random-number-generator state to save.
"""

import torch

__all__ = ["mix_seed", "step_generator", "epoch_generator", "epoch_permutation"]

_MIX = 0x9E3779B97F4A7C15  # odd 64-bit constant (golden ratio) to decorrelate nearby seeds


def mix_seed(seed: int, stream: int, index: int) -> int:
    """A 63-bit seed for item ``index`` of random stream ``stream`` of a run with base ``seed``.

    Examples:
        >>> mix_seed(0, 1, 2) == mix_seed(0, 1, 2) != mix_seed(0, 1, 3)
        True
    """
    return (seed * _MIX + stream * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB) % (1 << 63)


def step_generator(seed: int, step: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh generator for training step ``step`` of a run with base seed ``seed``.

    ``g = Generator(device).manual_seed(mix(seed, step))``; the mixing makes streams of
    neighbouring steps and seeds unrelated.

    Examples:
        >>> a = torch.rand(2, generator=step_generator(0, 5))
        >>> torch.equal(a, torch.rand(2, generator=step_generator(0, 5)))
        True
    """
    return torch.Generator(device=device).manual_seed(mix_seed(seed, 1, step))


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator that orders the data of epoch ``epoch`` (CPU)."""
    return torch.Generator().manual_seed(mix_seed(seed, 3, epoch))


def epoch_permutation(seed: int, epoch: int, n: int) -> torch.Tensor:
    """A permutation of ``range(n)`` set by ``(seed, epoch)``.

    Examples:
        >>> sorted(epoch_permutation(0, 1, 4).tolist())
        [0, 1, 2, 3]
    """
    g = torch.Generator().manual_seed(mix_seed(seed, 2, epoch))
    return torch.randperm(n, generator=g)
