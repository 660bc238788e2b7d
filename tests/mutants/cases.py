"""The mutation suite's cases: correct μP models, and single deliberate mistakes in them.

Each correct model must lint with zero errors. Each mutation changes one thing — one line a
user could get wrong — and lists exactly the findings it must cause at error level, as
``(rule, tensor or node pattern)``; a finding at error level outside that list is a false
alarm, a listed one that does not appear is a miss. Warning-level mutations list their warning
the same way (and must cause no error).

The expected findings are written from the theory (docs/theory.md), not from tpcheck's output:
a readout initialised like SP breaks ``I`` (TP101) and makes the output's update grow (TP602,
blamed on the readout); an unscaled hidden LR breaks ``U`` (TP201) and makes that layer's
update grow (TP602); under Adafactor the step scales with the weight, so an init mistake is also
an update mistake (TP202/TP203 beside TP101/TP103).

Models: the rule-fixture stack under every optimizer family (AdamW, Adam, Lion, SGD, Adafactor,
LAMB, Muon beside AdamW); DiT built with the ``mup`` package (MuReadout, set_base_shapes, MuAdamW or
MuSGD); DiT converted by tpcheck (the Plan, AdamW or SGD).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from fractions import Fraction as Fr

import torch
from tpcheck.rules.stack import Knobs
from tpcheck.rules.stack import spec as stack_spec

import tpcheck
from tpcheck import ModelSpec

Expected = tuple[tuple[str, str], ...]  # (rule, fnmatch pattern of the tensor or node)
HALF = Fr(1, 2)


@dataclass(frozen=True)
class Mutant:
    """One mistake: what it changes, and what must be reported."""

    name: str
    build: Callable[[], ModelSpec]
    errors: Expected = ()
    warnings: Expected = ()


@dataclass(frozen=True)
class Model:
    """A correct μP model (zero errors) and its mutants."""

    name: str
    family: str
    build: Callable[[], ModelSpec]
    mutants: tuple[Mutant, ...]


# --------------------------------------------------------------------------- the stack

STACK_OPTIMIZERS = ("adamw", "adam", "lion", "sgd", "adafactor", "lamb", "muon")


def _stack(optimizer: str) -> Model:
    def knobs(**options: object) -> Knobs:
        return Knobs.mup(optimizer, **options)

    def spec_of(k: Knobs) -> Callable[[], ModelSpec]:
        return lambda: stack_spec(k)

    adafactor = optimizer in ("adafactor", "lamb")  # steps scaled to the weight's own size
    mutants = [
        Mutant("readout init SP (std 1/√fan_in)", spec_of(knobs().shifted("out", db=-HALF)),
               (("TP101", "out.weight"), ("TP602", "out.weight"))
               + ((("TP202", "out.weight"),) if adafactor else ())),
        Mutant("readout LR not scaled", spec_of(knobs().shifted("out", dc=-1)),
               (("TP202", "out.weight"), ("TP602", "out.weight"))),
        Mutant("hidden LR not scaled", spec_of(knobs().shifted("hid", dc=-1)),
               (("TP201", "hid.weight"), ("TP602", "hid.weight"))),
        Mutant("hidden LR scaled twice", spec_of(knobs().shifted("hid", dc=1)),
               (("TP205", "hid.weight"),)),
        Mutant("input init grows with n", spec_of(knobs().shifted("inp", db=-HALF)),
               (("TP103", "inp.weight"), ("TP601", "inp.weight"), ("TP602", "inp.weight"))
               + ((("TP203", "inp.weight"),) if adafactor else ())),
        Mutant("input weight given the hidden 1/m LR", spec_of(knobs().shifted("inp", dc=1)),
               (("TP204", "inp.weight"),)),
        Mutant("a bias in no param group", spec_of(knobs(unoptimized=("hid.bias",))),
               (("TP403", "hid.bias"),)),
        Mutant("readout tied to the input embedding", spec_of(knobs(tie=True)),
               (("TP501", "inp.weight"), ("TP601", "inp.weight"), ("TP602", "inp.weight"))),
        Mutant("1/√d logits with a growing head dim",
               spec_of(knobs(attention="growing")),
               (("TP301", "scaled_dot_product_attention"),
                ("TP602", "scaled_dot_product_attention"))),
        Mutant("a 1/n logit scale with a fixed head dim",
               spec_of(knobs(attention="fixed", attn_scale="1/n")),
               (("TP301", "scaled_dot_product_attention"),)),
    ]
    if optimizer in ("adamw", "adam"):
        mutants.append(Mutant("one fixed Adam ε", spec_of(knobs(eps_scaled=False)),
                              warnings=(("TP402", "hid.weight"),)))
    if optimizer == "lamb":  # the trust ratio already scales the step by n^-b
        mutants.append(Mutant("LAMB given Adam's μP LRs",
                              spec_of(dataclasses.replace(Knobs.mup("adamw"), optimizer="lamb")),
                              (("TP205", "hid.weight"), ("TP205", "out.weight"))))
    if optimizer == "adamw":
        mutants.append(Mutant("weight decay not scaled with the LR",
                              spec_of(knobs(weight_decay=0.1, wd_scaled=False)),
                              warnings=(("TP401", "hid.weight"),)))
    return Model(f"stack/{optimizer}", optimizer, lambda: stack_spec(knobs()), tuple(mutants))


# --------------------------------------------------------------------------- DiT, mup-built

#: DiT's hidden matrices (fan-in and fan-out both n or a multiple).
DIT_HIDDEN = ("t_embedder.mlp.2.weight", "blocks.*.attn.qkv.weight", "blocks.*.attn.proj.weight",
              "blocks.*.mlp.fc*.weight", "*adaLN_modulation.1.weight")


def _mup_dit(optimizer: str) -> Model:
    import mup
    from mup_models import mup_dit_spec

    def with_optimizer(make: Callable[[torch.nn.Module], object]) -> Callable[[], ModelSpec]:
        return lambda: dataclasses.replace(mup_dit_spec(), optimizer=make)

    if optimizer == "MuAdamW":
        correct = with_optimizer(lambda m: mup.MuAdamW(m.parameters(), lr=1e-3))

        def adaln_global(m: torch.nn.Module) -> list[torch.optim.Optimizer]:
            adaln = [p for n, p in m.named_parameters() if "adaLN" in n]
            rest = [p for n, p in m.named_parameters() if "adaLN" not in n]
            return [mup.MuAdamW(rest, lr=1e-3), torch.optim.AdamW(adaln, lr=1e-3)]

        def unscaled_wd(m: torch.nn.Module) -> torch.optim.Optimizer:
            opt = mup.MuAdamW(m.parameters(), lr=1e-3, weight_decay=0.1)
            for group in opt.param_groups:  # undo mup's wd × m on the 1/m-LR groups
                group["weight_decay"] = 0.1
            return opt

        def without_labels(m: torch.nn.Module) -> torch.optim.Optimizer:
            return mup.MuAdamW([p for n, p in m.named_parameters() if "y_embedder" not in n],
                               lr=1e-3)

        mutants = (
            Mutant("AdamW instead of MuAdamW (one global LR)",
                   with_optimizer(lambda m: torch.optim.AdamW(m.parameters(), lr=1e-3)),
                   tuple((rule, t) for t in DIT_HIDDEN for rule in ("TP201", "TP602"))),
            Mutant("adaLN modulation in a plain AdamW", with_optimizer(adaln_global),
                   (("TP201", "*adaLN_modulation.1.weight"),
                    ("TP602", "*adaLN_modulation.1.weight"))),
            Mutant("class table left out of the optimizer", with_optimizer(without_labels),
                   (("TP403", "y_embedder.embedding_table.weight"),)),
            Mutant("weight decay not scaled with the 1/m LR", with_optimizer(unscaled_wd),
                   warnings=(("TP401", "blocks.*.attn.qkv.weight"),)),
        )
    else:
        correct = with_optimizer(lambda m: mup.MuSGD(m.parameters(), lr=0.1))
        mutants = (
            Mutant("SGD instead of MuSGD (one global LR)",
                   with_optimizer(lambda m: torch.optim.SGD(m.parameters(), lr=0.1)),
                   (("TP204", "x_embedder.proj.*"), ("TP204", "t_embedder.mlp.0.*"),
                    ("TP204", "y_embedder.embedding_table.weight"), ("TP204", "*.bias"),
                    ("TP205", "final_layer.linear.weight"))),
        )
    return Model(f"mup DiT/{optimizer}", optimizer, correct, mutants)


# --------------------------------------------------------------------------- DiT, converted

def _converted_dit(optimizer: str) -> Model:
    from tpcheck.models.dit import dit_spec

    def source() -> ModelSpec:
        spec = dit_spec()
        if optimizer == "SGD":
            spec = dataclasses.replace(
                spec, optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=0.1))
        return spec

    def converted(edit: Callable[[dict], None] | None = None) -> Callable[[], ModelSpec]:
        def build() -> ModelSpec:
            plan = tpcheck.convert(source(), seeds=1)
            if edit is not None:
                data = plan.to_json()
                edit(data["tensors"])
                plan = dataclasses.replace(tpcheck.Plan.from_json(data),
                                           optimizer_classes=plan.optimizer_classes)
            return plan.spec(source())
        return build

    family = "sgd" if optimizer == "SGD" else "adam"

    def lr_of(pattern: str, value: str) -> Callable[[dict], None]:
        def edit(tensors: dict) -> None:
            for name, rule in tensors.items():
                if fnmatchcase(name, pattern):
                    rule["lr_mult"][family] = value
        return edit

    def init_of(pattern: str, value: str) -> Callable[[dict], None]:
        def edit(tensors: dict) -> None:
            for name, rule in tensors.items():
                if fnmatchcase(name, pattern):
                    rule["init_mult"] = value
        return edit

    mutants = [Mutant("fc1's init not scaled (std kept at the base)",
                      converted(init_of("blocks.*.mlp.fc1.weight", "1")),
                      (("TP102", "blocks.*.mlp.fc1.weight"), ("TP601", "blocks.*.mlp.fc1.weight"),
                       ("TP602", "blocks.*.mlp.fc1.weight")))]
    if family == "adam":
        mutants.append(Mutant("fc1's LR not scaled", converted(lr_of("blocks.*.mlp.fc1.weight",
                                                                     "1")),
                              (("TP201", "blocks.*.mlp.fc1.weight"),
                               ("TP602", "blocks.*.mlp.fc1.weight"))))
    else:
        mutants.append(Mutant("the patch embedding's LR not scaled up",
                              converted(lr_of("x_embedder.proj.weight", "1")),
                              (("TP204", "x_embedder.proj.weight"),)))
    return Model(f"converted DiT/{optimizer}", optimizer, converted(), tuple(mutants))


def models() -> list[Model]:
    """Every correct model of the suite, with its mutants."""
    return ([_stack(o) for o in STACK_OPTIMIZERS]
            + [_mup_dit("MuAdamW"), _mup_dit("MuSGD")]
            + [_converted_dit("AdamW"), _converted_dit("SGD")])


# --------------------------------------------------------------------------- verdicts

@dataclass(frozen=True)
class Verdict:
    """What one lint found against what was expected."""

    missed: tuple[tuple[str, str], ...]
    false_alarms: tuple[tuple[str, str], ...]

    @property
    def right(self) -> bool:
        return not self.missed and not self.false_alarms


def judge(spec: ModelSpec, errors: Expected, warnings: Expected = ()) -> Verdict:
    """Lint ``spec`` and hold its findings against the expected ones."""
    report = tpcheck.lint(spec, seeds=1)
    found = {"error": [], "warning": []}
    for f in report.findings:
        if f.severity in found:
            found[f.severity].append((f.rule, f.tensor or f.node or ""))

    def matches(item: tuple[str, str], pattern: tuple[str, str]) -> bool:
        return item[0] == pattern[0] and fnmatchcase(item[1], pattern[1])

    missed = tuple(p for p in (*errors, *warnings)
                   if not any(matches(f, p) for f in found["error" if p in errors else
                                                           "warning"]))
    false_alarms = tuple(f for f in found["error"] if not any(matches(f, p) for p in errors))
    return Verdict(missed, tuple(dict.fromkeys(false_alarms)))
