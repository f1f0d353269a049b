"""``edm``: the evaluation of EDM, stability and validity from geometry alone.

Source: Hoogeboom, Satorras, Vignac & Welling 2022, *Equivariant Diffusion for Molecule
Generation in 3D* (ICML), Tables 1 and 2 (QM9 "atom stable", "mol stable", "valid",
"valid and unique"); procedure of their repository ``ehoogeboom/e3_diffusion_for_molecules``:
``qm9/bond_analyze.py`` (distance tables, margins, allowed valences), ``qm9/analyze.py``
(``check_stability``) and ``qm9/rdkit_functions.py`` (``BasicMolecularMetrics``,
``build_molecule``, ``mol2smiles``, the training SMILES of ``compute_qm9_smiles``).

Procedure, per molecule, as EDM's QM9 code on any molecule it accepts (close or even
coincident atoms included: nothing is dropped for geometry):

* bonds: for each atom pair, the order from the distance tables
  (:func:`~symgen.molecules.bonds.infer_bonds_edm`; distances in float32 as EDM computes them
  from its float32 sample tensors). One bond matrix serves stability and validity; EDM's
  validity recomputes distances with ``torch.cdist``, which for more than 25 atoms uses a
  matrix product whose rounding can differ in the last float32 digit, so a distance within
  ~10⁻⁵ pm of a threshold could fall the other way there. EDM's GEOM code builds molecules
  with single bonds only for validity; this protocol is the QM9 procedure, which does not;
* stability: an atom is stable when its summed bond order is the element's allowed valence
  (:data:`~symgen.molecules.bonds.EDM_ALLOWED_VALENCES`; charges are ignored); a molecule when
  all its atoms are. Atom stability is pooled over all atoms of all molecules;
* validity: the molecule is built in RDKit from its atoms and those bonds, without charges,
  and sanitized; if that succeeds, its largest fragment (counted with hydrogens, the first on a
  tie) is sanitized and written with ``Chem.MolToSmiles`` (hydrogens stay explicit, as in
  EDM). Disconnected molecules can be valid;
* uniqueness: distinct valid SMILES / valid molecules; ``valid_and_unique`` = distinct valid
  SMILES / molecules (EDM's "Valid and Unique" column, validity × uniqueness);
* novelty: distinct valid SMILES absent from the training SMILES built the same way (whole
  training molecule, distance-table bonds, no charges; see
  :attr:`~symgen.molecules.protocols.base.EvaluationContext.edm_novelty_reference`), over the
  distinct valid SMILES.

Molecules EDM's code cannot take (an atomic number outside the periodic table, non-finite
coordinates, no atoms, or what a reader could not parse) are counted, not dropped: they are
unstable with all their atoms, invalid, and listed with their reason in the report's failures;
every rate has all input molecules (and atoms) in its denominator. An atom of a known element
that EDM's tables lack (Se, Na, ...) bonds to nothing and is unstable; its molecule is scored
otherwise. Where EDM's tables are asymmetric (a C–S double
bond is listed under C, not under S), the lookup is symmetric, which is what EDM's GEOM code
does (it orders each pair by element); its QM9 code, which never sees sulfur, agrees.

Metrics: ``atom_stability``, ``molecule_stability``, ``validity``, ``uniqueness``,
``valid_and_unique``, ``novelty`` (with a reference). Reasons are prefixed ``edm:``.
"""

from symgen.molecules.bonds import EDM_TABLE
from symgen.molecules.metrics import novelty, rdkit_validity
from symgen.molecules.protocols.base import (
    EvaluationContext,
    Scores,
    stability_scores,
    validity_metrics,
)

__all__ = ["NAME", "VERSION", "score"]

NAME = "edm"
VERSION = "1"


def score(context: EvaluationContext) -> Scores:
    """EDM's stability, validity, uniqueness and novelty of the context's molecules.

    Examples:
        >>> from numpy import array
        >>> from symgen.molecules.molecule import Molecule
        >>> water = Molecule(array([8, 1, 1]), array([[0.0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]))
        >>> m = score(EvaluationContext((water,), num_molecules=2, num_atoms=3)).metrics
        >>> m["atom_stability"], m["molecule_stability"], m["validity"]
        ((1.0, 3), (0.5, 2), (0.5, 2))
    """
    rows = list(range(len(context.molecules)))
    out = stability_scores(
        context, rows, context.edm_bonds, table=EDM_TABLE, charged=False, prefix="edm"
    )
    val = rdkit_validity(
        list(context.molecules),
        context.edm_bonds,
        use_charges=False,
        rule="edm",
        hydrogen_free_smiles=False,
        progress=context.progress,
    )
    smiles = [s for s in val.smiles if s]
    metrics = {**out.metrics, **validity_metrics(val, context.num_molecules)}
    reference = context.edm_novelty_reference
    notes = []
    if reference is not None:
        metrics["novelty"] = (novelty(smiles, reference), len(set(smiles)))
        if context.reference is None:
            notes.append(
                f"{NAME}: novelty against reference SMILES rewritten with explicit hydrogens "
                "(EDM builds its reference from training geometries; pass reference molecules "
                "for that)"
            )
    reasons = dict(out.reasons)
    for j in rows:
        if not val.valid[j]:
            reasons.setdefault(j, []).append(f"edm: invalid: {val.errors[j]}")
    return Scores(metrics=metrics, reasons=reasons, notes=notes)
