"""Check: apply the rule catalogue to the measured, propagated model and collect findings.

Each rule's scope says what it is evaluated on: every tensor use (``tensor``), every init
fit (``measurement``), every attention op (``attention``), every activation (``activation``),
every optimizer param group (``group``), the optimizers themselves (``optimizer``) or a graph
query (``graph``). The facts of a subject are SymPy numbers; a finding is raised where the
rule's violation relation holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import sympy

from tpcheck.exponents import POWER_LAW_TOLERANCE, fit_power_law
from tpcheck.graph import SEE_THROUGH, OpGraph, op_name
from tpcheck.measure import Measurement, TensorMeasure, UseExponents
from tpcheck.propagate import ATTENTION, Propagation, gradient_exponent
from tpcheck.rules import Rule, by_code
from tpcheck.symbols import n
from tpcheck.widths import is_infinite

#: Rules about a tensor's update: evaluated only for tensors the optimizer trains.
_UPDATE_FACTS = {"U", "expected_U", "c", "shrink"}
#: Zero stays zero through these (φ(0) = 0), so a zero weight's output stays zero.
_ZERO_PRESERVING = {"gelu", "silu", "relu", "tanh", "neg", "mul", "dropout", "leaky_relu",
                    "hardtanh"}


@dataclass(frozen=True)
class Finding:
    """One violation: which rule, on which tensor or node, what was found and expected."""

    rule: str
    name: str
    severity: str
    message: str
    expected: str
    found: str
    tensor: str | None = None
    node: str | None = None
    module: str = ""
    source: str | None = None
    scope: str = "tensor"

    @property
    def subject(self) -> str:
        return self.tensor or self.node or ""


def check(propagation: Propagation, rules: tuple[Rule, ...]) -> list[Finding]:
    """Every finding of ``rules`` on the model, in graph order within each scope."""
    measurement = propagation.measurement
    findings: list[Finding] = []
    for rule in rules:
        if rule.scope == "tensor":
            findings += _tensor_rule(rule, measurement)
        elif rule.scope == "measurement":
            findings += _measurement_rule(rule, measurement)
        elif rule.scope == "attention":
            findings += _attention_rule(rule, measurement)
        elif rule.scope == "activation":
            findings += _activation_rule(rule, propagation)
        elif rule.scope == "group":
            findings += _group_rule(rule, propagation)
        elif rule.scope == "optimizer":
            findings += _optimizer_rule(rule, measurement)
        elif rule.scope == "graph" and rule.code == "TP106":
            findings += _zero_chains(rule, measurement)
    return findings


def evaluate(rule: Rule, facts: dict[str, Any]) -> tuple[bool, Any, Any]:
    """``(violated, found, expected)`` for one subject; unknown facts skip the rule."""
    found = _value(rule.found, facts)
    expected = _value(rule.expected, facts)
    if found is None or expected is None:
        return False, found, expected
    needed = _symbols(rule.violation)
    values = {**facts, "found": found, "expected": expected}
    items = []
    for name in needed:
        value = values.get(name)
        if not isinstance(value, (sympy.Basic, int, bool)):
            return False, found, expected
        items.append((name, value if isinstance(value, sympy.Basic) else sympy.sympify(value)))
    return _holds((rule.code, tuple(items))), found, expected


@lru_cache(maxsize=65536)
def _holds(key: tuple) -> bool:
    code, items = key
    cond = by_code()[code].condition
    value = cond.xreplace({sympy.Symbol(k): v for k, v in items})
    return value is sympy.true or value is True


@lru_cache(maxsize=512)
def _symbols(text: str) -> tuple[str, ...]:
    """The fact names a rule's condition reads, in a stable order."""
    return tuple(sorted(str(s) for s in _parsed(text).free_symbols))


@lru_cache(maxsize=4096)
def _parsed(text: str) -> Any:
    """A rule's ``found`` / ``expected`` / ``violation`` text as SymPy, parsed once."""
    try:
        return sympy.sympify(text, locals={"oo": sympy.oo})
    except (sympy.SympifyError, SyntaxError, TypeError):
        return text


def _value(text: str, facts: dict[str, Any]) -> Any:
    if text in facts:
        return facts[text]
    expr = _parsed(text)
    if not isinstance(expr, sympy.Basic):
        return expr
    mapping = {}
    for symbol in expr.free_symbols:
        value = facts.get(str(symbol))
        if isinstance(value, sympy.Basic):
            mapping[symbol] = value
        elif str(symbol) != "n":
            return None
    return expr.xreplace(mapping) if mapping else expr


# --- tensors -----------------------------------------------------------------------------


