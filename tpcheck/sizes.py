"""Sizes: every activation's init size at given widths, constants included.

:mod:`tpcheck.propagate` gives the leading exponent ``s`` of each activation: what happens
as ``n → ∞``. At the widths a coordinate check can afford, a growing term with a small
constant is often still below a Θ(1) term: U-ViT's residual stream adds a branch of size
``0.02² · n`` (two std-0.02 layers in series) to a stream of size 1, so the stream grows like
``n`` only once ``n`` is in the thousands. To hold a measurement at ``n ≤ 256`` against the
static analysis, this stage evaluates the same graph with the measured constants: the
root-mean-square of every node at every requested width, from the fitted init sizes and
multipliers (:mod:`tpcheck.measure`), the fan sizes (:mod:`tpcheck.widths`) and the same
per-op rules as docs/theory.md §4, applied to second moments:

* a contraction sums ``fan_in`` independent products (CLT): ``E[z²] = fan_in·E[w²]·E[x²]``;
* independent sums add second moments, independent products multiply them;
* a norm over the width gives 1 (times its gain), an attention average keeps ``E[v²]``;
* an elementwise nonlinearity maps a centred Gaussian of that second moment exactly
  (Gauss–Hermite quadrature).

From these, :func:`local_slope` gives the slope a measurement over a range of widths should
see, and :func:`crossover_width` the width from which the leading exponent shows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import sympy

from tpcheck.capture import OpNode
from tpcheck.classify import Use
from tpcheck.exponents import Fit, fit_power_law
from tpcheck.graph import EMBEDDING, MATMUL, NORMS, SOFTMAX, OpGraph, constant_factor, op_name
from tpcheck.measure import Measurement
from tpcheck.symbols import n as N

#: Widths to look for the crossover on: a geometric grid far beyond any trainable model.
FAR_WIDTHS = tuple(round(2 ** (k / 2)) for k in range(8, 41))  # 16 … 1,048,576

_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(60)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()  # E[f(z)] for z ~ N(0, 1)
_ELEMENTWISE = {
    "gelu": lambda x: 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0))),
    "silu": lambda x: x / (1.0 + np.exp(-x)),
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
}
_PASS = {"getitem", "unsqueeze", "squeeze", "reshape", "view", "transpose", "permute",
         "flatten", "to", "_to_copy", "contiguous", "clone", "expand", "slice", "select",
         "chunk", "split", "unbind", "pad", "alias", "t", "repeat", "dropout", "mean"}


@dataclass(frozen=True)
class Sizes:
    """Predicted root-mean-square at init of every tensor-valued node, at ``widths``."""

    widths: tuple[int, ...]
    nodes: dict[str, np.ndarray]
    logits: dict[str, np.ndarray]  # SDPA node -> its attention logits ``scale·qᵀk``


def node_sizes(measurement: Measurement, widths: Sequence[int]) -> Sizes:
    """Root-mean-square of every tensor-valued node at init, at each of ``widths``.

    Constants that change with the width (``x / m``, a table divided by ``√n``) and init sizes
    are fitted over the traced widths and extrapolated as power laws, so any width works.
    """
    graph = measurement.classification.graph
    walk = _Walk(graph, measurement, np.asarray(widths, dtype=float))
    moments = walk.run()
    return Sizes(tuple(int(w) for w in widths),
                 {k: np.sqrt(m) for k, m in moments.items() if graph.shape(k) is not None},
                 {k: np.sqrt(m) for k, m in walk.logits.items()})


def local_slope(values: np.ndarray, widths: Sequence[int]) -> float:
    """Least-squares slope of ``log(values)`` on ``log(widths)``; -inf if all zero."""
    if not np.all(np.isfinite(values)):
        return math.nan
    if np.all(values == 0):
        return -math.inf
    if np.any(values <= 0):
        return math.nan
    x, y = np.log(np.asarray(widths, dtype=float)), np.log(values)
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / (x * x).sum())


def crossover_width(values: np.ndarray, widths: Sequence[int], exponent: float,
                    tolerance: float) -> int | None:
    """The smallest of ``widths`` from which every local slope is within ``tolerance`` of
    ``exponent`` (None: not within these widths)."""
    logs_w = np.log(np.asarray(widths, dtype=float))
    if np.any(values <= 0) or not np.all(np.isfinite(values)):
        return None
    slopes = np.diff(np.log(values)) / np.diff(logs_w)
    ok = np.abs(slopes - exponent) <= tolerance
    if not ok[-1]:
        return None
    first = len(ok)
    while first > 0 and ok[first - 1]:
        first -= 1
    return int(widths[first])


# --------------------------------------------------------------------------- the walk


class _Walk:
    """Second moments ``E[x²]`` of every node, in graph order, as arrays over the widths."""

    def __init__(self, graph: OpGraph, measurement: Measurement, widths: np.ndarray) -> None:
        self.graph = graph
        self.measurement = measurement
        self.widths = widths
        self.logits: dict[str, np.ndarray] = {}
        self.uses: dict[str, list[Use]] = {}  # node -> the parameter uses it computes
        for tclass in measurement.classification.tensors.values():
            for use in tclass.uses:
                self.uses.setdefault(use.node, []).append(use)

    def run(self) -> dict[str, np.ndarray]:
        graph = self.graph
        param_of = {node: name for name, node in graph.param_nodes.items()}
        state: dict[str, np.ndarray] = {}
        ones = np.ones_like(self.widths)
        for node in graph.shapes.nodes:
            if node.kind == "param":
                init = self.measurement.tensors[param_of[node.name]].init
                state[node.name] = self._extrapolate(init) ** 2
                continue
            if node.kind in ("input", "buffer", "constant"):
                state[node.name] = ones
                continue
            if node.kind == "output":
                continue
            state[node.name] = self._op(node, state)
        return state

    # ------------------------------------------------------------------ ops

    def _op(self, node: OpNode, state: dict[str, np.ndarray]) -> np.ndarray:
        op = op_name(node.target)
        refs = [(pos, ref.name) for pos, ref in node.refs() if ref.name in state]
        ms = [state[r] for _, r in refs]
        numbers = [a for a in node.args if isinstance(a, (int, float)) and not isinstance(a, bool)]
        ones = np.ones_like(self.widths)
        if not ms:
            return ones
        if op in NORMS:
            return self._norm(node, state)
        if any(u.kind == "contraction" for u in self.uses.get(node.name, ())):
            return self._contraction(node, op, refs, state)
        if op in ("add", "sub", "rsub"):
            return sum(ms) + sum(float(c) ** 2 for c in numbers)
        if op == "mul":
            out = ones
            for m in ms:
                out = out * m
            return out * self._constant(node) ** 2
        if op in ("div", "true_divide"):
            out = ms[0] / ms[1] if len(ms) > 1 else ms[0]
            return out * self._constant(node) ** 2
        if op in SOFTMAX:
            length = self._dim(refs[0][1], -1)
            return 1.0 / length ** 2
        if op == "scaled_dot_product_attention":  # an average of the values
            self.logits[node.name] = self._logits(node, refs, state)
            return next((state[r] for pos, r in refs if pos == "2"), ms[-1])
        if op in MATMUL and len(ms) >= 2:
            return self._dim(refs[0][1], -1) * ms[0] * ms[1]
        if op in EMBEDDING:
            return ms[0]
        if op in ("cos", "sin"):
            return 0.5 * ones
        if op in _ELEMENTWISE:
            return _gaussian_second_moment(_ELEMENTWISE[op], ms[0])
        if op == "pow" and len(node.args) > 1 and isinstance(node.args[1], (int, float)):
            return ms[0] ** float(node.args[1])
        if op in ("rsqrt", "sqrt", "reciprocal"):
            return ms[0] ** {"rsqrt": -0.5, "sqrt": 0.5, "reciprocal": -1.0}[op]
        if op == "cat":
            return self._cat(refs, state)
        if op in _PASS or len(ms) == 1:
            return ms[0]
        return np.maximum.reduce(ms)

    def _contraction(self, node: OpNode, op: str, refs: list[tuple[str, str]],
                     state: dict[str, np.ndarray]) -> np.ndarray:
        """``W x (+ b)``: each weight's CLT sum over its fan-in, plus elementwise terms."""
        uses = self.uses[node.name]
        operands = {u.operand for u in uses}
        acts = [state[r] for pos, r in refs
                if r not in operands and not (op in EMBEDDING and pos == "1")]
        x = np.maximum.reduce(acts) if acts else np.ones_like(self.widths)
        total = np.zeros_like(self.widths)
        for use in uses:
            w = state[use.operand]
            if use.kind != "contraction":
                total = total + w  # a bias
            elif op in EMBEDDING:
                total = total + w  # one row per index
            else:
                total = total + self._at(use.fan_in) * w * x
        return total

    def _norm(self, node: OpNode, state: dict[str, np.ndarray]) -> np.ndarray:
        """A norm has unit second moment, times its gain's, plus its bias's."""
        out = np.ones_like(self.widths)
        for use in self.uses.get(node.name, ()):  # layer_norm(x, shape, weight, bias)
            w = state[use.operand]
            out = out * w if use.pos == "2" else out + w
        return out

    def _logits(self, node: OpNode, refs: list[tuple[str, str]],
                state: dict[str, np.ndarray]) -> np.ndarray:
        """``scale·qᵀk``: a CLT sum over the head dim, times the scale squared."""
        q = next(r for pos, r in refs if pos == "0")
        k = next((r for pos, r in refs if pos == "1"), q)
        d = self._dim(q, -1)
        traced = {w: self.graph.at_width(node.name, w).kwargs.get("scale")
                  for w in self.graph.shapes.widths}
        scale = (self._extrapolate(fit_power_law({w: float(v) for w, v in traced.items()}))
                 if all(v is not None for v in traced.values()) else 1.0 / np.sqrt(d))
        return scale ** 2 * d * state[q] * state[k]

    def _cat(self, refs: list[tuple[str, str]], state: dict[str, np.ndarray]) -> np.ndarray:
        """Concatenation: the second moments weighted by how many entries each input gives."""
        total = np.zeros_like(self.widths)
        count = np.zeros_like(self.widths)
        for _, r in refs:
            numel = self._numel(r)
            total = total + numel * state[r]
            count = count + numel
        return total / count

    # ------------------------------------------------------------------ helpers

    def _extrapolate(self, fit: Fit) -> np.ndarray:
        """A per-width measurement, fitted as a power law of n, at this walk's widths."""
        return np.asarray(fit.predict(self.widths), dtype=float)

    def _constant(self, node: OpNode) -> np.ndarray:
        """The numeric factor a mul/div/linear node applies, extrapolated from its traces."""
        traced = {}
        for w in self.graph.shapes.widths:
            factor = constant_factor(self.graph.at_width(node.name, w))
            if not factor:
                return np.ones_like(self.widths)
            traced[w] = factor
        return self._extrapolate(fit_power_law(traced))

    def _at(self, expr: sympy.Expr) -> np.ndarray:
        f = sympy.lambdify(N, expr, "numpy")
        return np.broadcast_to(np.asarray(f(self.widths), dtype=float), self.widths.shape)

    def _dim(self, name: str, axis: int) -> np.ndarray:
        shape = self.graph.shape(name)
        if not shape or shape[axis] is None:
            return np.ones_like(self.widths)
        return self._at(shape[axis])

    def _numel(self, name: str) -> np.ndarray:
        shape = self.graph.shape(name)
        out = np.ones_like(self.widths)
        for d in shape or ():
            if d is not None:
                out = out * self._at(d)
        return out


def _gaussian_second_moment(f, m: np.ndarray) -> np.ndarray:
    """``E[f(x)²]`` for ``x ~ N(0, m)``, elementwise over the widths."""
    sigma = np.sqrt(m)[:, None]
    return (f(sigma * _NODES[None, :]) ** 2 * _WEIGHTS[None, :]).sum(axis=1)
