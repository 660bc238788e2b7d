"""Expected μP role of every parameter of the built-in models, derived by hand from theory.md §2.

Each table maps an fnmatch pattern (``*`` also spans dots) to one of ``input``, ``hidden``,
``output``, ``vector``, ``scalar``. Roles come from how the forward *consumes* the
tensor, at the widths of the specs (n ∈ {64, 128, 256}; finite: latent channels C = 4,
patch p = 2, 256 timestep frequencies, caption/joint channels 32, pooled 24, classes):

- a weight contracted by linear / conv / embedding: (fan_in grows?, fan_out grows?) =
  (0,1) input, (1,1) hidden, (1,0) output, (0,0) scalar; an ``nn.Embedding`` is one-hot
  (fan_in 1), so a class table (V, n) is input;
- a tensor used elementwise (bias, norm gain, ``scale_shift_table``, position table): vector
  when it runs over a width dim, scalar when every dim is finite (a readout bias of size
  p²·C_out, QK-norm gains over a fixed head dim).

Roles were written from the architecture, not from tpcheck's output: the tests compare the
two. ``unmatched`` / ``unused_patterns`` keep the tables in sync with the models.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

import torch

ROLES = ("input", "hidden", "output", "vector", "scalar")


def linear(prefix: str, role: str, bias: str | None = "vector") -> dict[str, str]:
    """Patterns for a Linear/conv ``prefix``: its weight's role and its bias's role."""
    table = {f"{prefix}.weight": role}
    if bias is not None:
        table[f"{prefix}.bias"] = bias
    return table


# --------------------------------------------------------------------------- DiT

DIT: dict[str, str] = {
    # vector: frozen sin-cos table (1, T, n), added elementwise to the width-n tokens
    "pos_embed": "vector",
    # (0,1) input: patch-embed conv, fan_in C·p² = 16 → n; its bias is over n (vector)
    **linear("x_embedder.proj", "input"),
    # (0,1) input: timestep MLP first layer 256 → n
    **linear("t_embedder.mlp.0", "input"),
    # (1,1) hidden: timestep MLP second layer n → n
    **linear("t_embedder.mlp.2", "hidden"),
    # (0,1) input: class nn.Embedding (one-hot fan_in 1 → n)
    "y_embedder.embedding_table.weight": "input",
    # (1,1) hidden: qkv n → 3n, attention out n → n; biases over 3n / n are vector
    **linear("blocks.*.attn.qkv", "hidden"),
    **linear("blocks.*.attn.proj", "hidden"),
    # (1,1) hidden: MLP n → 4n → n
    **linear("blocks.*.mlp.fc1", "hidden"),
    **linear("blocks.*.mlp.fc2", "hidden"),
    # (1,1) hidden: adaLN modulation n → 6n (zero-init in DiT)
    **linear("blocks.*.adaLN_modulation.1", "hidden"),
    # (1,1) hidden: final adaLN modulation n → 2n
    **linear("final_layer.adaLN_modulation.1", "hidden"),
    # (1,0) output: readout n → p²·C_out = 32; (0,0) scalar: its bias over 32 finite entries
    **linear("final_layer.linear", "output", bias="scalar"),
}

# --------------------------------------------------------------------------- U-ViT

# "*_block*" = in_blocks.i, mid_block, out_blocks.i
UVIT: dict[str, str] = {
    # vector: learned position table (1, 2 + T, n), added elementwise
    "pos_embed": "vector",
    # (0,1) input: patch-embed conv C·p² = 16 → n
    **linear("patch_embed.proj", "input"),
    # (0,1) input: class nn.Embedding (one-hot → n); the time token has no parameters
    "label_emb.weight": "input",
    # vector: LayerNorm gains and biases over n
    **linear("*_block*.norm1", "vector"),
    **linear("*_block*.norm2", "vector"),
    # (1,1) hidden: qkv n → 3n (no bias in the ImageNet config), attention out n → n
    **linear("*_block*.attn.qkv", "hidden", bias=None),
    **linear("*_block*.attn.proj", "hidden"),
    # (1,1) hidden: MLP n → 4n → n
    **linear("*_block*.mlp.fc1", "hidden"),
    **linear("*_block*.mlp.fc2", "hidden"),
    # (1,1) hidden: long-skip fusion 2n → n (out-blocks only)
    **linear("out_blocks.*.skip_linear", "hidden"),
    # vector: final LayerNorm over n
    **linear("norm", "vector"),
    # (1,0) output: readout n → p²·C = 16; (0,0) scalar: its bias
    **linear("decoder_pred", "output", bias="scalar"),
    # (0,0) scalar: 3 × 3 conv C → C on the image (fan_in 9C, fan_out C, both finite)
    **linear("final_layer", "scalar", bias="scalar"),
}

# --------------------------------------------------------------------------- PixArt-α

PIXART: dict[str, str] = {
    # vector: frozen sin-cos table (1, T, n)
    "pos_embed": "vector",
    # (0,1) input: patch-embed conv C·p² = 16 → n
    **linear("x_embedder.proj", "input"),
    # (0,1) input: timestep MLP 256 → n; (1,1) hidden: n → n
    **linear("t_embedder.mlp.0", "input"),
    **linear("t_embedder.mlp.2", "hidden"),
    # (1,1) hidden: adaLN-single t_block n → 6n, shared by all blocks
    **linear("t_block.1", "hidden"),
    # (0,1) input: caption projection caption_channels = 32 → n; (1,1) hidden: n → n
    **linear("y_embedder.y_proj.fc1", "input"),
    **linear("y_embedder.y_proj.fc2", "hidden"),
    # vector: per-block scale_shift_table (6, n), added elementwise to t_block's output
    "blocks.*.scale_shift_table": "vector",
    # (1,1) hidden: self-attention qkv n → 3n, out n → n
    **linear("blocks.*.attn.qkv", "hidden"),
    **linear("blocks.*.attn.proj", "hidden"),
    # (1,1) hidden: cross-attention q n → n, kv n → 2n (captions already at width n), out
    **linear("blocks.*.cross_attn.q_linear", "hidden"),
    **linear("blocks.*.cross_attn.kv_linear", "hidden"),
    **linear("blocks.*.cross_attn.proj", "hidden"),
    # (1,1) hidden: MLP n → 4n → n
    **linear("blocks.*.mlp.fc1", "hidden"),
    **linear("blocks.*.mlp.fc2", "hidden"),
    # vector: final layer's scale_shift_table (2, n), added elementwise to t
    "final_layer.scale_shift_table": "vector",
    # (1,0) output: readout n → p²·C_out = 32; (0,0) scalar: its bias
    **linear("final_layer.linear", "output", bias="scalar"),
}

# --------------------------------------------------------------------------- MMDiT


def _mmdit(qk_gain: str) -> dict[str, str]:
    """MMDiT's table; ``qk_gain`` is scalar for a fixed head dim, vector when it grows."""
    return {
        # vector: frozen sin-cos table (1, T, n)
        "pos_embed": "vector",
        # (0,1) input: patch-embed conv C·p² = 16 → n
        **linear("x_embedder.proj", "input"),
        # (0,1) input: timestep MLP 256 → n; (1,1) hidden: n → n
        **linear("time_text_embed.timestep_embedder.linear_1", "input"),
        **linear("time_text_embed.timestep_embedder.linear_2", "hidden"),
        # (0,1) input: pooled text 24 → n; (1,1) hidden: n → n
        **linear("time_text_embed.text_embedder.linear_1", "input"),
        **linear("time_text_embed.text_embedder.linear_2", "hidden"),
        # (0,1) input: text tokens joint_dim = 32 → n
        **linear("context_embedder", "input"),
        # (1,1) hidden: adaLN modulations n → 6n (image; context) and n → 2n (pre-only context)
        **linear("transformer_blocks.*.norm1.linear", "hidden"),
        **linear("transformer_blocks.*.norm1_context.linear", "hidden"),
        # (1,1) hidden: q/k/v n → n for both streams
        **linear("transformer_blocks.*.attn.to_q", "hidden"),
        **linear("transformer_blocks.*.attn.to_k", "hidden"),
        **linear("transformer_blocks.*.attn.to_v", "hidden"),
        **linear("transformer_blocks.*.attn.add_q_proj", "hidden"),
        **linear("transformer_blocks.*.attn.add_k_proj", "hidden"),
        **linear("transformer_blocks.*.attn.add_v_proj", "hidden"),
        # QK RMSNorm gains over the head dim: (0,0) scalar if d is fixed, vector if d ∝ n
        "transformer_blocks.*.attn.norm_q.weight": qk_gain,
        "transformer_blocks.*.attn.norm_k.weight": qk_gain,
        "transformer_blocks.*.attn.norm_added_q.weight": qk_gain,
        "transformer_blocks.*.attn.norm_added_k.weight": qk_gain,
        # (1,1) hidden: attention outputs n → n (to_add_out absent in the pre-only block)
        **linear("transformer_blocks.*.attn.to_out", "hidden"),
        **linear("transformer_blocks.*.attn.to_add_out", "hidden"),
        # (1,1) hidden: MLPs n → 4n → n for both streams
        **linear("transformer_blocks.*.ff.fc1", "hidden"),
        **linear("transformer_blocks.*.ff.fc2", "hidden"),
        **linear("transformer_blocks.*.ff_context.fc1", "hidden"),
        **linear("transformer_blocks.*.ff_context.fc2", "hidden"),
        # (1,1) hidden: final adaLN-continuous n → 2n
        **linear("norm_out.linear", "hidden"),
        # (1,0) output: readout n → p²·C = 16; (0,0) scalar: its bias
        **linear("proj_out", "output", bias="scalar"),
    }


