"""Exponential moving average of a module's parameters and buffers."""

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["ExponentialMovingAverage"]


def _tensors(model: nn.Module, names: set[str] | None = None) -> Iterator[tuple[str, Tensor]]:
    """Parameters and persistent buffers (non-persistent ones are constants: left alone).

    ``names``: the tensors to yield, when already known (skips building the state dict).
    """
    keep = set(model.state_dict(keep_vars=True)) if names is None else names
    yield from ((k, v) for k, v in model.named_parameters() if names is None or k in keep)
    yield from ((k, v) for k, v in model.named_buffers() if k in keep)


class ExponentialMovingAverage:
    """Exponential moving average of a model's parameters and buffers.

    ``θ_ema <- β_k · θ_ema + (1 - β_k) · θ`` after the ``k``-th optimizer step (non-float
    buffers are copied), with the warmed-up decay ``β_k = min(decay, (1 + k) / (10 + k))``
    (``k = 1, 2, ...``). Without the warm-up the average of a short run would still hold a
    share ``decay^k`` of the random initial weights (30 % after 1,200 steps at
    ``decay = 0.999``); with it the early average follows the recent weights.
    ``warmup=False`` gives the plain constant decay. Parameters and persistent buffers are
    tracked by name (shared parameters once), so constants (non-persistent buffers) and a
    module's non-tensor state (e.g. a generator's size histogram) are left alone.

    Examples:
        >>> net = nn.Linear(1, 1, bias=False)
        >>> _ = nn.init.zeros_(net.weight)
        >>> ema = ExponentialMovingAverage(net, decay=0.9, warmup=False)
        >>> _ = nn.init.ones_(net.weight)
        >>> ema.update(net)  # 0.9 * 0 + 0.1 * 1
        >>> with ema.averaged(net):
        ...     round(net.weight.item(), 6)
        0.1
        >>> net.weight.item()  # restored on exit
        1.0
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, *, warmup: bool = True) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must lie in [0, 1), got {decay}")
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.num_updates = 0
        self.shadow: dict[str, Tensor] = {k: v.detach().clone() for k, v in _tensors(model)}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Blend the model's current weights into the average (one fused op for all tensors)."""
        self.num_updates += 1
        beta = self.current_decay()
        averages, values = [], []
        for name, value in _tensors(model, set(self.shadow)):
            if value.is_floating_point():
                averages.append(self.shadow[name])
                values.append(value.detach())
            else:
                self.shadow[name].copy_(value)
        if averages:  # the foreach ops refuse empty lists
            # the same arithmetic as avg.mul_(beta).add_(value, alpha=1 - beta), tensor by tensor
            torch._foreach_mul_(averages, beta)
            torch._foreach_add_(averages, values, alpha=1.0 - beta)

    def current_decay(self) -> float:
        """The decay ``β_k`` used by the latest update (``k = num_updates``)."""
        if not self.warmup:
            return self.decay
        k = self.num_updates
        return min(self.decay, (1.0 + k) / (10.0 + k))

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Write the averaged weights into ``model`` (for sampling or export)."""
        live = dict(_tensors(model))
        missing = sorted(set(live) - set(self.shadow))
        if missing:
            raise ValueError(f"the EMA has no average for {missing[:5]}")
        for name, value in live.items():
            value.copy_(self.shadow[name])

    @contextmanager
    def averaged(self, model: nn.Module) -> Iterator[nn.Module]:
        """Temporarily load the averaged weights into ``model`` (restored on exit)."""
        backup = {k: v.detach().clone() for k, v in _tensors(model)}
        self.copy_to(model)
        try:
            yield model
        finally:
            with torch.no_grad():
                for name, value in _tensors(model):
                    value.copy_(backup[name])

    def state_dict(self) -> dict[str, Any]:
        """Serializable state (decay, warm-up, update count and averaged tensors)."""
        return {
            "decay": self.decay,
            "warmup": self.warmup,
            "num_updates": self.num_updates,
            "shadow": self.shadow,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        self.decay = float(state["decay"])
        self.warmup = bool(state.get("warmup", False))
        self.num_updates = int(state.get("num_updates", 0))
        old = self.shadow  # averages stay on the device of the model they were made for
        self.shadow = {
            k: v.to(old[k].device if k in old else v.device).clone()
            for k, v in state["shadow"].items()
        }
