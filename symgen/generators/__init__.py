"""Generative processes and the canonical generator.

* :class:`Process` — :class:`FlowMatching` (linear path, Euler/Heun/midpoint, discrete flow
  matching for categorical channels) and :class:`VPDiffusion` (cosine/polynomial schedules,
  ε or x0 prediction, DDIM and ancestral samplers);
* :class:`Generator` — :class:`CanonicalGenerator` composes canonicalizer, prior, coupling,
  process and network, and symmetrizes its samples with a Haar-random group element.

Time runs from noise (t = 0) to data (t = 1) in every process.
"""

from symgen.generators.base import (
    Generator,
    LossOutput,
    Process,
    ZeroCoMNetwork,
    masked_edge_mse,
    masked_node_mse,
)
from symgen.generators.canonical import CanonicalGenerator, size_histogram
from symgen.generators.categorical import (
    decode_categorical,
    jump_tokens,
    mix_tokens,
    token_cross_entropy,
)
from symgen.generators.diffusion import VPDiffusion
from symgen.generators.flow_matching import FlowMatching
from symgen.generators.schedules import CosineSchedule, NoiseSchedule, PolynomialSchedule

__all__ = [
    "Generator",
    "Process",
    "LossOutput",
    "ZeroCoMNetwork",
    "FlowMatching",
    "VPDiffusion",
    "NoiseSchedule",
    "CosineSchedule",
    "PolynomialSchedule",
    "CanonicalGenerator",
    "size_histogram",
    "decode_categorical",
    "mix_tokens",
    "jump_tokens",
    "token_cross_entropy",
    "masked_node_mse",
    "masked_edge_mse",
]