MMDIT = _mmdit("scalar")
MMDIT_GROWING_HEAD_DIM = _mmdit("vector")

# --------------------------------------------------------------------------- diffusers

DIFFUSERS_DIT: dict[str, str] = {
    # (0,1) input: patch-embed conv C·p² = 16 → n (the sin-cos table is a buffer)
    **linear("pos_embed.proj", "input"),
    # every block owns its timestep/class embedder (AdaLayerNormZero.emb):
    # (0,1) input: 256 → n; (1,1) hidden: n → n; (0,1) input: class table (one-hot → n)
    **linear("transformer_blocks.*.norm1.emb.timestep_embedder.linear_1", "input"),
    **linear("transformer_blocks.*.norm1.emb.timestep_embedder.linear_2", "hidden"),
    "transformer_blocks.*.norm1.emb.class_embedder.embedding_table.weight": "input",
    # (1,1) hidden: adaLN-Zero modulation n → 6n
    **linear("transformer_blocks.*.norm1.linear", "hidden"),
    # (1,1) hidden: q/k/v/out n → n
    **linear("transformer_blocks.*.attn1.to_q", "hidden"),
    **linear("transformer_blocks.*.attn1.to_k", "hidden"),
    **linear("transformer_blocks.*.attn1.to_v", "hidden"),
    **linear("transformer_blocks.*.attn1.to_out.0", "hidden"),
    # (1,1) hidden: MLP n → 4n → n
    **linear("transformer_blocks.*.ff.net.0.proj", "hidden"),
    **linear("transformer_blocks.*.ff.net.2", "hidden"),
    # (1,1) hidden: final modulation n → 2n
    **linear("proj_out_1", "hidden"),
    # (1,0) output: readout n → p²·C = 16; (0,0) scalar: its bias
    **linear("proj_out_2", "output", bias="scalar"),
}

