"""Every SymPy symbol tpcheck uses, made in one place with its assumptions.

``n`` is the width (d_model / hidden size). Declaring it positive lets SymPy simplify
``log(n**k)`` and compare growth rates without case splits.
"""

from __future__ import annotations

import sympy

#: The width: the hidden size that the ModelSpec's factory receives.
n = sympy.Symbol("n", positive=True, integer=True)


#: Prefix of a dimension that is affine in ``n`` only up to rounding (``≈8*n/3``).
ROUNDED = "≈"


def parse(text: str) -> sympy.Expr:
    """Parse an expression written in ``n`` (as stored in JSON reports and plans); a rounded
    dimension's ``≈`` prefix is dropped."""
    return sympy.sympify(text.removeprefix(ROUNDED), locals={"n": n})
