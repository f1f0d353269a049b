"""Canonicalizers: a canonical orbit representative, its group element and a tie margin.

* :class:`CentroidCanonicalizer` — T(3), masked centroid to the origin;
* :class:`PrincipalAxesCanonicalizer` — SO(3), principal-axis frame with a third-moment sign rule;
* :class:`SpectralOrderCanonicalizer` — S_n, Fiedler order with invariant tie-breaks;
* :class:`LexicographicCanonicalizer` — S_n, cheap sort on (atom type, distance to centroid);
* :class:`SequentialCanonicalizer` — composition of stages for a larger group;
* :func:`geometric_spectral_canonicalizer` — the S_n × SE(3) canonicalizer for molecules.
"""

from symgen.canon.base import Canonicalization, Canonicalizer
from symgen.canon.euclidean import (
    DEFAULT_EIGENGAP_THRESHOLD,
    DEFAULT_SIGN_THRESHOLD,
    CentroidCanonicalizer,
    PrincipalAxesCanonicalizer,
)
from symgen.canon.geometric import (
    DEFAULT_SYMMETRY_TOL,
    GeometricSpectralCanonicalizer,
    geometric_spectral_canonicalizer,
)
from symgen.canon.sequential import SequentialCanonicalizer, embed_element
from symgen.canon.spectral import (
    DEFAULT_ORDER_THRESHOLD,
    LexicographicCanonicalizer,
    SpectralKeys,
    SpectralOrderCanonicalizer,
    spectral_keys,
)

__all__ = [
    "Canonicalization",
    "Canonicalizer",
    "CentroidCanonicalizer",
    "PrincipalAxesCanonicalizer",
    "SpectralOrderCanonicalizer",
    "LexicographicCanonicalizer",
    "SequentialCanonicalizer",
    "GeometricSpectralCanonicalizer",
    "geometric_spectral_canonicalizer",
    "embed_element",
    "spectral_keys",
    "SpectralKeys",
    "DEFAULT_EIGENGAP_THRESHOLD",
    "DEFAULT_SIGN_THRESHOLD",
    "DEFAULT_ORDER_THRESHOLD",
    "DEFAULT_SYMMETRY_TOL",
]