DIFFUSERS_PIXART: dict[str, str] = {
    # (0,1) input: patch-embed conv C·p² = 16 → n (the sin-cos table is a buffer)
    **linear("pos_embed.proj", "input"),
    # (0,1) input: timestep MLP 256 → n; (1,1) hidden: n → n
    **linear("adaln_single.emb.timestep_embedder.linear_1", "input"),
    **linear("adaln_single.emb.timestep_embedder.linear_2", "hidden"),
    # (1,1) hidden: adaLN-single n → 6n
    **linear("adaln_single.linear", "hidden"),
    # (0,1) input: caption projection 32 → n; (1,1) hidden: n → n
    **linear("caption_projection.linear_1", "input"),
    **linear("caption_projection.linear_2", "hidden"),
    # vector: per-block scale_shift_table (6, n), used elementwise
    "transformer_blocks.*.scale_shift_table": "vector",
    # (1,1) hidden: self-attention q/k/v/out n → n
    **linear("transformer_blocks.*.attn1.to_q", "hidden"),
    **linear("transformer_blocks.*.attn1.to_k", "hidden"),
    **linear("transformer_blocks.*.attn1.to_v", "hidden"),
    **linear("transformer_blocks.*.attn1.to_out.0", "hidden"),
    # (1,1) hidden: cross-attention; k/v read captions at cross_attention_dim = n (grows)
    **linear("transformer_blocks.*.attn2.to_q", "hidden"),
    **linear("transformer_blocks.*.attn2.to_k", "hidden"),
    **linear("transformer_blocks.*.attn2.to_v", "hidden"),
    **linear("transformer_blocks.*.attn2.to_out.0", "hidden"),
    # (1,1) hidden: MLP n → 4n → n
    **linear("transformer_blocks.*.ff.net.0.proj", "hidden"),
    **linear("transformer_blocks.*.ff.net.2", "hidden"),
    # vector: final scale_shift_table (2, n), used elementwise
    "scale_shift_table": "vector",
    # (1,0) output: readout n → p²·C_out = 32; (0,0) scalar: its bias
    **linear("proj_out", "output", bias="scalar"),
}

