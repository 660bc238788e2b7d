"""Every SymPy symbol tpcheck uses, made in one place with its assumptions.

``n`` is the width (d_model / hidden size). Declaring it positive lets SymPy simplify
``log(n**k)`` and compare growth rates without case splits.
"""

from __future__ import annotations

import functools
import re

import sympy
from sympy.parsing.sympy_parser import parse_expr

#: The width: the hidden size that the ModelSpec's factory receives.
n = sympy.Symbol("n", positive=True, integer=True)


#: Prefix of a dimension that is affine in ``n`` only up to rounding (``≈8*n/3``).
ROUNDED = "≈"


#: What a width expression may contain besides numbers: n, sqrt, Max and Min (Muon's LR
#: adjustment ``sqrt(Max(1, fan_out/fan_in))``), arithmetic and parentheses.
_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_NAME = re.compile(r"[A-Za-z_]\w*")
_NAMES = {"n": n, "sqrt": sympy.sqrt, "Max": sympy.Max, "Min": sympy.Min}
_OPERATORS = set(" +-*/(),")  # the comma separates Max's and Min's arguments
#: Bounds that keep a hostile plan from making SymPy compute for hours (``9**9**9``).
_MAX_CHARS, _MAX_POWER = 200, 16


@functools.lru_cache(maxsize=4096)
def parse(text: str) -> sympy.Expr:
    """Parse an expression written in ``n`` (as stored in JSON reports and plans); a rounded
    dimension's ``≈`` prefix is dropped.

    Plans are files people share, and SymPy parses text with ``eval``: so the text is first
    checked to hold nothing but numbers, ``n``, ``sqrt``, ``Max``, ``Min``, arithmetic and
    parentheses, and every power to have a small numeric exponent. Anything else raises
    ``ValueError``.
    """
    body = text.removeprefix(ROUNDED)
    rest = _NUMBER.sub(" ", body)
    names = set(_NAME.findall(rest))
    if names - _NAMES.keys():
        raise ValueError(f"it uses {', '.join(sorted(names - _NAMES.keys()))}")
    if len(body) > _MAX_CHARS or not set(_NAME.sub(" ", rest)) <= _OPERATORS:
        raise ValueError(f"only numbers, n, sqrt, Max, Min, + - * / ** and parentheses, at most "
                         f"{_MAX_CHARS} characters")
    tree = parse_expr(body, local_dict=dict(_NAMES), evaluate=False)
    if not isinstance(tree, sympy.Expr):
        raise ValueError("not a single expression")
    for power in tree.atoms(sympy.Pow):
        exponent = power.exp
        if not exponent.is_number or abs(float(exponent)) > _MAX_POWER:
            raise ValueError(f"a power's exponent must be a number of at most {_MAX_POWER} in "
                             "size")
    return sympy.sympify(body, locals=dict(_NAMES))
