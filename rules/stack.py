"""The rule fixtures' model: a small transformer-ish stack with every exponent a knob.

tokens (B, T, 8) → inp Linear(8→n) → [conditioning: emb Linear(8→16) on the token mean, a
fixed-size vector, then mod Linear(16→n) added to the stream] → [attention: qkv n→3n, SDPA,
proj n→n] → hid n→n (residual, optional gate) → out Linear(n→4) [→ post Linear(4→4), a
residual after the readout]. Each weight ``w`` has three
knobs, exactly the abc-parametrization (docs/theory.md §1): a forward multiplier ``m^-a`` on
its input, an init std ``σ·m^-b`` and an LR ``η·m^-c``, with ``m = n / BASE``.
:meth:`Knobs.mup` gives canonical μP for an optimizer family (its ``c`` differs by family:
docs/theory.md §8), and each rule's bad fixture changes one knob (``rules/fixtures.py``).

The optimizers are real: torch's AdamW, Adam, SGD, Adafactor and Muon (beside AdamW for what
Muon does not take), and three small optimizers written here — :class:`Lion` (sign updates, an
Adam-like family member outside torch), :class:`Lamb` (Adam's step rescaled to each tensor's
norm: parameter-scaled, Adafactor's family) and :class:`Custom` (an optimizer tpcheck does not
know).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction

import torch
from torch import nn
from torch.nn import functional as F

from tpcheck import ModelSpec

BASE = 32
WIDTHS = (32, 64, 128)
LAYERS = ("inp", "emb", "mod", "qkv", "proj", "hid", "gate", "out", "post")
ROLE = {"inp": "input", "emb": "scalar", "mod": "input", "qkv": "hidden", "proj": "hidden",
        "hid": "hidden", "gate": "hidden", "out": "output", "post": "scalar"}
#: Canonical μP (a, b, c) per role for Adam (TP5 Table 8, in the a = 0 form); a fixed-size
#: weight (scalar-like) keeps everything constant.
MUP_ADAM = {"input": (0, 0, 0), "hidden": (0, Fraction(1, 2), 1), "output": (0, 1, 1),
            "scalar": (0, 0, 0)}
#: The optimizers a fixture can train with (``Knobs.optimizer``).
OPTIMIZERS = ("adamw", "adam", "sgd", "adafactor", "muon", "lion", "lamb", "custom")
#: The family tpcheck should read from each (docs/theory.md §8).
FAMILY = {"adamw": "adam", "adam": "adam", "lion": "adam", "custom": "adam", "sgd": "sgd",
          "adafactor": "adafactor", "lamb": "adafactor", "muon": "muon"}
#: Layers Muon trains (2-D hidden matrices); the rest go to AdamW beside it.
MUON_LAYERS = ("qkv", "proj", "hid", "gate")


def canonical_c(family: str, role: str) -> Fraction:
    """The LR exponent ``c`` that makes a role μP under ``family`` (with a = 0, μP init b).

    ``U`` must be α_in (Adam-like), α_in − α_out (SGD), α_in (Adafactor, whose step also scales
    with the weight's RMS: c = α_in − b) or (α_in − α_out)/2 (Muon with torch's "original" LR
    adjustment, which is Θ(1) on square and tall hidden matrices).
    """
    _, b, c = MUP_ADAM[role]
    if family == "sgd":
        return Fraction({"input": -1, "hidden": 0, "output": 1, "scalar": 0}[role])
    if family == "adafactor":
        return Fraction(c) - Fraction(b)
    if family == "muon" and role == "hidden":
        return Fraction(0)
    return Fraction(c)


@dataclass(frozen=True)
class Knobs:
    """Per-layer exponents and structural options; defaults: μP with AdamW."""

    abc: dict[str, tuple[Fraction, Fraction, Fraction]] = field(default_factory=lambda: {
        name: tuple(Fraction(x) for x in MUP_ADAM[ROLE[name]]) for name in LAYERS})
    optimizer: str = "adamw"
    attention: str | None = None  # None, "fixed" (head dim 8), "growing" (2 heads), "ragged"
    #: "default" (SDPA's 1/√d), "1/d", "1/n" (a width-dependent scale on a fixed head dim),
    #: "prescaled" (q·d^-1 before SDPA(scale=1): 1/d in all), "q_mult" (q_proj(x)·d^-1, BART's
    #: form, then SDPA(scale=1))
    attn_scale: str = "default"
    gate: bool = False
    zero: tuple[str, ...] = ()  # layers whose weight (and bias) start at zero
    tie: bool = False  # readout shares the input embedding (n x 8 used as 8 x n)
    sum_over_width: bool = False
    mixed_fan_in: bool = False  # hid reads cat(h, 8 fixed features): fan_in n + 8
    unused: bool = False
    capped_hidden_init: bool = False  # hid std 1/min(n, 64): not a power law across 32..128
    frozen_biases: bool = False  # biases get LR 0
    eps_scaled: bool = True
    weight_decay: float = 0.0
    wd_scaled: bool = True
    multiplier_in_n: bool = False  # write the readout multiplier in n, not m
    unoptimized: tuple[str, ...] = ()  # tensors left out of every param group
    #: An inline suppression on hid's defining line: "TP102" (a real code) or "TP999" (none).
    suppression: str = ""
    #: RMSNorm on q and k over the head dim, with gains of the head dim's size shared by every
    #: head (SD3's and Flux's QK-norm): with a fixed head dim, scalar-like tensors.
    qk_norm: bool = False
    #: A fixed-size conditioning vector between width-sized layers, as a diffusion model's
    #: time embedding under adaLN: emb (fixed → fixed, scalar-like) feeds mod (fixed → n,
    #: input-like). emb's gradient sums over mod's n outputs (docs/theory.md §8.2).
    conditioning: bool = False
    #: A fixed-size layer after the readout, as StableAudio's ``postprocess_conv``: it reads the
    #: readout's output, n^-½ at init in μP and Θ(1) once trained.
    post_readout: bool = False

    @classmethod
    def mup(cls, optimizer: str = "adamw", **options: object) -> Knobs:
        """Canonical μP for ``optimizer``'s family (a = 0, μP init, the family's LR)."""
        family = FAMILY[optimizer]
        abc = {name: (Fraction(0), Fraction(MUP_ADAM[ROLE[name]][1]),
                      canonical_c(family, ROLE[name])) for name in LAYERS}
        return cls(abc=abc, optimizer=optimizer, **options)  # type: ignore[arg-type]

    def with_abc(self, layer: str, a: Fraction, b: Fraction, c: Fraction) -> Knobs:
        abc = dict(self.abc)
        abc[layer] = (Fraction(a), Fraction(b), Fraction(c))
        return replace(self, abc=abc)

    def shifted(self, layer: str, da: Fraction = Fraction(0), db: Fraction = Fraction(0),
                dc: Fraction = Fraction(0)) -> Knobs:
        """One layer's exponents moved by (da, db, dc): a single deliberate mistake."""
        a, b, c = self.abc[layer]
        return self.with_abc(layer, a + Fraction(da), b + Fraction(db), c + Fraction(dc))


