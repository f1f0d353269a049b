"""The evaluation protocols, one module each, and the registry that :func:`evaluate` runs.

Each protocol module has a docstring citing its source, a ``NAME``, a ``VERSION`` and a
function ``score(context) -> Scores`` that scores the molecules of a shared
:class:`~symgen.molecules.protocols.base.EvaluationContext` (reference data, options, cached
bond matrices) and returns named metrics ``key -> (value, count)``, per-type details,
per-molecule failure reasons and notes (:class:`~symgen.molecules.protocols.base.Scores`).

:data:`REGISTRY` maps a protocol name to a :class:`~symgen.molecules.protocols.base.Protocol`
record. :func:`symgen.molecules.evaluate.evaluate` runs the selected entries in registry order
and stamps every metric with the entry's name and version (report key ``"<name>/<metric>"``):

==========================  ============  =====================================================
name                        extra         what it is (module)
==========================  ============  =====================================================
``edm``                                   EDM (Hoogeboom et al. 2022): stability and validity
                                          from geometry (:mod:`.edm`)
``midi``                                  MiDi (Vignac et al. 2023): charge-aware stability and
                                          validity of the own bonds (:mod:`.midi`)
``geom-revisited``          xtb (partly)  GEOM-Drugs Revisited (Nikitin et al. 2025): strict
                                          valences, V&C, GFN2-xTB relaxation
                                          (:mod:`.geom_revisited`)
``posebusters``             posebusters   PoseBusters checks, ``mol`` configuration
                                          (:mod:`.posebusters_checks`)
``symgen-charged-valence``                symgen's strict charge-aware valences
                                          (:mod:`.symgen_charged_valence`)
``symgen-composition``                    net charge, fragments, close pairs
                                          (:mod:`.composition`)
``symgen-geometry-w1``                    W1 of bond lengths and angles to the reference
                                          (:mod:`.geometry_w1`)
``mmff94-strain``                         MMFF94 strain (:mod:`.mmff_strain`)
==========================  ============  =====================================================

Adding a protocol: write a module with ``NAME``, ``VERSION`` and ``score(context)``, and add
one entry ``_entry(module)`` to :data:`REGISTRY` (its position sets where its metrics and
failure reasons appear in the report).

Example:
    >>> list(REGISTRY)[:2]
    ['edm', 'midi']
"""

from types import ModuleType

from symgen.molecules.protocols import (
    composition,
    edm,
    geom_revisited,
    geometry_w1,
    midi,
    mmff_strain,
    posebusters_checks,
    symgen_charged_valence,
)
from symgen.molecules.protocols.base import EvaluationContext, Protocol, Scores

__all__ = ["REGISTRY", "EvaluationContext", "Protocol", "Scores"]


def _entry(module: ModuleType, requires: tuple[str, ...] = (), extra: str = "") -> Protocol:
    """The registry record of a protocol module."""
    return Protocol(module.NAME, module.VERSION, module.score, requires, extra)


#: Protocol name -> registry entry, in the order the evaluator runs them.
REGISTRY: dict[str, Protocol] = {
    p.name: p
    for p in (
        _entry(edm),
        _entry(midi),
        _entry(geom_revisited),
        _entry(posebusters_checks, ("posebusters",), "posebusters"),
        _entry(symgen_charged_valence),
        _entry(composition),
        _entry(geometry_w1),
        _entry(mmff_strain),
    )
}
