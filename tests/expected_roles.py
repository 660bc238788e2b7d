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

DIFFUSERS_FLUX: dict[str, str] = {
    # (0,1) input: packed patches C·p² = 16 → n (a Linear: the pipeline patchifies)
    **linear("x_embedder", "input"),
    # (0,1) input: timestep MLP 256 → n; (1,1) hidden: n → n
    **linear("time_text_embed.timestep_embedder.linear_1", "input"),
    **linear("time_text_embed.timestep_embedder.linear_2", "hidden"),
    # (0,1) input: pooled CLIP text 24 → n; (1,1) hidden: n → n
    **linear("time_text_embed.text_embedder.linear_1", "input"),
    **linear("time_text_embed.text_embedder.linear_2", "hidden"),
    # (0,1) input: T5 tokens joint_attention_dim = 32 → n
    **linear("context_embedder", "input"),
    # double-stream blocks (as SD3's): (1,1) hidden adaLN-Zero n → 6n for each stream
    **linear("transformer_blocks.*.norm1.linear", "hidden"),
    **linear("transformer_blocks.*.norm1_context.linear", "hidden"),
    # (1,1) hidden: q/k/v n → n for both streams, attention outputs n → n
    **linear("transformer_blocks.*.attn.to_q", "hidden"),
    **linear("transformer_blocks.*.attn.to_k", "hidden"),
    **linear("transformer_blocks.*.attn.to_v", "hidden"),
    **linear("transformer_blocks.*.attn.add_q_proj", "hidden"),
    **linear("transformer_blocks.*.attn.add_k_proj", "hidden"),
    **linear("transformer_blocks.*.attn.add_v_proj", "hidden"),
    **linear("transformer_blocks.*.attn.to_out.0", "hidden"),
    **linear("transformer_blocks.*.attn.to_add_out", "hidden"),
    # (0,0) scalar: QK RMSNorm gains over the fixed head dim 16 (both streams)
    "transformer_blocks.*.attn.norm_q.weight": "scalar",
    "transformer_blocks.*.attn.norm_k.weight": "scalar",
    "transformer_blocks.*.attn.norm_added_q.weight": "scalar",
    "transformer_blocks.*.attn.norm_added_k.weight": "scalar",
    # (1,1) hidden: MLPs n → 4n → n for both streams
    **linear("transformer_blocks.*.ff.net.0.proj", "hidden"),
    **linear("transformer_blocks.*.ff.net.2", "hidden"),
    **linear("transformer_blocks.*.ff_context.net.0.proj", "hidden"),
    **linear("transformer_blocks.*.ff_context.net.2", "hidden"),
    # single-stream blocks: (1,1) hidden adaLN-Zero n → 3n, q/k/v n → n, MLP n → 4n,
    # and the fused output [attention n, MLP 4n] → n
    **linear("single_transformer_blocks.*.norm.linear", "hidden"),
    **linear("single_transformer_blocks.*.attn.to_q", "hidden"),
    **linear("single_transformer_blocks.*.attn.to_k", "hidden"),
    **linear("single_transformer_blocks.*.attn.to_v", "hidden"),
    "single_transformer_blocks.*.attn.norm_q.weight": "scalar",
    "single_transformer_blocks.*.attn.norm_k.weight": "scalar",
    **linear("single_transformer_blocks.*.proj_mlp", "hidden"),
    **linear("single_transformer_blocks.*.proj_out", "hidden"),
    # (1,1) hidden: final adaLN-continuous n → 2n
    **linear("norm_out.linear", "hidden"),
    # (1,0) output: readout n → C·p² = 16; (0,0) scalar: its bias
    **linear("proj_out", "output", bias="scalar"),
}


