"""Error-free transformations on numpy arrays (Knuth's TwoSum, Dekker's split and product).

``two_sum(a, b) = (s, e)`` with ``s + e = a + b`` exactly; ``two_prod(a, b) = (p, e)`` with
``p + e = a * b`` exactly for ``|a|, |b|`` well inside the float range. The Pauli engine's
double-double arithmetic and the resonant level's cancellation-free frame build on them.
"""

from __future__ import annotations

#: 2**27 + 1: Dekker's splitter for float64.
SPLIT = 134217729.0


def two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def split(a):
    c = SPLIT * a
    hi = c - (c - a)
    return hi, a - hi


def two_prod(a, b):
    p = a * b
    ah, al = split(a)
    bh, bl = split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl
