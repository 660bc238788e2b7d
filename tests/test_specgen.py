"""Spec generation for the user's own class (tpcheck.autospec, `tpcheck lint file.py:Class`):
one command lints a module with a width argument; the spec tpcheck builds is the source it
shows; the class is only ever built small and on meta; bad targets exit 2 saying what to pass.

Every model here is a real torch module written to a temporary folder, run through the real
CLI in-process.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch

import tpcheck
from tpcheck.cli import main
from tpcheck.targets import TargetOptions, import_object, load_target

BLOCKS = '''
"""A transformer block, imported by mydit.py from beside it."""
import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.ada = nn.Linear(dim, 2 * dim)

    def forward(self, x, c):
        shift, scale = self.ada(F.silu(c)).unsqueeze(1).chunk(2, dim=-1)
        b, t, d = x.shape
        qkv = self.qkv(self.norm1(x) * (1 + scale) + shift).view(b, t, 3, self.heads, -1)
        q, k, v = (u.transpose(1, 2) for u in qkv.unbind(2))
        a = F.scaled_dot_product_attention(q, k, v)
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.norm2(x))
'''

MYDIT = '''
"""A DiT of the user's own: hidden_size is the width, forward(x, t, y)."""
import math

import torch
from torch import nn

from blocks import Block

BUILT = []  # (hidden_size, device) of every instance: what tpcheck built


class MyDiT(nn.Module):
    def __init__(self, hidden_size=1152, num_heads=16, depth=28, in_channels=4, patch_size=2,
                 num_classes=1000):
        super().__init__()
        BUILT.append((hidden_size, torch.empty(0).device.type))
        self.x_embed = nn.Conv2d(in_channels, hidden_size, patch_size, patch_size)
        self.t_embed = nn.Sequential(nn.Linear(256, hidden_size), nn.SiLU(),
                                     nn.Linear(hidden_size, hidden_size))
        self.y_embed = nn.Embedding(num_classes, hidden_size)
        self.blocks = nn.ModuleList([Block(hidden_size, num_heads) for _ in range(depth)])
        self.out = nn.Linear(hidden_size, patch_size * patch_size * in_channels)

    def forward(self, x, t, y):
        freqs = torch.exp(-math.log(10000) * torch.arange(128, device=t.device) / 128)
        angles = t[:, None].float() * freqs[None]
        c = self.t_embed(torch.cat([angles.cos(), angles.sin()], dim=-1)) + self.y_embed(y)
        h = self.x_embed(x).flatten(2).transpose(1, 2)
        for block in self.blocks:
            h = block(h, c)
        return self.out(h)


def example_inputs(n):
    gen = torch.Generator().manual_seed(0)
    return (torch.randn(2, 4, 8, 8, generator=gen), torch.rand(2, generator=gen) * 1000,
            torch.randint(0, 1000, (2,), generator=gen))


def make_dit(hidden_size=768, num_heads=12, depth=12):
    """A factory taking the config as keywords, as training scripts often have."""
    return MyDiT(hidden_size=hidden_size, num_heads=num_heads, depth=depth)


class Mystery(MyDiT):
    def forward(self, x, t, mystery):
        return super().forward(x, t, mystery)


class NoWidth(nn.Module):
    def __init__(self, size=64):
        super().__init__()
        self.lin = nn.Linear(size, size)

    def forward(self, x):
        return self.lin(x)
'''


@pytest.fixture
def mydit(tmp_path: Path) -> Path:
    """mydit.py and the blocks.py it imports, in a fresh folder."""
    (tmp_path / "blocks.py").write_text(textwrap.dedent(BLOCKS))
    path = tmp_path / "mydit.py"
    path.write_text(textwrap.dedent(MYDIT))
    return path


def _lint_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    """The exit code and the (first) target's JSON report."""
    code = main(["lint", *argv, "--format", "json"])
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    payload = json.loads(out.out) if out.out.strip() else {}
    return code, (payload["targets"][0] if "targets" in payload else payload)


def test_own_class_lints_with_one_command(mydit: Path, capsys) -> None:
    """`tpcheck lint mydit.py:MyDiT --inputs mydit.py:example_inputs`: the class imports a
    module beside its file, hidden_size is the width, and the roles are the architecture's."""
    code, report = _lint_json(capsys, f"{mydit}:MyDiT", "--inputs", f"{mydit}:example_inputs")
    assert code == 1  # standard parametrization: μP errors, not a tool error
    roles = {t["name"]: t["role"] for t in report["tensors"]}
    assert roles["x_embed.weight"] == "input"
    assert roles["y_embed.weight"] == "input"
    assert roles["blocks.0.qkv.weight"] == "hidden"
    assert roles["blocks.0.mlp.2.weight"] == "hidden"
    assert roles["out.weight"] == "output"
    assert not any(name.startswith("blocks.1.") for name in roles)  # depth 28 → 1
    assert report["widths"] == [144, 288, 576]  # 2, 4, 8 heads of 1152 / 16 = 72
    if "spec_source" in report:  # the report shows the spec tpcheck built
        assert "def factory(n: int)" in report["spec_source"]
        assert any("depth 28 → 1" in line for line in report["notes"])


def test_own_class_is_built_small_and_on_meta_only(mydit: Path) -> None:
    spec = load_target(f"{mydit}:MyDiT", TargetOptions(inputs=f"{mydit}:example_inputs"))
    built = import_object(f"{mydit}:BUILT")
    assert built, "the factory never ran"
    assert {device for _, device in built} == {"meta"}
    assert max(width for width, _ in built) <= max(spec.widths) < 1152


def test_inputs_are_inferred_for_x_t_y(mydit: Path) -> None:
    """Without --inputs, (x, t, y) come from in_channels, patch_size and num_classes."""
    spec = load_target(f"{mydit}:MyDiT")
    inputs = spec.inputs(spec.widths[0])
    assert list(inputs) == ["x", "t", "y"]
    x, t, y = inputs.values()
    assert x.shape == (2, 4, 8, 8) and t.shape == (2,) and y.dtype == torch.long
    assert int(y.max()) < 1000
    assert tpcheck.lint(spec).exit_code == 1


def test_spec_source_is_the_spec(mydit: Path) -> None:
    """The source in spec.meta runs on its own and defines the same spec."""
    spec = load_target(f"{mydit}:MyDiT", TargetOptions(inputs=f"{mydit}:example_inputs"))
    source = spec.meta["spec_source"]
    assert "class" not in source.split("CONFIG")[0] or "import_object" in source
    namespace: dict = {}
    exec(compile(source, "spec_file.py", "exec"), namespace)
    pasted = namespace["spec"]
    assert tuple(pasted.widths) == tuple(spec.widths) and pasted.base == spec.base
    for n in spec.widths:
        with torch.device("meta"):
            ours, theirs = spec.factory(n), pasted.factory(n)
        assert {k: p.shape for k, p in ours.named_parameters()} == {
            k: p.shape for k, p in theirs.named_parameters()}
        for a, b in zip(spec.inputs(n), pasted.inputs(n), strict=True):
            assert torch.equal(a, b)
    notes = spec.meta["notes"]
    assert isinstance(notes, list) and all(isinstance(line, str) for line in notes)
    assert any("depth 28 → 1" in line for line in notes)
    assert any("num_heads = n / 72" in line for line in notes)


def test_autospec_takes_the_class_and_options(mydit: Path) -> None:
    cls = import_object(f"{mydit}:MyDiT")
    spec = tpcheck.autospec(cls, config={"hidden_size": 256, "num_heads": 4, "depth": 3},
                            inputs=import_object(f"{mydit}:example_inputs"), head_dim=32)
    assert spec.widths == (64, 128, 256)  # two heads of 32 at the smallest
    with torch.device("meta"):
        block = spec.factory(128).blocks[0]
    assert block.heads == 4 and len(spec.factory(64).blocks) == 1


def test_factory_function_is_a_target(mydit: Path, capsys) -> None:
    """`file.py:make_dit`, a function of the config, with --inputs (its config does not say
    the latent's channels, so without --inputs it is exit 2 saying so)."""
    spec = load_target(f"{mydit}:make_dit", TargetOptions(inputs=f"{mydit}:example_inputs"))
    assert spec.widths == (128, 256, 512)  # two heads of 768 / 12 = 64
    assert tpcheck.lint(spec).exit_code == 1
    assert main(["lint", f"{mydit}:make_dit"]) == 2
    err = capsys.readouterr().err
    assert "latent's channels" in err and "--inputs" in err


@pytest.mark.parametrize(("argv", "needles"), [
    (["{path}:Mystery"], ["'mystery'", "--inputs"]),
    (["{path}:NoWidth"], ["which constructor argument", "--width-arg"]),
    (["{path}:MyDiT", "--width-arg", "nope"], ["--width-arg 'nope'", "hidden_size"]),
    (["{path}:MyDiT", "--inputs", "{path}:nothing"], ["has no attribute 'nothing'"]),
    (["{path}:MyDiT", "--config", "missing.json"], ["does not exist"]),
])
def test_bad_class_targets_exit_2(mydit: Path, capsys, argv: list[str],
                                  needles: list[str]) -> None:
    code = main(["lint", *(a.format(path=mydit) for a in argv)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
