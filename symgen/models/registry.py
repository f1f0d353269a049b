"""Build a network by name, so that scripts and configs can pick one with a string."""

from typing import Any

from torch import nn

__all__ = ["NETWORK_NAMES", "build_network"]

NETWORK_NAMES = ("canon_transformer", "egnn", "e3nn")


def build_network(name: str, **config: Any) -> nn.Module:
    """Construct the network called ``name`` from its config fields.

    Names: ``"canon_transformer"`` (:class:`~symgen.models.CanonTransformer`), ``"egnn"``
    (:class:`~symgen.models.EGNN`) and ``"e3nn"`` (:class:`~symgen.models.E3NNNetwork`, needs the
    ``e3nn`` extra). All take ``node_in``, ``node_out``, ``edge_in`` and ``edge_out`` and
    implement ``net(x: GeometricGraph, t) -> GeometricGraph``; the other keyword arguments are
    the fields of the network's config dataclass.

    Raises:
        ValueError: for an unknown name or a config field the network does not have.

    Examples:
        >>> net = build_network("egnn", node_in=8, node_out=8, width=16, depth=1)
        >>> type(net).__name__
        'EGNN'
    """
    if name == "canon_transformer":
        from symgen.models.transformer import (
            CanonTransformer as cls,
        )
        from symgen.models.transformer import (
            CanonTransformerConfig as cfg_cls,
        )
    elif name == "egnn":
        from symgen.models.egnn import EGNN as cls
        from symgen.models.egnn import EGNNConfig as cfg_cls
    elif name == "e3nn":
        from symgen.models.e3nn_net import E3NNConfig as cfg_cls
        from symgen.models.e3nn_net import E3NNNetwork as cls
    else:
        raise ValueError(f"unknown network {name!r}; choose from {NETWORK_NAMES}")
    fields = set(cfg_cls.__dataclass_fields__)
    unknown = sorted(set(config) - fields)
    if unknown:
        raise ValueError(
            f"{name}: unknown config field(s) {unknown}; valid fields: {sorted(fields)}"
        )
    return cls(cfg_cls(**config))