DIFFUSERS_SD3: dict[str, str] = {
    # (0,1) input: patch-embed conv C·p² = 16 → n (the sin-cos table is a buffer)
    **linear("pos_embed.proj", "input"),
    # (0,1) input: timestep MLP 256 → n; (1,1) hidden: n → n
    **linear("time_text_embed.timestep_embedder.linear_1", "input"),
    **linear("time_text_embed.timestep_embedder.linear_2", "hidden"),
    # (0,1) input: pooled text 24 → n; (1,1) hidden: n → n
    **linear("time_text_embed.text_embedder.linear_1", "input"),
    **linear("time_text_embed.text_embedder.linear_2", "hidden"),
    # (0,1) input: text tokens joint_attention_dim = 32 → n
    **linear("context_embedder", "input"),
    # (1,1) hidden: adaLN modulations n → 6n / n → 2n
    **linear("transformer_blocks.*.norm1.linear", "hidden"),
    **linear("transformer_blocks.*.norm1_context.linear", "hidden"),
    # (1,1) hidden: q/k/v n → n for both streams
    **linear("transformer_blocks.*.attn.to_q", "hidden"),
    **linear("transformer_blocks.*.attn.to_k", "hidden"),
    **linear("transformer_blocks.*.attn.to_v", "hidden"),
    **linear("transformer_blocks.*.attn.add_q_proj", "hidden"),
    **linear("transformer_blocks.*.attn.add_k_proj", "hidden"),
    **linear("transformer_blocks.*.attn.add_v_proj", "hidden"),
    # (0,0) scalar: QK RMSNorm gains over the fixed head dim 16
    "transformer_blocks.*.attn.norm_q.weight": "scalar",
    "transformer_blocks.*.attn.norm_k.weight": "scalar",
    "transformer_blocks.*.attn.norm_added_q.weight": "scalar",
    "transformer_blocks.*.attn.norm_added_k.weight": "scalar",
    # (1,1) hidden: attention outputs n → n
    **linear("transformer_blocks.*.attn.to_out.0", "hidden"),
    **linear("transformer_blocks.*.attn.to_add_out", "hidden"),
    # (1,1) hidden: MLPs n → 4n → n for both streams
    **linear("transformer_blocks.*.ff.net.0.proj", "hidden"),
    **linear("transformer_blocks.*.ff.net.2", "hidden"),
    **linear("transformer_blocks.*.ff_context.net.0.proj", "hidden"),
    **linear("transformer_blocks.*.ff_context.net.2", "hidden"),
    # (1,1) hidden: final adaLN-continuous n → 2n
    **linear("norm_out.linear", "hidden"),
    # (1,0) output: readout n → p²·C = 16; (0,0) scalar: its bias
    **linear("proj_out", "output", bias="scalar"),
}

