"""Tests of the protocol registry: module contract, provenance of every metric, extension."""

import importlib

import numpy as np
import pytest

from symgen.molecules.evaluate import evaluate
from symgen.molecules.molecule import Molecule
from symgen.molecules.protocols import FAMILIES, REGISTRY, EvaluationContext, Protocol, Scores

pytest.importorskip("rdkit")

WATER = Molecule(
    np.array([8, 1, 1]), np.array([[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]), name="water"
)
WATER_BONDS = Molecule(
    WATER.atomic_numbers,
    WATER.positions,
    charges=np.zeros(3, np.int64),
    bonds=np.array([[0, 1], [0, 2]]),
    bond_orders=np.array([1, 1]),
    name="water with bonds",
)
OVERLAP = Molecule(np.array([6, 6]), np.array([[0.0, 0, 0], [0.1, 0, 0]]), name="overlap")

MODULES = ["edm_stability", "charged_valence", "rdkit_validity", "geometry_w1", "mmff_strain"]


@pytest.mark.parametrize("name", MODULES)
def test_protocol_modules_follow_the_contract(name):
    module = importlib.import_module(f"symgen.molecules.protocols.{name}")
    assert isinstance(module.NAME, str) and isinstance(module.VERSION, str)
    assert callable(module.score) and module.score.__doc__
    assert "Source:" in module.__doc__  # every protocol cites where it comes from
    entries = [p for p in REGISTRY.values() if p.name.split("/")[0] == module.NAME]
    assert entries and all(p.version == module.VERSION for p in entries)


def test_registry_shape():
    assert list(REGISTRY) == [
        "edm-distance-table",
        "rdkit-sanitize/edm-bonds",
        "charged-valence",
        "rdkit-sanitize/given-bonds",
        "w1-edm-bonds",
        "mmff94-strain",
    ]
    assert all(isinstance(p, Protocol) and name == p.name for name, p in REGISTRY.items())
    assert {p.family for p in REGISTRY.values()} == {*FAMILIES, None}


def test_every_metric_names_its_registry_protocol_and_version():
    r = evaluate([WATER_BONDS, WATER, OVERLAP], reference=[WATER], max_strain_molecules=2)
    by_protocol: dict[str, set[str]] = {}
    for key, metric in r.metrics.items():
        assert metric.version == REGISTRY[metric.protocol].version
        by_protocol.setdefault(metric.protocol, set()).add(key)
    validity = {"validity", "connected_validity", "uniqueness", "valid_and_unique", "novelty"}
    assert by_protocol == {
        "edm-distance-table": {"atom_stability", "molecule_stability"},
        "rdkit-sanitize/edm-bonds": validity,
        "charged-valence": {"atom_stability_given_bonds", "molecule_stability_given_bonds"},
        "rdkit-sanitize/given-bonds": {k + "_given_bonds" for k in validity},
        "w1-edm-bonds": {"bond_length_w1", "bond_angle_w1", "atom_count_w1", "atom_type_tv"},
        "mmff94-strain": {"mmff_strain_median", "mmff_strain_mean", "mmff_setup_rate"},
    }
    # failure reasons of the scorable molecules land on the input indices, in registry order
    assert r.failures[1] == ("bonds: no bonds given",)
    assert r.failures[2][0].startswith("overlapping atoms")
    only_edm = evaluate([WATER_BONDS], protocols=("edm",), max_strain_molecules=0)
    assert {m.protocol for m in only_edm.metrics.values()} == {
        "edm-distance-table",
        "rdkit-sanitize/edm-bonds",
    }


def test_adding_a_protocol_is_one_registry_entry(monkeypatch):
    seen = []

    def heavy_atoms(context: EvaluationContext) -> Scores:
        seen.append(context)
        counts = [int((m.atomic_numbers > 1).sum()) for m in context.molecules]
        reasons = {j: ["toy: no heavy atom"] for j, c in enumerate(counts) if c == 0}
        return Scores(
            metrics={"heavy_atoms_mean": (float(np.mean(counts)), len(counts))}, reasons=reasons
        )

    monkeypatch.setitem(REGISTRY, "toy-heavy-atoms", Protocol("toy-heavy-atoms", "7", heavy_atoms))
    h2 = Molecule(np.array([1, 1]), np.array([[0.0, 0, 0], [0.74, 0, 0]]), name="H2")
    r = evaluate([OVERLAP, WATER, h2], max_strain_molecules=0)
    metric = r.metrics["heavy_atoms_mean"]
    assert (metric.value, metric.protocol, metric.version, metric.count) == (
        0.5,
        "toy-heavy-atoms",
        "7",
        2,
    )
    assert r.failures[2] == ("toy: no heavy atom",)  # index 1 of the scorable molecules
    assert len(seen) == 1 and seen[0].num_molecules == 3 and len(seen[0].molecules) == 2
    assert list(r.metrics)[-1] == "heavy_atoms_mean"


def test_context_computes_shared_bonds_once():
    ctx = EvaluationContext((WATER_BONDS, WATER), num_molecules=2, num_atoms=6)
    assert ctx.edm_bonds is ctx.edm_bonds and ctx.given_bonds is ctx.given_bonds
    assert ctx.given_bonds[1] is None and ctx.given_bond_problems == {1: ["bonds: no bonds given"]}
    np.testing.assert_array_equal(ctx.given_bonds[0], ctx.edm_bonds[0])
    assert ctx.reference_sample == [] and ctx.novelty_reference is None
    with pytest.raises(ValueError, match="bonds must be 'edm' or 'given'"):
        REGISTRY["rdkit-sanitize/edm-bonds"].score.func(ctx, bonds="own")
