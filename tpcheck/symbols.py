"""Every SymPy symbol tpcheck uses, made in one place with its assumptions.

``n`` is the width (d_model / hidden size). Declaring it positive lets SymPy simplify
``log(n**k)`` and compare growth rates without case splits.
"""

from __future__ import annotations

import sympy

#: The width: the hidden size that the ModelSpec's factory receives.
n = sympy.Symbol("n", positive=True, integer=True)


def parse(text: str) -> sympy.Expr:
    """Parse an expression written in ``n`` (as stored in JSON reports and plans)."""
    return sympy.sympify(text, locals={"n": n})