#: Keyed by registry name. Growing-head-dim variants share their model's table except
#: where an elementwise tensor runs over the (now growing) head dim.
EXPECTED_ROLES: dict[str, dict[str, str]] = {
    "dit": DIT,
    "dit-growing-head-dim": DIT,
    "uvit": UVIT,
    "uvit-growing-head-dim": UVIT,
    "pixart": PIXART,
    "pixart-growing-head-dim": PIXART,
    "mmdit": MMDIT,
    "mmdit-growing-head-dim": MMDIT_GROWING_HEAD_DIM,
    "diffusers-dit": DIFFUSERS_DIT,
    "diffusers-pixart": DIFFUSERS_PIXART,
    "diffusers-sd3": DIFFUSERS_SD3,
}


# --------------------------------------------------------------------------- helpers

def _names(model_or_names: torch.nn.Module | Iterable[str]) -> list[str]:
    if isinstance(model_or_names, torch.nn.Module):
        return [name for name, _ in model_or_names.named_parameters()]
    return list(model_or_names)


def patterns_for(name: str, table: dict[str, str]) -> list[str]:
    """Every pattern of ``table`` that matches the parameter ``name``."""
    return [pattern for pattern in table if fnmatchcase(name, pattern)]


def role_of(name: str, table: dict[str, str]) -> str:
    """The expected role of ``name``; KeyError unless exactly one pattern matches."""
    found = patterns_for(name, table)
    if len(found) != 1:
        raise KeyError(f"{name!r} matches {len(found)} patterns: {found}")
    return table[found[0]]


def unmatched(model_or_names: torch.nn.Module | Iterable[str],
              table: dict[str, str]) -> dict[str, list[str]]:
    """Parameters matched by zero or by several patterns, with the patterns they match."""
    out = {}
    for name in _names(model_or_names):
        found = patterns_for(name, table)
        if len(found) != 1:
            out[name] = found
    return out


def unused_patterns(model_or_names: torch.nn.Module | Iterable[str],
                    table: dict[str, str]) -> list[str]:
    """Patterns that match no parameter (a stale or misspelt entry)."""
    names = _names(model_or_names)
    return [pattern for pattern in table if not any(fnmatchcase(n, pattern) for n in names)]


if __name__ == "__main__":  # python tests/expected_roles.py: check every table's coverage
    from tpcheck.models import registry

    bad = 0
    for target, table in EXPECTED_ROLES.items():
        try:
            spec = registry.build(target)
        except Exception as exc:  # e.g. diffusers not installed
            print(f"{target}: skipped ({type(exc).__name__}: {exc})")
            continue
        model = spec.factory(min(spec.widths))
        problems = unmatched(model, table)
        unused = unused_patterns(model, table)
        invalid = sorted({role for role in table.values() if role not in ROLES})
        bad += bool(problems or unused or invalid)
        status = "ok" if not (problems or unused or invalid) else "MISMATCH"
        print(f"{target}: {status} ({len(list(model.parameters()))} parameters)")
        for name, found in problems.items():
            print(f"  {name}: matches {found}")
        for pattern in unused:
            print(f"  unused pattern {pattern}")
        for role in invalid:
            print(f"  unknown role {role}")
    raise SystemExit(1 if bad else 0)
