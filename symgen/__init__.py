"""symgen: generative models of data with symmetries, by canonicalization.

Layers (imports only point down): :mod:`symgen.state` (with :mod:`symgen.conditioning`),
:mod:`symgen.groups`, :mod:`symgen.canon`, :mod:`symgen.priors`, :mod:`symgen.couplings`,
:mod:`symgen.generators`, :mod:`symgen.models`; the molecular domain lives in
:mod:`symgen.molecules`.
"""

from symgen.state import GeometricGraph, StateError, prefix_mask

__version__ = "0.1.0"

__all__ = ["GeometricGraph", "StateError", "prefix_mask", "__version__"]