def tensor_facts(tm: TensorMeasure, ue: UseExponents, base: int,
                 decoupled: bool) -> dict[str, Any]:
    """The facts a tensor rule's condition is written in."""
    facts: dict[str, Any] = {
        "I": ue.I, "a": ue.a, "b": tm.b, "alpha_in": sympy.Integer(ue.alpha_in),
        "alpha_out": sympy.Integer(ue.alpha_out), "expected_I": ue.expected_I,
        "role": ue.role, "tensor": tm.name, "fan_in": ue.use.fan_in,
        "family": tm.family or "",
    }
    if ue.U is not None and tm.c is not None:
        facts.update(U=ue.U, c=tm.c, expected_U=ue.expected_U)
        shrink = tm.shrink
        if shrink is not None and decoupled:
            facts["shrink"] = shrink.exponent
    if ue.a != 0:
        at_base = ue.multiplier.values.get(base)
        if at_base is not None:
            facts["multiplier_at_base"] = sympy.nsimplify(round(at_base, 6))
    fan_in = sympy.expand(ue.use.fan_in)
    if ue.use.kind == "contraction" and is_infinite(fan_in):
        facts["finite_part"] = fan_in.subs(n, 0)
    return facts


def _decoupled(m: Measurement, tm: TensorMeasure) -> bool:
    return any(o.name == tm.optimizer and o.decoupled_weight_decay for o in m.optimizers)


def _tensor_rule(rule: Rule, m: Measurement) -> list[Finding]:
    out = []
    base = m.classification.graph.shapes.capture.spec.base
    for name, tm in m.tensors.items():
        tclass = m.classification.tensors[name]
        if rule.code == "TP002":
            if tclass.role == "unused":
                out.append(_finding(rule, {"tensor": name}, "0", "0", tensor=name,
                                    source=tclass.defined_at))
            continue
        if rule.code == "TP501":
            out += _tied(rule, tm, m)
            continue
        multi_role = len(tclass.roles) > 1
        seen: set[tuple] = set()
        for ue in tm.uses:
            if rule.roles and ue.role not in rule.roles:
                continue
            if multi_role and rule.code[:3] in ("TP1", "TP2"):
                continue  # a tied tensor's init and LR are judged once, by TP501
            facts = tensor_facts(tm, ue, base, _decoupled(m, tm))
            if not tclass.trainable and _uses_update(rule):
                continue
            violated, found, expected = evaluate(rule, facts)
            key = (ue.role, str(found), str(expected))
            if violated and key not in seen:
                seen.add(key)
                out.append(_finding(rule, facts, found, expected, tensor=name,
                                    node=ue.node, module=ue.use.module,
                                    source=tclass.defined_at or ue.use.source))
    return out


def _uses_update(rule: Rule) -> bool:
    text = f"{rule.found} {rule.expected} {rule.violation}"
    return any(f in text.replace("(", " ").replace(")", " ").split() for f in _UPDATE_FACTS)


def _tied(rule: Rule, tm: TensorMeasure, m: Measurement) -> list[Finding]:
    """A tensor used in several roles must meet each role's I and U through its multipliers."""
    tclass = m.classification.tensors[tm.name]
    if len(tclass.roles) < 2:
        return []
    failing = []
    for ue in tm.uses:
        bad_i = ue.I != ue.expected_I and not (ue.role == "output" and ue.I == sympy.oo)
        bad_u = ue.U is not None and ue.U != ue.expected_U
        if bad_i or bad_u:
            failing.append(ue)
    if not failing:
        return []
    roles = " and ".join(tclass.roles)
    facts = {"tensor": tm.name, "roles": roles, "mixed_roles_fail": sympy.true}
    ue = failing[0]
    found = ", ".join(f"{u.role}: I={u.I}, U={u.U}" for u in tm.uses)
    expected = ", ".join(f"{u.role}: I={u.expected_I}, U={u.expected_U}" for u in tm.uses)
    return [_finding(rule, facts, found, expected, tensor=tm.name, node=ue.node,
                     module=ue.use.module, source=tclass.defined_at or ue.use.source)]


def _finding(rule: Rule, facts: dict[str, Any], found: Any, expected: Any, *,
             tensor: str | None = None, node: str | None = None, module: str = "",
             source: str | None = None) -> Finding:
    words = {"tensor": tensor or "", "node": node or ""}
    words.update(facts)
    words.update(found=found, expected=expected)
    if isinstance(found, sympy.Basic) and isinstance(expected, sympy.Basic):
        gap = expected - found
        words["gap"] = f"({gap})" if gap.is_Add or (gap.is_Rational and not gap.is_Integer) else gap
    try:
        message = rule.message.format(**{k: _show(v) for k, v in words.items()})
    except (KeyError, IndexError):
        message = rule.message
    return Finding(rule.code, rule.name, rule.severity, message, _show(expected), _show(found),
                   tensor, node, module, source, rule.scope)


