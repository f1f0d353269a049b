"""Element vocabularies and the periodic-table facts symgen needs.

The vocabularies fix the meaning of one-hot atom-type channels:

* :data:`QM9_ELEMENTS` — ``("H", "C", "N", "O", "F")``, the five elements of QM9;
* :data:`GEOM_ELEMENTS` — the 16 elements of GEOM-DRUG as used by EDM/MiDi:
  H, B, C, N, O, F, Al, Si, P, S, Cl, As, Br, I, Hg, Bi.

Bond orders use a kekulized encoding (no aromatic class): ``0`` none, ``1`` single,
``2`` double, ``3`` triple. Kekulization makes valence a plain sum of bond orders, and every
aromatic system has a Kekulé structure, so nothing is lost.
"""

__all__ = [
    "QM9_ELEMENTS",
    "GEOM_ELEMENTS",
    "ATOMIC_NUMBERS",
    "SYMBOLS",
    "BOND_ORDERS",
    "UnknownElementError",
    "atomic_number",
    "symbol",
]

QM9_ELEMENTS: tuple[str, ...] = ("H", "C", "N", "O", "F")
GEOM_ELEMENTS: tuple[str, ...] = (
    "H",
    "B",
    "C",
    "N",
    "O",
    "F",
    "Al",
    "Si",
    "P",
    "S",
    "Cl",
    "As",
    "Br",
    "I",
    "Hg",
    "Bi",
)
#: Kekulized bond-order classes: index = bond order, 0 = no bond.
BOND_ORDERS: tuple[int, ...] = (0, 1, 2, 3)

_TABLE = (
    "H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As "
    "Se Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd "
    "Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi"
).split()
#: Symbol -> atomic number, for elements up to Bi (Z = 83).
ATOMIC_NUMBERS: dict[str, int] = {s: z for z, s in enumerate(_TABLE, start=1)}
#: Atomic number -> symbol.
SYMBOLS: dict[int, str] = {z: s for s, z in ATOMIC_NUMBERS.items()}


class UnknownElementError(ValueError):
    """Raised for an element symbol or atomic number symgen does not know."""


def atomic_number(sym: str) -> int:
    """Atomic number of an element symbol (case-insensitive), e.g. ``atomic_number("Cl") == 17``."""
    key = sym.strip().capitalize()
    if key not in ATOMIC_NUMBERS:
        raise UnknownElementError(f"unknown element symbol {sym!r}")
    return ATOMIC_NUMBERS[key]


def symbol(z: int) -> str:
    """Element symbol of an atomic number, e.g. ``symbol(6) == "C"``."""
    if int(z) not in SYMBOLS:
        raise UnknownElementError(f"unknown atomic number {z!r}")
    return SYMBOLS[int(z)]
