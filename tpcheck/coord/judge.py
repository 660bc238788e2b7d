"""Judge: map every record to the static prediction of its graph node, and give verdicts."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import sympy

from tpcheck.coord.fit import same, seed_mean, slope_over_seeds, table
from tpcheck.coord.record import Run
from tpcheck.coord.report import Prediction, Record, Slope
from tpcheck.sizes import Sizes, crossover_width, local_slope
from tpcheck.symbols import n as N

#: Largest |measured slope − predicted exponent| that still agrees. Slopes over 64..256 move by
#: ~0.05 with the seed and by ~0.1 where a few steps leave the linear regime.
TOLERANCE = 0.25


def records(runs: dict[tuple[int, int], Run], widths: tuple[int, ...], fitted: tuple[int, ...],
             seeds: int, steps: int, verdict_step: int, propagation: Any, sizes: Sizes | None,
             tolerance: float) -> tuple[Record, ...]:
    """Fit, predict and judge every activation recorded in all runs, in recording order."""
    ref = runs[widths[0], 0]
    names = [name for name in ref.size
             if all(name in runs[w, s].size for w in widths for s in range(seeds))]
    aliases: dict[str, list[str]] = {}
    for name in names:  # children are recorded before the module that wraps them
        path = split_element(name)[0]
        twin = next((c for c in aliases if ref.kind[name] == "module" and ref.kind[c] == "module"
                     and c.startswith(path + ".") and same(runs, c, name)), None)
        if twin is None:
            aliases[name] = []
        else:
            aliases[twin].append(name)
    out = []
    for name in aliases:
        # table[seed][t][width]: mean |x_t| ("size") or mean |x_t − x_0| ("delta")
        size, delta = (table(runs, name, what, widths, seeds, steps) for what in ("size",
                                                                                  "delta"))
        size_slope = slope_over_seeds([dict(zip(widths, size[s][0], strict=True))
                                        for s in range(seeds)], fitted)
        update_slopes = tuple(slope_over_seeds([dict(zip(widths, delta[s][t], strict=True))
                                                 for s in range(seeds)], fitted)
                              for t in range(1, steps + 1))
        pred = _at_these_widths(_prediction(propagation, ref, name, widths[0]), ref.kind[name],
                                sizes, fitted, tolerance)
        out.append(Record(
            name, ref.kind[name], ref.module_type[name], ref.shape[name],
            size=seed_mean(size, range(steps + 1)), update=seed_mean(delta, range(1, steps + 1)),
            size_slope=size_slope, update_slopes=update_slopes, prediction=pred,
            signature=ref.signature.get(split_element(name)[0], ref.module_type[name]),
            size_verdict=size_verdict(pred, size_slope, tolerance),
            update_verdict=update_verdict(pred.u, update_slopes[verdict_step - 1], tolerance,
                                           pred.node),
            aliases=tuple(aliases[name])))
    return tuple(out)


def size_verdict(pred: Prediction, slope: Slope, tolerance: float) -> str:
    """The init size: the measured slope within ``tolerance`` of the slope the static analysis
    predicts over the measured widths (``s_here``, or ``s`` where constants are unknown)."""
    early = _undecided(pred.s, slope, pred.node)
    if early:
        return early
    target = pred.s_here if pred.s_here is not None and math.isfinite(pred.s_here) else float(
        pred.s)
    return "agree" if abs(slope.mean - target) <= tolerance else "disagree"


def update_verdict(pred: sympy.Expr | None, slope: Slope, tolerance: float,
                    node: str | None) -> str:
    """The update: the same regime as ``u`` — Θ(1) (|slope| ≤ tolerance), grows, or shrinks.

    ``u`` is a one-step, leading-order exponent; after the few steps a coord check takes, at
    widths where lower-order terms still compete, the slope of a growing update lands anywhere
    above the tolerance, so the verdict is on the regime; the JSON keeps both numbers.
    """
    early = _undecided(pred, slope, node)
    if early:
        return early
    return "agree" if _regime(slope.mean, tolerance) == _regime(float(pred), 0.0) else "disagree"


def _regime(exponent: float, tolerance: float) -> str:
    """``grows``, ``shrinks`` or ``Θ(1)``: where an exponent sits against ±tolerance."""
    if exponent > tolerance:
        return "grows"
    return "shrinks" if exponent < -tolerance else "Θ(1)"


def _undecided(pred: sympy.Expr | None, slope: Slope, node: str | None) -> str | None:
    """The verdict where there is nothing to compare, else None.

    A prediction of −∞ (exactly zero: a zero init, nothing trainable upstream) agrees with a
    measurement that is exactly zero; against anything else it says nothing quantitative.
    """
    if node is None or pred is None or pred is sympy.nan or pred == sympy.oo:
        return "not predicted"
    if pred == -sympy.oo:
        return "agree" if slope.mean == -math.inf else "not predicted"
    if math.isnan(slope.mean):
        return "not measured"
    if slope.mean == -math.inf:  # a size was predicted, the activation stayed exactly zero
        return "disagree"
    return None


def _prediction(propagation: Any, run: Run, name: str, width: int) -> Prediction:
    """The static (s, u) of the graph node that computes record ``name``.

    A module's output is the last node, in graph order, inside that module (its own ops or
    its submodules') with the recorded shape; logits are the k-th SDPA call of the module.
    """
    if propagation is None:
        return Prediction(None, why="no static analysis")
    path, element = split_element(name)
    kind = run.kind[name]
    if kind == "module" and run.calls[path.partition("@")[0]] > 1:
        return Prediction(None, why="module called several times per forward: the graph does "
                                    "not say which node ends which call")
    nodes = propagation.nodes
    graph = propagation.measurement.classification.graph
    if kind == "output":
        index = int(element[1:-1]) if element[1:-1].isdigit() else 0
        outs = [o for o in propagation.outputs if o in nodes]
        node = outs[index] if index < len(outs) else None
    elif kind == "logits":
        return _logits_prediction(propagation, name)
    else:
        inside = [k for k, ne in nodes.items()
                  if ne.module == path or ne.module.startswith(path + ".")]
        matches = [k for k in inside if _shape_at(graph, k, width) == run.shape[name]]
        node = matches[-1] if matches else None
        shapes = [run.shape[k] for k in run.shape if split_element(k)[0] == path]
        if shapes.count(run.shape[name]) > 1:
            # several outputs of one shape (adaLN's shift/scale/gate chunks): the graph does
            # not say which is which, but if every node leaving the module predicts the same,
            # the prediction does not depend on it
            leaving = [k for k in matches if any(
                not (nodes[v].module == path or nodes[v].module.startswith(path + "."))
                for v, _ in graph.users(k) if v in nodes) or k in propagation.outputs]
            if len({(nodes[k].s, nodes[k].u) for k in leaving}) != 1:
                return Prediction(None, why="several outputs of the same shape")
            node = leaving[-1]
    if node is None:
        return Prediction(None, why="no graph node with this module and shape")
    return Prediction(node, nodes[node].s, nodes[node].u)


def _at_these_widths(pred: Prediction, kind: str, sizes: Sizes | None, widths: tuple[int, ...],
                     tolerance: float) -> Prediction:
    """Add the finite-width slope of the init size, and the width where ``s`` takes over."""
    if sizes is None or pred.node is None or pred.s is None:
        return pred
    table = sizes.logits if kind == "logits" else sizes.nodes
    values = table.get(pred.node)
    if values is None:
        return pred
    here = local_slope(values[[sizes.widths.index(w) for w in widths]], widths)
    s_from = None
    if pred.s.is_finite and abs(here - float(pred.s)) > tolerance:
        s_from = crossover_width(values, sizes.widths, float(pred.s), tolerance)
    return replace(pred, s_here=here, s_from=s_from)


def _logits_prediction(propagation: Any, name: str) -> Prediction:
    from tpcheck.propagate import Exp, logits_exponents

    path, _, call = name.partition("@")
    module = path.removesuffix("logits").removesuffix(".")
    k = int(call) if call else 1
    graph = propagation.measurement.classification.graph
    sdpa = [nm for nm, ne in propagation.nodes.items()
            if ne.module == module and graph.node(nm).target.startswith(
                "aten.scaled_dot_product_attention")]
    if len(sdpa) < k:
        return Prediction(None, why="no SDPA node in this module")
    node = graph.node(sdpa[k - 1])
    q, key = (propagation.nodes[node.args[i].name] for i in (0, 1))
    s, u = logits_exponents(graph, node, Exp(q.s, q.u), Exp(key.s, key.u))
    return Prediction(node.name, s, u)


def split_element(name: str) -> tuple[str, str]:
    """``blocks.0[1]`` → (``blocks.0``, ``[1]``)."""
    cut = name.find("[")
    return (name, "") if cut < 0 else (name[:cut], name[cut:])


def _shape_at(graph: Any, node: str, width: int) -> tuple[int, ...] | None:
    shape = graph.shape(node)
    if shape is None or any(d is None for d in shape):
        return None
    return tuple(int(d.subs(N, width)) for d in shape)