def _show(value: Any) -> str:
    if isinstance(value, sympy.Basic):
        if value == sympy.oo:
            return "∞"
        if value == -sympy.oo:
            return "-∞"
        return str(value)
    return str(value)


# --- init fits, attention, activations, zero chains ---------------------------------------


def _measurement_rule(rule: Rule, m: Measurement) -> list[Finding]:
    out = []
    for name, tm in m.tensors.items():
        if tm.init.exponent == sympy.oo or m.classification.tensors[name].role == "unused":
            continue
        facts = {"residual": sympy.Float(round(tm.init.residual, 3)),
                 "tolerance": sympy.Float(POWER_LAW_TOLERANCE), "tensor": name,
                 "sizes": ", ".join(f"n={w}: {v:.3g}" for w, v in tm.init.values.items())}
        violated, found, expected = evaluate(rule, facts)
        if violated:
            out.append(_finding(rule, facts, found, expected, tensor=name,
                                source=m.classification.tensors[name].defined_at))
    return out


def _attention_rule(rule: Rule, m: Measurement) -> list[Finding]:
    out = []
    for att in m.classification.attention:
        facts: dict[str, Any] = {"node": att.node, "module": att.module or att.node}
        if att.head_dim is None:  # TP302: the head dim is no p·n + q
            facts["head_dim_affine"] = sympy.false
        else:
            facts["head_dim_affine"] = sympy.true
            facts["delta"] = sympy.Integer(int(is_infinite(att.head_dim)))
            facts["k"] = fit_power_law(att.scales).exponent  # scale ∝ n^-k
            facts["head_dim"] = att.head_dim
        violated, found, expected = evaluate(rule, facts)
        if violated:
            out.append(_finding(rule, facts, found, expected, node=att.node,
                                module=att.module, source=att.source))
    return out


def _group_rule(rule: Rule, p: Propagation) -> list[Finding]:
    """TP402: Adam's ε against each tensor's gradient, one finding per param group."""
    m = p.measurement
    groups: dict[str, list[tuple[TensorMeasure, sympy.Expr]]] = {}
    for tm in m.tensors.values():
        if tm.family != "adam" or tm.eps is None or tm.group is None:
            continue
        grads = [gradient_exponent(p, ue) for ue in tm.uses]
        grads = [g for g in grads if g != -sympy.oo]
        if grads:
            groups.setdefault(tm.group, []).append((tm, max(grads, key=float)))
    out = []
    for group, members in groups.items():
        failing = [(tm, g) for tm, g in members
                   if evaluate(rule, {"e": tm.eps.exponent, "grad": g})[0]]
        if not failing:
            continue
        tm, g = max(failing, key=lambda item: float(item[1] + item[0].eps.exponent))
        names = [f.name for f, _ in failing]
        k, _, index = group.partition(".")  # "optimizer.group"; the optimizer is named
        label = index if len(m.optimizers) == 1 else f"{index} of optimizer {k}"
        facts = {"e": tm.eps.exponent, "grad": g, "tensor": tm.name, "group": label,
                 "optimizer": tm.optimizer or "", "count": len(failing),
                 "eps": f"{tm.eps.values[min(tm.eps.values)]:g}",
                 "others": _others(names)}
        _, found, expected = evaluate(rule, facts)
        tclass = m.classification.tensors[tm.name]
        out.append(_finding(rule, facts, found, expected, tensor=tm.name,
                            source=tclass.defined_at))
    return out


def _others(names: list[str]) -> str:
    return "" if len(names) == 1 else f" and {len(names) - 1} more"


def _optimizer_rule(rule: Rule, m: Measurement) -> list[Finding]:
    """TP403 (a trainable tensor in no param group), TP404 (an optimizer tpcheck does not
    know: said once, with the family it is treated as)."""
    out = []
    if rule.code == "TP403":
        for name in m.unoptimized:
            facts = {"tensor": name, "optimized": sympy.false,
                     "optimizers": ", ".join(o.name for o in m.optimizers)}
            _, found, expected = evaluate(rule, facts)
            out.append(_finding(rule, facts, found, expected, tensor=name,
                                source=m.classification.tensors[name].defined_at))
    elif rule.code == "TP404":
        for opt in m.optimizers:
            facts = {"optimizer": opt.name, "family": opt.family,
                     "known": sympy.true if opt.known else sympy.false}
            violated, found, expected = evaluate(rule, facts)
            if violated:
                out.append(_finding(rule, facts, found, expected, node=opt.name))
    return out


