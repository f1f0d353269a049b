"""Generative processes from orthogonal parts, and the canonical generator.

A process is a path (:mod:`~symgen.generators.schedules`: the position schedule ``α_t, σ_t``
and the token schedule ``κ(t)``) ⊥ a parametrization of the network's output
(:mod:`~symgen.generators.prediction`: velocity, data or noise, converted into one another) ⊥
a loss; the solver is chosen when sampling (:mod:`~symgen.generators.sampling`):

* :class:`AffineProcess` — the one implementation; :class:`FlowMatching` (straight path,
  velocity prediction, Euler) and :class:`VPDiffusion` (variance-preserving path, ε
  prediction, DPM-Solver++) are its two standard settings;
* :class:`SamplerOptions` — solver (Euler, Heun, midpoint, DDIM, DPM-Solver++(2M),
  ancestral), steps, time grid and token sampler settings;
* :class:`Generator` — :class:`CanonicalGenerator` composes canonicalizer, prior, coupling,
  process and network, and symmetrizes its samples with a Haar-random group element.

Time runs from noise (t = 0) to data (t = 1) in every process.
"""

from symgen.generators.base import (
    Generator,
    LossOutput,
    NetworkAdapter,
    Process,
    check_prediction,
    masked_edge_mse,
    masked_node_mse,
)
from symgen.generators.canonical import CanonicalGenerator, size_histogram
from symgen.generators.categorical import (
    argmax_tokens,
    decode_categorical,
    jump_tokens,
    mix_tokens,
    token_cross_entropy,
)
from symgen.generators.diffusion import VPDiffusion
from symgen.generators.flow_matching import FlowMatching
from symgen.generators.prediction import (
    ChannelLayout,
    Parametrization,
    Prediction,
    regression_target,
)
from symgen.generators.process import AffineProcess, CategoricalMode
from symgen.generators.sampling import (
    DDIM,
    SOLVERS,
    Ancestral,
    DPMSolver2M,
    Euler,
    FinalTokens,
    Heun,
    Midpoint,
    SamplerOptions,
    Solver,
    SolverName,
    StepContext,
    make_solver,
)
from symgen.generators.schedules import (
    CosineSchedule,
    LinearSchedule,
    NoiseSchedule,
    PathSchedule,
    PolynomialSchedule,
    PowerTokenSchedule,
    TokenSchedule,
)

__all__ = [
    "Generator",
    "Process",
    "LossOutput",
    "NetworkAdapter",
    "check_prediction",
    "AffineProcess",
    "CategoricalMode",
    "FlowMatching",
    "VPDiffusion",
    "PathSchedule",
    "LinearSchedule",
    "NoiseSchedule",
    "CosineSchedule",
    "PolynomialSchedule",
    "TokenSchedule",
    "PowerTokenSchedule",
    "Parametrization",
    "Prediction",
    "ChannelLayout",
    "regression_target",
    "SamplerOptions",
    "SolverName",
    "FinalTokens",
    "Solver",
    "StepContext",
    "Euler",
    "Heun",
    "Midpoint",
    "DDIM",
    "DPMSolver2M",
    "Ancestral",
    "SOLVERS",
    "make_solver",
    "CanonicalGenerator",
    "size_histogram",
    "decode_categorical",
    "mix_tokens",
    "jump_tokens",
    "argmax_tokens",
    "token_cross_entropy",
    "masked_node_mse",
    "masked_edge_mse",
]