class Stack(nn.Module):
    def __init__(self, n: int, knobs: Knobs) -> None:
        super().__init__()
        self.n, self.k, self.m = n, knobs, n / BASE
        self.inp = nn.Linear(8, n)
        if knobs.conditioning:
            self.emb = nn.Linear(8, 16)
            self.mod = nn.Linear(16, n)
        if knobs.attention:
            self.qkv = nn.Linear(n, 3 * n)
            self.proj = nn.Linear(n, n)
            self.heads = {"fixed": n // 8, "growing": 2}.get(knobs.attention,
                                                           {32: 4, 64: 4, 128: 8}.get(n, 4))
            if knobs.qk_norm:
                self.q_gain = nn.Parameter(torch.ones(n // self.heads))
                self.k_gain = nn.Parameter(torch.ones(n // self.heads))
        if knobs.suppression == "TP102":
            self.hid = nn.Linear(n, n)  # tpcheck: ignore[TP102] fixture: hid's init is tested
        elif knobs.suppression == "TP999":
            self.hid = nn.Linear(n, n)  # tpcheck: ignore[TP999] fixture: a code no rule has
        else:
            self.hid = nn.Linear(n + (8 if knobs.mixed_fan_in else 0), n)
        if knobs.gate:
            self.gate = nn.Linear(n, n)
        if not knobs.tie:
            self.out = nn.Linear(n, 4)
        if knobs.post_readout:
            self.post = nn.Linear(4, 4)
        if knobs.unused:
            self.spare = nn.Parameter(torch.zeros(n))
        self._init()

    def layers(self) -> dict[str, nn.Linear]:
        return {name: getattr(self, name) for name in LAYERS if isinstance(
            getattr(self, name, None), nn.Linear)}

    def _mult(self, layer: str) -> float:
        a = self.k.abc[layer][0]
        if layer == "out" and self.k.multiplier_in_n:
            return float(self.n ** -a)
        return float(self.m ** -a)

    def _init(self) -> None:
        for name, layer in self.layers().items():
            b = self.k.abc[name][1]
            std = 0.5 * float(self.m ** -b)
            if name == "hid" and self.k.capped_hidden_init:
                std = 1 / min(self.n, 64)
            with torch.no_grad():
                if name in self.k.zero:
                    layer.weight.zero_()
                else:
                    layer.weight.normal_(0.0, std)
                layer.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.inp(x * self._mult("inp")))  # (B, T, n)
        if self.k.conditioning:  # (B, 16), the same size at every width
            c = F.silu(self.emb(x.mean(1) * self._mult("emb")))
            h = h + self.mod(c * self._mult("mod")).unsqueeze(1)
        if self.k.attention:
            h = h + self.proj(self._attend(h) * self._mult("proj"))
        feats = h
        if self.k.mixed_fan_in:
            feats = torch.cat([h, x], dim=-1)
        update = self.hid(feats * self._mult("hid"))
        if self.k.gate:
            update = update * torch.sigmoid(self.gate(h * self._mult("gate")))
        h = h + F.gelu(update)
        if self.k.sum_over_width:
            return h.sum(-1)
        if self.k.tie:
            return F.linear(h * self._mult("out"), self.inp.weight.t())
        y = self.out(h * self._mult("out"))
        return y + self.post(y * self._mult("post")) if self.k.post_readout else y

    def _attend(self, h: torch.Tensor) -> torch.Tensor:
        B, T, n = h.shape
        heads = self.heads
        d = n // heads
        qkv = self.qkv(h * self._mult("qkv"))
        if self.k.attn_scale == "q_mult":  # BART: the scale on the projection's output
            q, k, v = qkv.chunk(3, dim=-1)
            q = q * (1.0 / d)
        else:
            q, k, v = qkv.chunk(3, dim=-1)
        q, k, v = (t.reshape(B, T, heads, d).transpose(1, 2) for t in (q, k, v))
        if self.k.qk_norm:
            q = F.rms_norm(q, (d,), self.q_gain)
            k = F.rms_norm(k, (d,), self.k_gain)
        scale = {"1/d": 1.0 / d, "1/n": 1.0 / n}.get(self.k.attn_scale)
        if self.k.attn_scale == "prescaled":
            q, scale = q / d, 1.0
        elif self.k.attn_scale == "q_mult":
            scale = 1.0
        a = F.scaled_dot_product_attention(q, k, v, scale=scale)
        return a.transpose(1, 2).reshape(B, T, n)


class _PerTensor(torch.optim.Optimizer):
    """The loop the small optimizers share: each tensor with a gradient, its group, its state."""

    def _update(self, p: torch.Tensor, group: dict, state: dict) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: object = None) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, group, self.state[p])


class Lion(_PerTensor):
    """Sign updates with momentum (Chen et al. 2023, arXiv 2302.06675): Adam-like for μP."""

    def __init__(self, params: object, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.99),
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "weight_decay": weight_decay})

    def _update(self, p: torch.Tensor, group: dict, state: dict) -> None:
        beta1, beta2 = group["betas"]
        avg = state.setdefault("exp_avg", torch.zeros_like(p))
        p.mul_(1 - group["lr"] * group["weight_decay"])
        p.add_(torch.sign(avg * beta1 + p.grad * (1 - beta1)), alpha=-group["lr"])
        avg.mul_(beta2).add_(p.grad, alpha=1 - beta2)


