"""``midi``: charge-aware stability and validity of the molecules' own bonds, as MiDi scores them.

Source: Vignac, Osman, Toni & Frossard 2023, *MiDi: Mixed Graph and 3D Denoising Diffusion
for Molecule Generation* (ECML PKDD), QM9 and GEOM-Drugs tables ("atom stability", "molecule
stability", "validity", "connectivity"); procedure of ``cvignac/MiDi``:
``midi/analysis/rdkit_functions.py`` (``allowed_bonds``, ``check_stability``,
``Molecule.build_molecule``) and ``midi/metrics/molecular_metrics.py``
(``SamplingMetrics.compute_validity``). SemlaFlow (Irwin et al. 2024) and FlowMol (Dunn &
Koes 2024, up to version 2.0) use the same table, so their QM9 / GEOM numbers (e.g. SemlaFlow's
99.7 % QM9 molecule stability) are on this protocol.

Procedure, on each molecule's own bonds and formal charges (geometry is not used):

* stability: an atom is stable when its summed bond order is allowed for its element and
  formal charge by :data:`~symgen.molecules.bonds.MIDI_ALLOWED_VALENCES`; a charge the element
  does not list is judged by its neutral entry (MiDi's fallback; SemlaFlow instead counts such
  atoms unstable); an element outside the table is unstable. The table admits neutral
  three-valent C and two-valent N (radicals), so this protocol is lenient by design; see
  ``symgen-charged-valence`` and ``geom-revisited`` for strict tables;
* validity: the molecule is built with its charges and bonds; the largest fragment of the
  *unsanitized* molecule (the first on a tie) is sanitized; the molecule is valid when that
  succeeds; ``connectivity`` is the share of molecules with a single fragment;
* uniqueness over valid molecules (``Chem.MolToSmiles`` of the fragment); novelty of the
  distinct valid molecules against the reference SMILES, both without hydrogens or stereo
  (MiDi's own QM9 novelty compares against Kekulé SMILES of unsanitized training molecules and
  therefore never matches an aromatic molecule; that is not reproduced).

symgen's molecules are kekulized (bond orders 1–3), so MiDi's truncation of aromatic bonds to
order 1 never arises for them; a file with aromatic bonds from another model is kekulized when
read and scored on its Kekulé bonds, which can differ from MiDi's count on the aromatic ones
(a ring that cannot be kekulized counts as unstable and invalid, its reason kept). Molecules without
usable own bonds (an XYZ file, or bonds that fail
:func:`~symgen.molecules.metrics.check_bonds`) count as unstable and invalid with a reason; the
protocol is skipped when no molecule carries bonds.

Metrics: ``atom_stability``, ``molecule_stability``, ``validity``, ``connectivity``,
``uniqueness``, ``valid_and_unique``, ``novelty`` (with a reference). Reasons prefixed ``midi:``.
"""

from symgen.molecules.bonds import MIDI_TABLE
from symgen.molecules.metrics import novelty, rdkit_validity
from symgen.molecules.protocols.base import (
    EvaluationContext,
    Scores,
    fraction,
    given_bond_rows,
    prefixed,
    stability_scores,
    validity_metrics,
)

__all__ = ["NAME", "VERSION", "score"]

NAME = "midi"
VERSION = "1"


def score(context: EvaluationContext) -> Scores:
    """MiDi's stability, validity, connectivity, uniqueness and novelty of the own bonds.

    Examples:
        >>> import numpy as np
        >>> from symgen.molecules.molecule import Molecule
        >>> ch3 = Molecule(np.array([6, 1, 1, 1]), np.zeros((4, 3)),   # a methyl radical
        ...                charges=np.zeros(4, np.int64), bonds=np.array([[0, 1], [0, 2], [0, 3]]),
        ...                bond_orders=np.array([1, 1, 1]))
        >>> ctx = EvaluationContext((ch3,), num_molecules=1, num_atoms=4)
        >>> score(ctx).metrics["molecule_stability"]
        (1.0, 1)
    """
    if not context.has_given_bonds:
        return Scores(notes=["midi: skipped, no molecule carries its own bonds"])
    rows, bonds = given_bond_rows(context)
    out = stability_scores(context, rows, bonds, table=MIDI_TABLE, charged=True, prefix="midi")
    val = rdkit_validity(
        [context.molecules[j] for j in rows],
        bonds,
        use_charges=True,
        rule="midi",
        progress=context.progress,
    )
    n_mol = context.num_molecules
    metrics = {**out.metrics, **validity_metrics(val, n_mol)}
    metrics["connectivity"] = (fraction(int((val.num_fragments == 1).sum()), n_mol), n_mol)
    reference = context.novelty_reference
    if reference is not None:
        noh = [s for s in val.smiles_noh if s]
        metrics["novelty"] = (novelty(noh, reference), len(set(noh)))
    reasons = {**prefixed("midi", context.given_bond_problems), **out.reasons}
    for i, j in enumerate(rows):
        if not val.valid[i]:
            reasons.setdefault(j, []).append(f"midi: invalid: {val.errors[i]}")
        elif val.num_fragments[i] > 1:
            reasons.setdefault(j, []).append(f"midi: {val.num_fragments[i]} fragments")
    return Scores(metrics=metrics, reasons=reasons)
