"""Tests of EDM distance-table bond inference, valence tables and stability."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symgen.molecules.bonds import (
    EDM_BONDS1,
    EDM_BONDS2,
    EDM_BONDS3,
    EDM_MARGINS,
    allowed_valence,
    bond_matrix,
    edm_bond_orders,
    infer_bonds_edm,
    molecule_bond_orders,
    stability_charged,
    stability_edm,
    stability_edm_reference,
    stability_from_bonds,
)
from symgen.molecules.molecule import Molecule

# --- hand-built molecules (Å) -------------------------------------------------------------
_T = 1.09 / np.sqrt(3.0)
METHANE = (
    np.array([6, 1, 1, 1, 1]),
    np.array([[0, 0, 0], [_T, _T, _T], [-_T, -_T, _T], [-_T, _T, -_T], [_T, -_T, -_T]]),
)
ETHENE = (
    np.array([6, 6, 1, 1, 1, 1]),
    np.array(
        [
            [0, 0, 0.667],
            [0, 0, -0.667],
            [0, 0.923, 1.238],
            [0, -0.923, 1.238],
            [0, 0.923, -1.238],
            [0, -0.923, -1.238],
        ]
    ),
)
ACETYLENE = (
    np.array([6, 6, 1, 1]),
    np.array([[0, 0, 0.60], [0, 0, -0.60], [0, 0, 1.66], [0, 0, -1.66]]),
)
WATER = (np.array([8, 1, 1]), np.array([[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]))
# carbon with five hydrogens (trigonal bipyramid, C-H 1.09 Å): valence 5
CH5 = (
    np.array([6, 1, 1, 1, 1, 1]),
    np.array(
        [
            [0, 0, 0],
            [0, 0, 1.09],
            [0, 0, -1.09],
            [1.09, 0, 0],
            [-0.545, 0.944, 0],
            [-0.545, -0.944, 0],
        ]
    ),
)


def _batch(*mols, dtype=np.float64):
    n = max(len(z) for z, _ in mols)
    z = np.zeros((len(mols), n), dtype=np.int64)
    x = np.zeros((len(mols), n, 3), dtype=dtype)
    m = np.zeros((len(mols), n), dtype=bool)
    for i, (zi, xi) in enumerate(mols):
        z[i, : len(zi)], x[i, : len(zi)], m[i, : len(zi)] = zi, xi, True
    return z, x, m


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_known_molecules_stability(dtype):
    z, x, m = _batch(METHANE, ETHENE, ACETYLENE, WATER, CH5, dtype=dtype)
    res = stability_edm(z, x, m)
    assert res.molecule_stable.tolist() == [True, True, True, True, False]
    # the carbon of CH5 has valence 5, its hydrogens are fine
    assert res.valence[4, 0] == 5 and res.atom_stable[4].tolist() == [False] + [True] * 5
    assert res.atom_stable.sum() == 5 + 6 + 4 + 3 + 5
    a = infer_bonds_edm(z, x, m)
    assert a[1, 0, 1] == 2 and a[2, 0, 1] == 3 and a[0, 0, 1] == 1
    assert np.array_equal(a, np.swapaxes(a, -1, -2))
    assert not a[m == False].any()  # noqa: E712 - padding rows are empty


@pytest.mark.parametrize(
    "pair, dist, order",
    [
        ((6, 6), 1.639, 1),
        ((6, 6), 1.641, 0),  # single:  154 + 10 pm
        ((6, 6), 1.389, 2),
        ((6, 6), 1.391, 1),  # double:  134 + 5 pm
        ((6, 6), 1.229, 3),
        ((6, 6), 1.231, 2),  # triple:  120 + 3 pm
        ((6, 8), 1.249, 2),
        ((6, 8), 1.159, 3),  # C=O 120 + 5, C#O 113 + 3
        ((6, 1), 1.189, 1),
        ((6, 1), 1.191, 0),  # C-H 109 + 10
        ((1, 1), 0.50, 1),  # H-H single only (no double length)
        ((8, 9), 1.0, 1),  # O-F has no double length: single
        ((6, 13), 1.5, 0),  # C-Al has no tabulated length: no bond
    ],
)
def test_thresholds(pair, dist, order):
    z = np.array(pair)
    x = np.array([[0.0, 0.0, 0.0], [dist, 0.0, 0.0]])
    assert infer_bonds_edm(z, x)[0, 1] == order
    assert infer_bonds_edm(z[::-1].copy(), x)[1, 0] == order  # symmetric lookup


QM9_Z = [1, 6, 7, 8, 9]


@st.composite
def random_molecules(draw, max_atoms=9):
    k = draw(st.integers(1, max_atoms))
    z = draw(st.lists(st.sampled_from(QM9_Z + [16, 17]), min_size=k, max_size=k))
    coords = draw(st.lists(st.floats(-2.0, 2.0, allow_nan=False), min_size=3 * k, max_size=3 * k))
    return np.array(z), np.array(coords).reshape(k, 3)


@settings(max_examples=60, deadline=None)
@given(st.lists(random_molecules(), min_size=1, max_size=4))
def test_vectorized_matches_reference_loop(mols):
    z, x, m = _batch(*mols)
    res = stability_edm(z, x, m)
    for i, (zi, xi) in enumerate(mols):
        stable, n_stable, n = stability_edm_reference(zi.tolist(), xi.tolist())
        assert bool(res.molecule_stable[i]) == stable
        assert int(res.atom_stable[i].sum()) == n_stable and int(res.num_atoms[i]) == n


@settings(max_examples=30, deadline=None)
@given(random_molecules(), st.integers(0, 2**31 - 1))
def test_invariance_permutation_rotation_translation(mol, seed):
    z, x = mol
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    rot = q * np.sign(np.diag(r))
    perm = rng.permutation(len(z))
    a = infer_bonds_edm(z, x)
    b = infer_bonds_edm(z[perm], x[perm] @ rot.T + rng.normal(size=3))
    # boundary distances may flip under round-off; only compare pairs away from thresholds
    d = np.linalg.norm(x[:, None] - x[None], axis=-1) * 100
    thr = [
        t + margin
        for table, margin in zip((EDM_BONDS1, EDM_BONDS2, EDM_BONDS3), EDM_MARGINS, strict=False)
        for row in table.values()
        for t in row.values()
    ]
    safe = np.ones_like(a, dtype=bool)
    for t in thr:
        safe &= np.abs(d - t) > 1e-6
    # b[i, j] describes original atoms perm[i], perm[j]
    pp = np.ix_(perm, perm)
    assert np.array_equal(b[safe[pp]], a[pp][safe[pp]])


def test_padding_does_not_matter():
    z1, x1, m1 = _batch(WATER)
    z2, x2, m2 = _batch(WATER, ETHENE)
    x2[0, 3:] = 0.1  # garbage in the padding of water, near its atoms
    z2[0, 3:] = 6
    r1, r2 = stability_edm(z1, x1, m1), stability_edm(z2, x2, m2)
    assert r2.molecule_stable[0] == r1.molecule_stable[0]
    assert r2.valence[0, :3].tolist() == r1.valence[0].tolist()
    assert not r2.atom_stable[0, 3:].any()


def test_nan_and_unknown_elements_never_bond():
    z = np.array([6, 6, 0, 120])
    x = np.array([[0.0, 0, 0], [np.nan, 0, 0], [1.0, 0, 0], [-1.0, 0, 0]])
    assert not infer_bonds_edm(z, x).any()


def test_allowed_valence_tables():
    z = np.array([15, 15, 15, 16, 16, 6, 7])
    v = np.array([3, 5, 4, 4, 2, 4, 3])
    assert allowed_valence(z, v).tolist() == [True, True, False, True, False, True, True]
    # charged table: S allows 2/4/6 when neutral
    assert allowed_valence(z, v, table="charged").tolist() == [
        True,
        True,
        False,
        True,
        True,
        True,
        True,
    ]
    q = np.array([1, 0, 0, 0, 0, -1, 1])
    assert allowed_valence(z, np.array([4, 5, 5, 4, 4, 3, 4]), q, table="charged").all()
    with pytest.raises(ValueError, match="unknown valence table"):
        allowed_valence(z, v, table="nope")


def _glycine_zwitterion():
    """+H3N-CH2-COO-: atoms and bonds (geometry irrelevant for bond-based stability)."""
    z = np.array([7, 6, 6, 8, 8, 1, 1, 1, 1, 1])
    q = np.array([1, 0, 0, 0, -1, 0, 0, 0, 0, 0])
    bonds = np.array([[0, 1], [1, 2], [2, 3], [2, 4], [0, 5], [0, 6], [0, 7], [1, 8], [1, 9]])
    orders = np.array([1, 1, 2, 1, 1, 1, 1, 1, 1])
    return z, q, bond_matrix(10, bonds, orders)


def test_charge_aware_glycine_zwitterion():
    z, q, a = _glycine_zwitterion()
    m = np.ones((1, 10), bool)
    charged = stability_charged(z[None], q[None], a[None], m)
    assert charged.molecule_stable.tolist() == [True]
    # the neutral EDM table rejects N with 4 bonds and O with 1 bond
    neutral = stability_from_bonds(z[None], a[None], m, table="edm")
    assert neutral.atom_stable[0].tolist() == [False, True, True, True, False] + [True] * 5
    # wrong charges are caught: neutral N with 4 bonds
    q_bad = q.copy()
    q_bad[0] = 0
    assert stability_charged(z[None], q_bad[None], a[None], m).atom_stable[0, 0] == False  # noqa: E712


def test_bond_matrix_errors():
    with pytest.raises(ValueError, match="out of range"):
        bond_matrix(2, np.array([[0, 2]]), np.array([1]))
    with pytest.raises(ValueError, match="self-loop"):
        bond_matrix(2, np.array([[1, 1]]), np.array([1]))
    with pytest.raises(ValueError, match="bond orders"):
        bond_matrix(2, np.array([[0, 1]]), np.array([4]))
    with pytest.raises(ValueError, match="bond orders"):
        bond_matrix(2, np.array([[0, 1]]), np.array([1, 1]))


def test_empty_molecule_is_not_stable():
    res = stability_from_bonds(
        np.zeros((1, 2), np.int64), np.zeros((1, 2, 2), np.int64), np.zeros((1, 2), bool)
    )
    assert res.molecule_stable.tolist() == [False] and np.isnan(res.atom_stability)


def test_molecule_bond_orders_rule():
    z, x = ETHENE
    edm = infer_bonds_edm(z, x)
    assert edm[0, 1] == 2
    no_bonds = Molecule(z, x)
    np.testing.assert_array_equal(molecule_bond_orders(no_bonds), edm)
    np.testing.assert_array_equal(edm_bond_orders(no_bonds), edm)
    # own bonds win over geometry, even where the geometry says otherwise
    bonds = np.array([[0, 1], [0, 2], [0, 3], [1, 4], [1, 5]])
    own = Molecule(z, x, bonds=bonds, bond_orders=np.array([3, 1, 1, 1, 1]))
    assert molecule_bond_orders(own)[0, 1] == 3 and molecule_bond_orders(own)[1, 0] == 3
    np.testing.assert_array_equal(edm_bond_orders(own), edm)  # always geometry
    # bonds without orders are single bonds
    singles = Molecule(z, x, bonds=bonds)
    assert molecule_bond_orders(singles)[0, 1] == 1 and molecule_bond_orders(singles).sum() == 10
    # integer-typed coordinates are accepted (converted inside); 100 pm > 74 + 10 pm: no H-H bond
    h2 = Molecule(np.array([1, 1]), np.array([[0, 0, 0], [1, 0, 0]]))
    assert molecule_bond_orders(h2).tolist() == [[0, 0], [0, 0]]


@pytest.mark.parametrize(
    ("bonds", "orders", "problem"),
    [
        ([[0, 9]], [1], "out of range"),
        ([[1, 1]], [1], "self-loop"),
        ([[0, 1]], [4], "bond orders must be 1, 2 or 3"),
        ([[0, 1]], [1, 1], "1 bonds but 2 bond orders"),
        ([[0, 1], [1, 0]], [1, 2], "duplicate bonds"),
    ],
)
def test_molecule_bond_orders_unsound_bonds(bonds, orders, problem):
    z, x = ETHENE
    m = Molecule(z, x, bonds=np.array(bonds), bond_orders=np.array(orders))
    np.testing.assert_array_equal(molecule_bond_orders(m), infer_bonds_edm(z, x))
    with pytest.raises(ValueError, match=problem):
        molecule_bond_orders(m, unsound="raise")
    with pytest.raises(ValueError, match="unsound must be"):
        molecule_bond_orders(m, unsound="ignore")