class Lamb(_PerTensor):
    """Adam's normalised step, rescaled per tensor by ``‖w‖ / ‖step‖`` (You et al. 2019, arXiv
    1904.00962): each tensor moves by ``lr`` times its own size, as under Adafactor."""

    def __init__(self, params: object, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-6, weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps,
                                  "weight_decay": weight_decay})

    def _update(self, p: torch.Tensor, group: dict, state: dict) -> None:
        beta1, beta2 = group["betas"]
        avg = state.setdefault("exp_avg", torch.zeros_like(p))
        avg_sq = state.setdefault("exp_avg_sq", torch.zeros_like(p))
        avg.mul_(beta1).add_(p.grad, alpha=1 - beta1)
        avg_sq.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
        step = avg / (avg_sq.sqrt() + group["eps"]) + group["weight_decay"] * p
        w_norm, step_norm = p.norm(), step.norm()
        trust = (w_norm / step_norm).item() if w_norm > 0 and step_norm > 0 else 1.0
        p.add_(step, alpha=-group["lr"] * trust)


class Custom(_PerTensor):
    """An optimizer tpcheck cannot know the family of (plain gradient steps, odd name)."""

    def __init__(self, params: object, lr: float = 1e-3) -> None:
        super().__init__(params, {"lr": lr})

    def _update(self, p: torch.Tensor, group: dict, state: dict) -> None:
        p.add_(p.grad, alpha=-group["lr"])