def _lumina2_block(prefix: str, modulated: bool) -> dict[str, str]:
    """A Lumina2TransformerBlock (RMSNorm everywhere; modulated blocks have adaLN n → 4n)."""
    table = {
        # (1,1) hidden: q n → n, GQA k/v n → n/2 (KV heads n/32 grow too), out n → n; no biases
        **linear(f"{prefix}.attn.to_q", "hidden", bias=None),
        **linear(f"{prefix}.attn.to_k", "hidden", bias=None),
        **linear(f"{prefix}.attn.to_v", "hidden", bias=None),
        **linear(f"{prefix}.attn.to_out.0", "hidden", bias=None),
        # (0,0) scalar: QK RMSNorm gains over the fixed head dim 16
        f"{prefix}.attn.norm_q.weight": "scalar",
        f"{prefix}.attn.norm_k.weight": "scalar",
        # (1,1) hidden: SwiGLU n → 4n (rounded to a multiple of 16) → n
        **linear(f"{prefix}.feed_forward.linear_1", "hidden", bias=None),
        **linear(f"{prefix}.feed_forward.linear_2", "hidden", bias=None),
        **linear(f"{prefix}.feed_forward.linear_3", "hidden", bias=None),
        # vector: RMSNorm gains over n
        f"{prefix}.ffn_norm1.weight": "vector",
        f"{prefix}.norm2.weight": "vector",
        f"{prefix}.ffn_norm2.weight": "vector",
    }
    if modulated:
        # (1,1) hidden: adaLN n → 4n (its input is the timestep embedding, min(n, 1024) = n)
        table.update(linear(f"{prefix}.norm1.linear", "hidden"))
        table[f"{prefix}.norm1.norm.weight"] = "vector"
    else:
        table[f"{prefix}.norm1.weight"] = "vector"
    return table


DIFFUSERS_LUMINA2: dict[str, str] = {
    # (0,1) input: patch embedding as a Linear on C·p² = 16 → n
    **linear("x_embedder", "input"),
    # (0,1) input: timestep MLP 256 → min(n, 1024) = n; (1,1) hidden: n → n
    **linear("time_caption_embed.timestep_embedder.linear_1", "input"),
    **linear("time_caption_embed.timestep_embedder.linear_2", "hidden"),
    # (0,0) scalar: RMSNorm gain over the caption features (32, fixed); (0,1) input: 32 → n
    "time_caption_embed.caption_embedder.0.weight": "scalar",
    **linear("time_caption_embed.caption_embedder.1", "input"),
    **_lumina2_block("noise_refiner.*", modulated=True),
    **_lumina2_block("context_refiner.*", modulated=False),
    **_lumina2_block("layers.*", modulated=True),
    # (1,1) hidden: final scale n → n; (1,0) output: readout n → p²·C = 16, its bias scalar
    **linear("norm_out.linear_1", "hidden"),
    **linear("norm_out.linear_2", "output", bias="scalar"),
}

