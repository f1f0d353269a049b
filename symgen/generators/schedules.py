"""Schedules as objects: the position (path) schedule and the token schedule.

Time runs from noise (t = 0) to data (t = 1) in every process of symgen.

* A :class:`PathSchedule` defines the affine Gaussian path of the continuous channels,
  ``x_t = α_t x1 + σ_t x0`` (``x0`` the prior sample, ``x1`` the data), with the derivatives
  ``α'_t`` and ``σ'_t`` that turn predictions into velocities. :class:`LinearSchedule` is the
  straight path of flow matching (``α = t``, ``σ = 1 - t``); the variance-preserving
  :class:`NoiseSchedule` family (:class:`CosineSchedule`, :class:`PolynomialSchedule`) is the
  path of diffusion (``α² + σ² = 1``).
* A :class:`TokenSchedule` defines the mixture path of categorical tokens: each token shows
  its data value with probability ``κ(t)`` and its prior value otherwise
  (:class:`PowerTokenSchedule`, ``κ(t) = t^k``).
"""

import math
from abc import ABC, abstractmethod
from collections.abc import Callable

import torch
from torch import Tensor

from symgen.shapes import PerGraph

__all__ = [
    "PathSchedule",
    "LinearSchedule",
    "NoiseSchedule",
    "CosineSchedule",
    "PolynomialSchedule",
    "TokenSchedule",
    "PowerTokenSchedule",
]


class PathSchedule(ABC):
    """Coefficients of the affine path ``x_t = α_t x1 + σ_t x0`` and their time derivatives.

    Subclasses define :meth:`alpha` and :meth:`sigma`; the derivatives default to automatic
    differentiation in float64 (override them when a closed form is at hand).
    """

    #: Whether ``α'`` and ``σ'`` stay finite at ``t = 1`` (false for variance-preserving paths,
    #: where ``σ = sqrt(1 - ᾱ)`` has an infinite slope at the data).
    smooth_at_data: bool = True

    @abstractmethod
    def alpha(self, t: PerGraph) -> PerGraph:
        """Signal coefficient ``α_t`` (0 or small at t = 0, 1 at t = 1)."""

    @abstractmethod
    def sigma(self, t: PerGraph) -> PerGraph:
        """Noise coefficient ``σ_t`` (1 or close to it at t = 0, 0 at t = 1)."""

    @staticmethod
    def _derivative(fn: Callable[[Tensor], Tensor], t: Tensor) -> Tensor:
        with torch.enable_grad():
            tt = t.detach().to(torch.float64).requires_grad_(True)
            (grad,) = torch.autograd.grad(fn(tt).sum(), tt)
        return grad.to(t.dtype)

    def d_alpha(self, t: PerGraph) -> PerGraph:
        """``dα/dt``."""
        return self._derivative(self.alpha, t)

    def d_sigma(self, t: PerGraph) -> PerGraph:
        """``dσ/dt``."""
        return self._derivative(self.sigma, t)

    def determinant(self, t: PerGraph) -> PerGraph:
        """``α σ' - σ α'``: the determinant of ``(x1, x0) ↦ (x_t, u_t)`` (never 0 on a path)."""
        return self.alpha(t) * self.d_sigma(t) - self.sigma(t) * self.d_alpha(t)

    def log_snr(self, t: PerGraph) -> PerGraph:
        """``λ_t = log(α_t / σ_t)`` (``-inf`` where ``α = 0``, ``+inf`` where ``σ = 0``)."""
        return torch.log(self.alpha(t) / self.sigma(t))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class LinearSchedule(PathSchedule):
    """The straight path of flow matching: ``α_t = t``, ``σ_t = 1 - t``, ``α' = 1``, ``σ' = -1``.

    Examples:
        >>> s = LinearSchedule()
        >>> t = torch.tensor([0.25])
        >>> s.alpha(t).item(), s.sigma(t).item(), s.d_alpha(t).item(), s.d_sigma(t).item()
        (0.25, 0.75, 1.0, -1.0)
    """

    def alpha(self, t: PerGraph) -> PerGraph:
        return t

    def sigma(self, t: PerGraph) -> PerGraph:
        return 1 - t

    def d_alpha(self, t: PerGraph) -> PerGraph:
        return torch.ones_like(t)

    def d_sigma(self, t: PerGraph) -> PerGraph:
        return -torch.ones_like(t)

    def determinant(self, t: PerGraph) -> PerGraph:
        return -torch.ones_like(t)  # t · (-1) - (1 - t) · 1, exactly


class NoiseSchedule(PathSchedule):
    """Variance preserving: ``α_t² + σ_t² = 1``, ``α`` increasing from ~0 (t = 0) to 1 (t = 1).

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

    smooth_at_data = False

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


class TokenSchedule(ABC):
    """The mixture path of tokens: ``P(token_t = token_1) = κ(t)``, else the prior token.

    ``κ`` increases from ``κ(0) = 0`` to ``κ(1) = 1``. A sampler step from ``t`` to ``s``
    reveals a still-noisy token with probability :meth:`jump_probability`.
    """

    @abstractmethod
    def kappa(self, t: Tensor) -> Tensor:
        """``κ(t)``, the probability that a token shows its data value at time ``t``."""

    def kappa_at(self, t: float) -> float:
        """``κ(t)`` for a plain number, clamped to ``[0, 1]``."""
        tt = torch.tensor(min(max(t, 0.0), 1.0), dtype=torch.float64)
        return float(self.kappa(tt))

    def jump_probability(self, t: float, s: float) -> float:
        """``(κ(s) - κ(t)) / (1 - κ(t))``: a noisy token at ``t`` is revealed by ``s``.

        It is 1 on a step that ends at ``t = 1`` (every token is decided there).
        """
        if s >= 1.0 - 1e-9:
            return 1.0
        k0, k1 = self.kappa_at(t), self.kappa_at(s)
        return min(1.0, (k1 - k0) / max(1.0 - k0, 1e-12))


class PowerTokenSchedule(TokenSchedule):
    """``κ(t) = t^k``: ``k > 1`` decides tokens after the positions, ``k < 1`` before.

    Examples:
        >>> PowerTokenSchedule(0.5).kappa(torch.tensor([0.25])).tolist()
        [0.5]
        >>> PowerTokenSchedule().jump_probability(0.5, 0.75)  # (0.75 - 0.5) / (1 - 0.5)
        0.5
    """

    def __init__(self, exponent: float = 1.0) -> None:
        if not exponent > 0:
            raise ValueError(f"the token schedule's exponent must be positive, got {exponent}")
        self.exponent = float(exponent)

    def kappa(self, t: Tensor) -> Tensor:
        return t if self.exponent == 1.0 else t.clamp(min=0.0) ** self.exponent

    def __repr__(self) -> str:
        return f"PowerTokenSchedule(exponent={self.exponent})"
