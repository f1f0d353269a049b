"""Noise schedules of variance-preserving diffusion, in symgen's time convention (t = 1 is data)."""

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor

from symgen.shapes import PerGraph

__all__ = ["NoiseSchedule", "CosineSchedule", "PolynomialSchedule"]


class NoiseSchedule(ABC):
    """``z_t = α_t x + σ_t ε``, ``α_t² + σ_t² = 1``, ``α`` increasing from ~0 (t = 0) to 1 (t = 1).

    Subclasses define ``ᾱ(τ) = α²`` as a function of the diffusion time ``τ = 1 - t``; it is
    clipped to ``[alpha_bar_min, 1]`` so that ``α_0 > 0`` and ``x̂ = (z - σ ε̂) / α`` stays finite.

    Examples:
        >>> class LinearAlphaBar(NoiseSchedule):  # ᾱ(τ) = 1 - τ
        ...     def _alpha_bar(self, tau):
        ...         return 1 - tau
        >>> s = LinearAlphaBar()
        >>> t = torch.tensor([0.0, 0.75, 1.0], dtype=torch.float64)
        >>> s.alpha_bar(t).tolist()  # clipped at alpha_bar_min for t = 0
        [1e-05, 0.75, 1.0]
        >>> torch.allclose(s.alpha(t) ** 2 + s.sigma(t) ** 2, torch.ones(3, dtype=torch.float64))
        True
    """

    def __init__(self, alpha_bar_min: float = 1e-5) -> None:
        if not 0 < alpha_bar_min < 1:
            raise ValueError(f"alpha_bar_min must be in (0, 1), got {alpha_bar_min}")
        self.alpha_bar_min = float(alpha_bar_min)

    @abstractmethod
    def _alpha_bar(self, tau: Tensor) -> Tensor:
        """Unclipped ``ᾱ(τ)`` with ``ᾱ(0) = 1``."""

    def alpha_bar(self, t: PerGraph) -> PerGraph:
        """``ᾱ_t = α_t²`` at data-time ``t``."""
        tau = (1 - t.to(torch.float64)).clamp(0.0, 1.0)
        return self._alpha_bar(tau).clamp(self.alpha_bar_min, 1.0).to(t.dtype)

    def alpha(self, t: PerGraph) -> PerGraph:
        """Signal scale ``α_t``."""
        return self.alpha_bar(t).sqrt()

    def sigma(self, t: PerGraph) -> PerGraph:
        """Noise scale ``σ_t = sqrt(1 - α_t²)``."""
        return (1 - self.alpha_bar(t)).clamp_min(0.0).sqrt()


class CosineSchedule(NoiseSchedule):
    """Cosine schedule (Nichol & Dhariwal 2021).

    ``ᾱ(τ) = cos²(π/2 · (τ + s)/(1 + s)) / cos²(π/2 · s/(1 + s))``.

    Examples:
        >>> s = CosineSchedule()
        >>> float(s.alpha(torch.tensor([1.0]))), float(s.alpha(torch.tensor([0.0]))) < 0.01
        (1.0, True)
    """

    def __init__(self, s: float = 0.008, alpha_bar_min: float = 1e-5) -> None:
        super().__init__(alpha_bar_min)
        self.s = float(s)

    def _alpha_bar(self, tau: Tensor) -> Tensor:
        f = torch.cos(0.5 * math.pi * (tau + self.s) / (1 + self.s)) ** 2
        return f / math.cos(0.5 * math.pi * self.s / (1 + self.s)) ** 2

    def __repr__(self) -> str:
        return f"CosineSchedule(s={self.s})"


class PolynomialSchedule(NoiseSchedule):
    """Polynomial schedule (Hoogeboom et al. 2022, EDM): ``ᾱ(τ) = (1 - τ^p)²``.

    Examples:
        >>> s = PolynomialSchedule(power=2.0)
        >>> float(s.alpha_bar(torch.tensor([0.5])))
        0.5625
    """

    def __init__(self, power: float = 2.0, alpha_bar_min: float = 1e-5) -> None:
        super().__init__(alpha_bar_min)
        if not power > 0:
            raise ValueError(f"power must be positive, got {power}")
        self.power = float(power)

    def _alpha_bar(self, tau: Tensor) -> Tensor:
        return (1 - tau**self.power) ** 2

    def __repr__(self) -> str:
        return f"PolynomialSchedule(power={self.power})"