DIFFUSERS_MOCHI: dict[str, str] = {
    # (0,1) input: (3, heads, d/2) RoPE frequencies, contracted over the 3 position coordinates
    # (einsum "nd,dhf->nhf"): fan_in 3, fan_out heads·d/2 grows
    "pos_frequencies": "input",
    # (0,1) input: patch-embed conv C·p² = 16 → n
    **linear("patch_embed.proj", "input"),
    # (0,1) input: timestep MLP 32 → n; (1,1) hidden: n → n
    **linear("time_embed.timestep_embedder.linear_1", "input"),
    **linear("time_embed.timestep_embedder.linear_2", "hidden"),
    # attention pooling of the T5 tokens (fixed width 32): (0,0) scalar k/v 32 → 64 and q 32 → 32;
    # (0,1) input: its output 32 → n
    **linear("time_embed.pooler.to_kv", "scalar", bias="scalar"),
    **linear("time_embed.pooler.to_q", "scalar", bias="scalar"),
    **linear("time_embed.pooler.to_out", "input"),
    # (0,0) scalar: caption tokens 32 → the caption stream's fixed width 32
    **linear("time_embed.caption_proj", "scalar", bias="scalar"),
    # (1,1) hidden: visual adaLN n → 4n
    **linear("transformer_blocks.*.norm1.linear", "hidden"),
    # (1,0) output: caption-stream adaLN n → 4·32 (full block) and n → 32 (the last, pre-only
    # block's continuous norm): the conditioning is width n, the caption stream is not
    **linear("transformer_blocks.*.norm1_context.linear", "output", bias="scalar"),
    **linear("transformer_blocks.*.norm1_context.linear_1", "output", bias="scalar"),
    # (1,1) hidden: visual q/k/v n → n and out n → n
    **linear("transformer_blocks.*.attn1.to_q", "hidden", bias=None),
    **linear("transformer_blocks.*.attn1.to_k", "hidden", bias=None),
    **linear("transformer_blocks.*.attn1.to_v", "hidden", bias=None),
    **linear("transformer_blocks.*.attn1.to_out.0", "hidden"),
    # (0,1) input: caption q/k/v 32 → n (the caption stream joins the width-n attention)
    **linear("transformer_blocks.*.attn1.add_q_proj", "input", bias=None),
    **linear("transformer_blocks.*.attn1.add_k_proj", "input", bias=None),
    **linear("transformer_blocks.*.attn1.add_v_proj", "input", bias=None),
    # (1,0) output: caption attention out n → 32 (absent in the pre-only block)
    **linear("transformer_blocks.*.attn1.to_add_out", "output", bias="scalar"),
    # (0,0) scalar: QK RMSNorm gains over the fixed head dim 16
    "transformer_blocks.*.attn1.norm_q.weight": "scalar",
    "transformer_blocks.*.attn1.norm_k.weight": "scalar",
    "transformer_blocks.*.attn1.norm_added_q.weight": "scalar",
    "transformer_blocks.*.attn1.norm_added_k.weight": "scalar",
    # (1,1) hidden: visual SwiGLU n → 2·⌊8n/3⌋ and ⌊8n/3⌋ → n, no biases
    **linear("transformer_blocks.*.ff.net.0.proj", "hidden", bias=None),
    **linear("transformer_blocks.*.ff.net.2", "hidden", bias=None),
    # (0,0) scalar: caption SwiGLU 32 → 2·85 and 85 → 32, all fixed
    **linear("transformer_blocks.*.ff_context.net.0.proj", "scalar", bias=None),
    **linear("transformer_blocks.*.ff_context.net.2", "scalar", bias=None),
    # (1,1) hidden: final adaLN-continuous n → 2n
    **linear("norm_out.linear", "hidden"),
    # (1,0) output: readout n → p²·C = 16; (0,0) scalar: its bias
    **linear("proj_out", "output", bias="scalar"),
}


def _hidream_moe(prefix: str) -> dict[str, str]:
    """A mixture of SwiGLU experts: each expert and the shared one n → ≈ 8n/3 (rounded up to
    a multiple of 256) → n; the router n → 4 experts is a readout of the width."""
    table: dict[str, str] = {}
    for expert in (f"{prefix}.shared_experts", f"{prefix}.experts.*"):
        for w in ("w1", "w2", "w3"):
            table.update(linear(f"{expert}.{w}", "hidden", bias=None))
    table[f"{prefix}.gate.weight"] = "output"  # (1,0): F.linear(x, weight), n → 4 scores
    return table


def _hidream_attention(prefix: str, suffix: str = "") -> dict[str, str]:
    return {
        # (1,1) hidden: q/k/v/out n → n
        **linear(f"{prefix}.to_q{suffix}", "hidden"),
        **linear(f"{prefix}.to_k{suffix}", "hidden"),
        **linear(f"{prefix}.to_v{suffix}", "hidden"),
        **linear(f"{prefix}.to_out{suffix}", "hidden"),
        # vector: QK RMSNorm over the whole width n (nn.RMSNorm(inner_dim)), not a head
        f"{prefix}.q_rms_norm{suffix}.weight": "vector",
        f"{prefix}.k_rms_norm{suffix}.weight": "vector",
    }


