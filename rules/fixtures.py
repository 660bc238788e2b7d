"""Every rule's fixtures: a model it must flag and its twin it must stay silent on.

Adding a rule means one catalogue entry (``catalogue.toml``), one doc (``docs.toml``) and one
entry here. Each fixture is the rule-fixture stack (``rules/stack.py``) with one deliberate
mistake, under every optimizer the rule claims to cover: init rules do not depend on the
optimizer, update rules are checked under each family (Adam-like — AdamW, Adam, Lion —, SGD,
Adafactor, Muon beside AdamW), so a rule that is right for Adam and wrong for SGD is caught.
``tests/test_rule_fixtures.py`` lints them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction as Fr

from tpcheck.rules.stack import Knobs

Build = Callable[[str], Knobs]
#: Optimizers an update rule is checked under (one per family, Lion for Adam-likes outside
#: torch).
EVERY_FAMILY = ("adamw", "sgd", "adafactor", "muon", "lion")
HALF = Fr(1, 2)


@dataclass(frozen=True)
class Fixture:
    """A rule's bad models (each with the tensor or node the finding must name) and good ones.

    ``bad`` and ``good`` take an optimizer name (``rules/stack.py``'s ``OPTIMIZERS``) and
    return the model's knobs; ``optimizers`` are the ones the rule is checked under.
    """

    bad: tuple[tuple[Build, str], ...]
    good: tuple[Build, ...]
    optimizers: tuple[str, ...] = ("adamw",)


def _mup(**options: object) -> Build:
    return lambda o: Knobs.mup(o, **options)


def _shift(layer: str, da: Fr = Fr(0), db: Fr = Fr(0), dc: Fr = Fr(0), **options: object
           ) -> Build:
    return lambda o: Knobs.mup(o, **options).shifted(layer, da, db, dc)


def _abc(layer: str, a: Fr, b: Fr, c: Fr, **options: object) -> Build:
    return lambda o: Knobs.mup(o, **options).with_abc(layer, a, b, c)


MUP = _mup()

FIXTURES: dict[str, Fixture] = {
    "TP001": Fixture(((_mup(capped_hidden_init=True), "hid.weight"),), (MUP,)),
    "TP002": Fixture(((_mup(unused=True), "spare"),), (MUP,)),
    # an inline suppression of TP102 on hid's line: stale while hid is μP, used once it is not
    "TP003": Fixture(((_mup(suppression="TP102"), "hid.weight"),),
                     (_shift("hid", db=-HALF, suppression="TP102"),)),
    "TP004": Fixture(((_mup(suppression="TP999"), "hid.weight"),),
                     (_mup(suppression="TP102"),)),
    "TP101": Fixture(((_shift("out", db=-HALF), "out.weight"),), (MUP,), ("adamw", "sgd")),
    "TP102": Fixture(((_shift("hid", db=-HALF), "hid.weight"),), (MUP,), ("adamw", "sgd")),
    "TP103": Fixture(((_shift("inp", db=-HALF), "inp.weight"),), (MUP,), ("adamw", "sgd")),
    "TP104": Fixture(((_shift("hid", db=HALF), "hid.weight"),), (MUP,), ("adamw", "sgd")),
    "TP105": Fixture(((_mup(zero=("hid",)), "hid.weight"),), (MUP,)),
    "TP106": Fixture(((_mup(attention="fixed", zero=("qkv", "proj")), "proj.weight"),),
                     (_mup(attention="fixed", zero=("proj",)),)),
    "TP201": Fixture(((_shift("hid", dc=-1), "hid.weight"),), (MUP,), EVERY_FAMILY),
    "TP202": Fixture(((_shift("out", dc=-1), "out.weight"),), (MUP,), EVERY_FAMILY),
    "TP203": Fixture(((_shift("inp", dc=-1), "inp.weight"),), (MUP,), EVERY_FAMILY),
    "TP204": Fixture(((_shift("inp", dc=1), "inp.weight"),), (MUP,), EVERY_FAMILY),
    "TP205": Fixture(((_shift("hid", dc=1), "hid.weight"),), (MUP,), EVERY_FAMILY),
    "TP301": Fixture(
        ((_mup(attention="growing"), "scaled_dot_product_attention"),
         (_mup(attention="fixed", attn_scale="1/n"), "scaled_dot_product_attention")),
        (_mup(attention="growing", attn_scale="1/d"),
         _mup(attention="growing", attn_scale="prescaled"),
         _mup(attention="growing", attn_scale="q_mult"),
         _mup(attention="fixed"))),
    "TP302": Fixture(((_mup(attention="ragged"), "scaled_dot_product_attention"),),
                     (_mup(attention="fixed"),)),
    "TP401": Fixture(((_mup(weight_decay=0.1, wd_scaled=False), "hid.weight"),),
                     (_mup(weight_decay=0.1, wd_scaled=True),), ("adamw",)),
    # a head-dim QK-norm gain shared by n/8 heads, and a fixed-size conditioning vector read by
    # n outputs: their gradients sum coherently over the width once training has correlated
    # the terms; a fixed layer after the readout reads its output, Θ(1) once trained. Their
    # gradients' entries are Θ(1), so a constant ε is right (docs/theory.md §8.2, §8.6)
    "TP402": Fixture(((_mup(eps_scaled=False), "hid.weight"),
                      (_mup(eps_scaled=False, conditioning=True), "mod.weight")),
                     (MUP, _mup(attention="fixed", qk_norm=True), _mup(conditioning=True),
                      _mup(post_readout=True)),
                     ("adamw", "adam")),
    "TP403": Fixture(((_mup(unoptimized=("hid.bias",)), "hid.bias"),), (MUP,), EVERY_FAMILY),
    "TP404": Fixture(((lambda o: Knobs.mup("custom"), "Custom"),),
                     (lambda o: Knobs.mup("lion"),)),
    "TP501": Fixture(((_mup(tie=True), "inp.weight"),),
                     (_abc("out", Fr(1), Fr(0), Fr(0), tie=True),)),
    "TP502": Fixture(((_mup(sum_over_width=True), "sum"),), (MUP,)),
    "TP503": Fixture(((_abc("out", Fr(1), Fr(0), Fr(0), multiplier_in_n=True), "out.weight"),),
                     (_abc("out", Fr(1), Fr(0), Fr(0)),)),
    "TP504": Fixture(((_mup(mixed_fan_in=True), "hid.weight"),), (MUP,)),
    "TP601": Fixture(((_shift("hid", db=-HALF), "hid.weight"),), (MUP,), ("adamw", "sgd")),
    "TP602": Fixture(((_shift("hid", dc=-1), "hid.weight"),
                      (_shift("mod", dc=-1, conditioning=True), "mod.weight")),
                     (MUP, _mup(conditioning=True)), EVERY_FAMILY),
    "TP603": Fixture(((lambda o: Knobs.mup(o, frozen_biases=True).shifted("inp", dc=1)
                       .shifted("hid", dc=1).shifted("out", dc=1), "out"),),
                     (MUP,), ("adamw", "sgd")),
}