def optimizer_for(knobs: Knobs, lr: float = 1e-3, eps: float = 1e-8):
    def build(model: Stack) -> torch.optim.Optimizer | list[torch.optim.Optimizer]:
        groups, muon_groups = [], []
        named = dict(model.named_parameters())
        for name, layer in model.layers().items():
            c = knobs.abc[name][2]
            scale = float(model.m ** -c)
            width_out = ROLE[name] not in ("output", "scalar")
            group_eps = eps / model.m if knobs.eps_scaled and width_out else eps
            wd = knobs.weight_decay / (scale if knobs.wd_scaled else 1.0)
            weight = {"params": [layer.weight], "lr": lr * scale, "eps": group_eps,
                      "weight_decay": wd}
            if knobs.optimizer == "muon" and name in MUON_LAYERS:
                muon_groups.append({"params": [layer.weight], "lr": lr * scale,
                                    "weight_decay": wd})
            elif f"{name}.weight" not in knobs.unoptimized:
                groups.append(weight)
            if f"{name}.bias" not in knobs.unoptimized:
                bias_eps = eps / model.m if knobs.eps_scaled and width_out else eps
                # a bias over the width is vector-like: SGD's μP LR for it grows like m
                bias_lr = lr * (model.m if FAMILY[knobs.optimizer] == "sgd" and width_out
                                else 1.0)
                groups.append({"params": [layer.bias],
                               "lr": 0.0 if knobs.frozen_biases else bias_lr, "eps": bias_eps,
                               "weight_decay": knobs.weight_decay})
        for gain in ("q_gain", "k_gain"):
            if gain in named:  # fixed size when the head dim is: Θ(1) LR and ε in every family
                grows = knobs.attention == "growing"
                groups.append({"params": [named[gain]],
                               "lr": lr * (model.m if grows and FAMILY[knobs.optimizer] == "sgd"
                                           else 1.0),
                               "eps": eps / model.m if knobs.eps_scaled and grows else eps,
                               "weight_decay": knobs.weight_decay})
        if "spare" in named:
            groups.append({"params": [named["spare"]], "lr": lr,
                           "eps": eps / model.m if knobs.eps_scaled else eps})
        return _build(knobs.optimizer, groups, muon_groups, lr)

    return build


def _build(kind: str, groups: list[dict], muon_groups: list[dict], lr: float
           ) -> torch.optim.Optimizer | list[torch.optim.Optimizer]:
    if kind in ("sgd", "adafactor", "lion", "custom"):
        for g in groups:
            g.pop("eps")
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lr)
    if kind == "adafactor":
        return torch.optim.Adafactor(groups, lr=lr)
    if kind == "lion":
        return Lion(groups, lr=lr)
    if kind == "lamb":
        return Lamb(groups, lr=lr)
    if kind == "custom":
        for g in groups:
            g.pop("weight_decay", None)
        return Custom(groups, lr=lr)
    if kind == "muon":
        return [torch.optim.Muon(muon_groups, lr=lr), torch.optim.AdamW(groups, lr=lr)]
    cls = torch.optim.Adam if kind == "adam" else torch.optim.AdamW
    return cls(groups, lr=lr)


def spec(knobs: Knobs | None = None, name: str = "stack") -> ModelSpec:
    knobs = knobs or Knobs()
    return ModelSpec(factory=lambda n: Stack(n, knobs),
                     inputs=lambda n: (torch.randn(2, 5, 8, generator=torch.Generator()
                                                   .manual_seed(0)),),
                     widths=WIDTHS, base_width=BASE, optimizer=optimizer_for(knobs), name=name)