DIFFUSERS_HIDREAM: dict[str, str] = {
    # (0,1) input: timestep MLP 256 → n; (1,1) hidden: n → n
    **linear("t_embedder.timestep_embedder.linear_1", "input"),
    **linear("t_embedder.timestep_embedder.linear_2", "hidden"),
    # (0,1) input: pooled CLIP 24 → n; (1,1) hidden: n → n
    **linear("p_embedder.pooled_embedder.linear_1", "input"),
    **linear("p_embedder.pooled_embedder.linear_2", "hidden"),
    # (0,1) input: patches as a Linear, C·p² = 16 → n
    **linear("x_embedder.proj", "input"),
    # (0,1) input: caption projections (Llama 16 → n per block, T5 32 → n last), no bias
    **linear("caption_projection.*.linear", "input", bias=None),
    # double-stream block: (1,1) hidden adaLN n → 12n, both streams' attention, MoE image FFN
    # and a SwiGLU text FFN n → ≈ 8n/3 → n
    **linear("double_stream_blocks.*.block.adaLN_modulation.1", "hidden"),
    **_hidream_attention("double_stream_blocks.*.block.attn1"),
    **_hidream_attention("double_stream_blocks.*.block.attn1", "_t"),
    **_hidream_moe("double_stream_blocks.*.block.ff_i"),
    **{f"double_stream_blocks.*.block.ff_t.{w}.weight": "hidden" for w in ("w1", "w2", "w3")},
    # single-stream block: (1,1) hidden adaLN n → 6n, attention, MoE FFN
    **linear("single_stream_blocks.*.block.adaLN_modulation.1", "hidden"),
    **_hidream_attention("single_stream_blocks.*.block.attn1"),
    **_hidream_moe("single_stream_blocks.*.block.ff_i"),
    # (1,1) hidden: final adaLN n → 2n; (1,0) output: readout n → p²·C = 16, bias scalar
    **linear("final_layer.adaLN_modulation.1", "hidden"),
    **linear("final_layer.linear", "output", bias="scalar"),
}


def _auraflow_ff(prefix: str) -> dict[str, str]:
    """SwiGLU n → find_multiple(⌊8n/3⌋, 256) → n, no biases."""
    return {f"{prefix}.{w}.weight": "hidden" for w in ("linear_1", "linear_2", "out_projection")}


DIFFUSERS_AURAFLOW: dict[str, str] = {
    # vector: learned tables over n: the position table (1, 64, n), added to the patches, and
    # 8 register tokens (1, 8, n), concatenated to the text tokens
    "pos_embed.pos_embed": "vector",
    "register_tokens": "vector",
    # (0,1) input: patches as a Linear, C·p² = 16 → n
    **linear("pos_embed.proj", "input"),
    # (0,1) input: T5 tokens 32 → caption_projection_dim = n, no bias
    **linear("context_embedder", "input", bias=None),
    # (0,1) input: timestep MLP 256 → n; (1,1) hidden: n → n
    **linear("time_step_proj.linear_1", "input"),
    **linear("time_step_proj.linear_2", "hidden"),
    # joint (MMDiT) block: (1,1) hidden adaLN-Zero n → 6n (no bias) for both streams, q/k/v
    # and outputs n → n for both streams, SwiGLU FFNs
    **linear("joint_transformer_blocks.*.norm1.linear", "hidden", bias=None),
    **linear("joint_transformer_blocks.*.norm1_context.linear", "hidden", bias=None),
    **{f"joint_transformer_blocks.*.attn.{p}.weight": "hidden"
       for p in ("to_q", "to_k", "to_v", "add_q_proj", "add_k_proj", "add_v_proj", "to_out.0",
                 "to_add_out")},
    **_auraflow_ff("joint_transformer_blocks.*.ff"),
    **_auraflow_ff("joint_transformer_blocks.*.ff_context"),
    # single-stream block: the same without the caption stream
    **linear("single_transformer_blocks.*.norm1.linear", "hidden", bias=None),
    **{f"single_transformer_blocks.*.attn.{p}.weight": "hidden"
       for p in ("to_q", "to_k", "to_v", "to_out.0")},
    **_auraflow_ff("single_transformer_blocks.*.ff"),
    # (1,1) hidden: final scale/shift n → 2n; (1,0) output: readout n → p²·C = 16, no bias
    **linear("norm_out.linear", "hidden", bias=None),
    **linear("proj_out", "output", bias=None),
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
    "diffusers-flux": DIFFUSERS_FLUX,
    "diffusers-lumina2": DIFFUSERS_LUMINA2,
    "diffusers-mochi": DIFFUSERS_MOCHI,
    "diffusers-hidream": DIFFUSERS_HIDREAM,
    "diffusers-auraflow": DIFFUSERS_AURAFLOW,
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
