"""The evaluation protocols, one module each, and the registry that :func:`evaluate` runs.

Each protocol module has a docstring citing its source, a ``NAME``, a ``VERSION`` and a
function ``score(context) -> Scores`` that scores the molecules of a shared
:class:`~symgen.molecules.protocols.base.EvaluationContext` (reference data, options, cached
bond matrices) and returns named metrics ``key -> (value, count)``, per-type details and
per-molecule failure reasons (:class:`~symgen.molecules.protocols.base.Scores`).

:data:`REGISTRY` maps a protocol name to a :class:`~symgen.molecules.protocols.base.Protocol`
record (name, version, score function, family). :func:`symgen.molecules.evaluate.evaluate`
runs the entries in registry order, skipping those whose family the caller did not select,
and stamps every metric with the entry's name and version:

==============================  ========  ===================================================
name                            family    module
==============================  ========  ===================================================
``edm-distance-table``          edm       :mod:`~symgen.molecules.protocols.edm_stability`
``rdkit-sanitize/edm-bonds``    edm       :mod:`~symgen.molecules.protocols.rdkit_validity`
``charged-valence``             bonds     :mod:`~symgen.molecules.protocols.charged_valence`
``rdkit-sanitize/given-bonds``  bonds     :mod:`~symgen.molecules.protocols.rdkit_validity`
``w1-edm-bonds``                always    :mod:`~symgen.molecules.protocols.geometry_w1`
``mmff94-strain``               always    :mod:`~symgen.molecules.protocols.mmff_strain`
==============================  ========  ===================================================

Adding a protocol: write a module with ``NAME``, ``VERSION`` and ``score(context)``, and add
one entry ``_entry(module, family)`` to :data:`REGISTRY` (its position sets where its metrics
and failure reasons appear in the report).

Example:
    >>> list(REGISTRY)[:2]
    ['edm-distance-table', 'rdkit-sanitize/edm-bonds']
"""

from functools import partial
from types import ModuleType

from symgen.molecules.protocols import (
    charged_valence,
    edm_stability,
    geometry_w1,
    mmff_strain,
    rdkit_validity,
)
from symgen.molecules.protocols.base import EvaluationContext, Protocol, Scores

__all__ = ["REGISTRY", "FAMILIES", "EvaluationContext", "Protocol", "Scores"]

#: The protocol families :func:`~symgen.molecules.evaluate.evaluate` can select.
FAMILIES: tuple[str, ...] = ("edm", "bonds")


def _entry(
    module: ModuleType, family: str | None = None, variant: str | None = None, **options: str
) -> Protocol:
    """The registry record of a protocol module.

    ``variant`` and ``options`` serve a module with several entries: name
    ``f"{module.NAME}/{variant}"``, score ``partial(module.score, **options)``.
    """
    name = module.NAME if variant is None else f"{module.NAME}/{variant}"
    score = partial(module.score, **options) if options else module.score
    return Protocol(name, module.VERSION, score, family)


#: Protocol name -> registry entry, in the order the evaluator runs them.
REGISTRY: dict[str, Protocol] = {
    p.name: p
    for p in (
        _entry(edm_stability, "edm"),
        _entry(rdkit_validity, "edm", "edm-bonds", bonds="edm"),
        _entry(charged_valence, "bonds"),
        _entry(rdkit_validity, "bonds", "given-bonds", bonds="given"),
        _entry(geometry_w1),
        _entry(mmff_strain),
    )
}