def _activation_rule(rule: Rule, p: Propagation) -> list[Finding]:
    out = []
    if rule.code == "TP502":
        for node, k in p.width_reductions.items():
            info = p.nodes.get(node)
            facts = {"k": k, "node": _node_label(node, info.module if info else "")}
            violated, found, expected = evaluate(rule, facts)
            if violated:
                out.append(_finding(rule, facts, found, expected, node=node,
                                    module=info.module if info else "",
                                    source=info.source if info else None))
        return out
    for name, ne in p.nodes.items():
        is_output = name in p.outputs
        if rule.code == "TP601":
            if not (ne.own_s or is_output):
                continue
            facts = {"s": ne.s, "tensor": ne.s_from or "the inputs"}
        elif rule.code == "TP602":
            from_attention = (ne.u_from or "").startswith(ATTENTION)
            if not (ne.own_u or (is_output and not from_attention)):
                continue  # an attention blow-up is reported where it starts, not downstream
            cause = ("the logit scale of " + ne.u_from.removeprefix(ATTENTION)
                     if from_attention else ne.u_from or "the inputs")
            facts = {"u": ne.u, "tensor": cause}
        elif rule.code == "TP603":
            if not is_output or ne.u == -sympy.oo:
                continue
            facts = {"u": ne.u, "tensor": ne.u_from or ""}
        else:
            continue
        facts["node"] = _node_label(name, ne.module)
        violated, found, expected = evaluate(rule, facts)
        if violated:
            tensor = facts.get("tensor")
            out.append(_finding(rule, facts, found, expected, node=name, module=ne.module,
                                source=ne.source,
                                tensor=tensor if tensor in p.measurement.tensors else None))
    return out


def _node_label(node: str, module: str) -> str:
    return f"{node} ({module})" if module else node


def _zero_chains(rule: Rule, m: Measurement) -> list[Finding]:
    graph = m.classification.graph
    zero_at: dict[str, str] = {}  # use node -> zero-init weight whose output it is
    for name, tm in m.tensors.items():
        if tm.b != sympy.oo:
            continue
        for ue in tm.uses:
            if ue.use.kind == "contraction":
                zero_at[ue.node] = name
    nonzero_bias = {ue.node for tm in m.tensors.values() if tm.b != sympy.oo
                    for ue in tm.uses if ue.use.kind == "elementwise"}
    zero_nodes = {n: w for n, w in zero_at.items() if n not in nonzero_bias}
    out = []
    for node, weight in zero_nodes.items():
        use = next(u for u in m.classification.tensors[weight].uses if u.node == node)
        for _, ref in graph.node(node).refs():
            if ref.name == use.operand:
                continue
            other = _zero_source(graph, ref.name, zero_nodes, 16)
            if other and other != weight:
                facts = {"zero_inputs": sympy.Integer(1), "tensor": weight, "other": other}
                violated, found, expected = evaluate(rule, facts)
                if violated:
                    out.append(_finding(rule, facts, found, expected, tensor=weight, node=node,
                                        module=use.module,
                                        source=m.classification.tensors[weight].defined_at
                                        or use.source))
    return out


def _zero_source(graph: OpGraph, name: str, zero_nodes: dict[str, str], depth: int
                 ) -> str | None:
    """The zero-init weight that makes ``name`` identically zero at init, if any."""
    if depth == 0:
        return None
    if name in zero_nodes:
        return zero_nodes[name]
    node = graph.node(name)
    if node.kind != "call":
        return None
    op = op_name(node.target)
    refs = [r.name for _, r in node.refs()]
    if op == "scaled_dot_product_attention":  # softmax(q·kᵀ)·v is zero when v is
        return _zero_source(graph, refs[2], zero_nodes, depth - 1) if len(refs) > 2 else None
    if op == "mul":
        for r in refs:
            hit = _zero_source(graph, r, zero_nodes, depth - 1)
            if hit:
                return hit
        return None
    if op in ("add", "sub", "cat"):
        if any(isinstance(a, (int, float)) and a != 0 for a in node.args):
            return None  # 1 + zero is not zero
        hits = [_zero_source(graph, r, zero_nodes, depth - 1) for r in refs]
        return hits[0] if hits and all(hits) else None
    if (op in SEE_THROUGH or op in _ZERO_PRESERVING) and refs:
        return _zero_source(graph, refs[0], zero_nodes, depth - 1)
    return None
