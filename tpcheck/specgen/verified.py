"""What ``tpcheck lint diffusers:ClassName`` gave for each class: written by
``docs/diffusers_table.py`` (do not edit by hand), read by :mod:`.catalogue`."""

DIFFUSERS_VERSION = "0.42.1"
RESULTS: dict[str, str] = {
    "AceStepTransformer1DModel": (
        "not supported: spec: cannot infer the forward argument 'encoder_hidden_states' "
        "of AceStepTransformer1DModel: the config sets none of caption_channels, "
        "joint_attention_dim, text_e..."
    ),
    "AllegroTransformer3DModel": (
        "supported (lint: 30 errors; converted plan: 0 errors, 0 warnings)"
    ),
    "AnyFlowFARTransformer3DModel": (
        "not supported: spec: cannot infer the forward argument 'chunk_partition' of "
        "AnyFlowFARTransformer3DModel: its name says nothing tpcheck can size from the "
        "config."
    ),
    "AnyFlowTransformer3DModel": (
        "not supported: spec: cannot infer example inputs for "
        "AnyFlowTransformer3DModel.forward: no combination of the arguments it takes ran;"
        " the first (hidden_states, timestep, r_timest..."
    ),
    "AuraFlowTransformer2DModel": (
        "supported (lint: 56 errors; converted plan: 0 errors, 0 warnings)"
    ),
    "BriaFibo2Transformer2DModel": (
        "not supported: spec: cannot infer example inputs for "
        "BriaFibo2Transformer2DModel.forward: no combination of the arguments it takes "
        "ran; the first (hidden_states, timestep, encode..."
    ),
    "BriaFiboTransformer2DModel": (
        "not supported: spec: cannot infer example inputs for "
        "BriaFiboTransformer2DModel.forward: no combination of the arguments it takes "
        "ran; the first (hidden_states, encoder_hidden_st..."
    ),
    "BriaTransformer2DModel": (
        "supported (lint: 47 errors; converted plan: 0 errors, 0 warnings)"
    ),
    "ChromaTransformer2DModel": (
        "supported (lint: 43 errors; converted plan: 0 errors, 0 warnings)"
    ),
    "ChronoEditTransformer3DModel": (
        "supported (lint: 30 errors; converted plan: 0 errors, 0 warnings)"
    ),
    "CogVideoXTransformer3DModel": (
        "supported (lint: 19 errors; converted plan: 0 errors, 0 warnings)"
    ),
    "CogView3PlusTransformer2DModel": (
        "supported (lint: 19 errors; converted plan: 0 errors, 0 warnings)"
    ),
    "CogView4Transformer2DModel": (
        "supported (lint: 21 errors; converted plan: 0 errors, 0 warnings)"
    ),
    "ConsisIDTransformer3DModel": (
        "supported (lint: 19 errors; converted plan: 0 errors, 0 warnings)"
    ),
    "Cosmos3OmniTransformer": (
        "not supported: spec: cannot infer the latent's channels for "
        "Cosmos3OmniTransformer: the config has none of in_channels, in_dim, "
        "in_visual_dim, io_channels, in_chans, input_dims, ..."
    ),
    "CosmosTransformer3DModel": (
        "not supported: spec: cannot infer example inputs for "
        "CosmosTransformer3DModel.forward: no combination of the arguments it takes ran; "
        "the first (hidden_states, timestep, encoder_h..."
    ),
    "DiTTransformer2DModel": (
        "supported (lint: 23 errors; converted plan: 0 errors, 0 warnings)"
    ),
    "DreamLiteTransformer2DModel": (
        "not supported: spec: diffusers:DreamLiteTransformer2DModel cannot be built at "
        "width 176 from its defaults: ValueError: num_channels (4) must be divisible by "
        "num_groups (32)"
    ),
    "EasyAnimateTransformer3DModel": (
        "not supported: spec: cannot infer example inputs for "
        "EasyAnimateTransformer3DModel.forward: no combination of the arguments it takes "
        "ran; the first (hidden_states, timestep, enco..."
    ),
    "ErnieImageTransformer2DModel": (
        "not supported: spec: cannot infer the forward argument 'text_bth' of "
        "ErnieImageTransformer2DModel: its name says nothing tpcheck can size from the "
        "config."
    ),
    "Flux2Transformer2DModel": (
        "supported (lint: 43 errors; converted plan: 0 errors, 0 warnings)"
    ),
    "Flux3Transformer2DModel": (
        "supported (lint: 52 errors; converted plan: 0 errors, 0 warnings)"
    ),
    "FluxTransformer2DModel": (
        "supported (lint: 49 errors; converted plan: 0 errors, 0 warnings)"
    ),
    "GlmImageTransformer2DModel": (
        "not supported: spec: cannot infer the forward argument 'prior_token_id' of "
        "GlmImageTransformer2DModel: its name says nothing tpcheck can size from the "
        "config."
    ),
    "HeliosTransformer3DModel": (
        "supported (lint: 32 errors; converted plan: 0 errors, 0 warnings)"
    ),
    "HiDreamImageTransformer2DModel": (
        "not supported: spec: diffusers:HiDreamImageTransformer2DModel cannot be built at"
        " width 256 from its defaults: TypeError: 'int' object is not subscriptable"
    ),
    "HunyuanDiT2DModel": (
        "not supported: spec: cannot infer example inputs for HunyuanDiT2DModel.forward: "
        "no combination of the arguments it takes ran; the first (hidden_states, "
        "timestep, encoder_hidden_s..."
    ),
    "HunyuanImageTransformer2DModel": (
        "supported (lint: 66 errors; converted plan: 0 errors, 0 warnings)"
    ),
    "HunyuanVideo15Transformer3DModel": (
        "not supported: spec: cannot infer example inputs for "
        "HunyuanVideo15Transformer3DModel.forward: no combination of the arguments it "
        "takes ran; the first (hidden_states, timestep, e..."
    ),
    "HunyuanVideoFramepackTransformer3DModel": (
        "not supported: spec: cannot infer the forward argument 'image_embeds' of "
        "HunyuanVideoFramepackTransformer3DModel: its name says nothing tpcheck can size "
        "from the config."
    ),
    "HunyuanVideoTransformer3DModel": (
        "supported (lint: 70 errors; converted plan: 0 errors, 0 warnings)"
    ),
    "Ideogram4Transformer2DModel": (
        "not supported: spec: cannot infer the forward argument 'encoder_hidden_states' "
        "of Ideogram4Transformer2DModel: the config sets none of caption_channels, "
        "joint_attention_dim, text..."
    ),
    "JoyImageEditPlusTransformer3DModel": (
        "not supported: spec: cannot infer example inputs for "
        "JoyImageEditPlusTransformer3DModel.forward: no combination of the arguments it "
        "takes ran; the first (hidden_states, timestep,..."
    ),
    "JoyImageEditTransformer3DModel": (
        "supported (lint: 26 errors; converted plan: 0 errors, 0 warnings)"
    ),
    "Kandinsky5Transformer3DModel": (
        "not supported: spec: cannot infer the forward argument 'visual_rope_pos' of "
        "Kandinsky5Transformer3DModel: its name says nothing tpcheck can size from the "
        "config."
    ),
    "Kandinsky6SRTransformer3DModel": (
        "not supported: spec: cannot infer example inputs for "
        "Kandinsky6SRTransformer3DModel.forward: no combination of the arguments it takes"
        " ran; the first (hidden_states, timestep, ret..."
    ),
    "Kandinsky6Transformer3DModel": (
        "not supported: spec: diffusers:Kandinsky6Transformer3DModel cannot be built at "
        "width 64 from its defaults: ValueError: num_channels must be divisible by "
        "head_dim"
    ),
    "Krea2Transformer2DModel": (
        "not supported: spec: cannot infer the forward argument 'position_ids' of "
        "Krea2Transformer2DModel: its name says nothing tpcheck can size from the config."
    ),
    "LTX2VideoTransformer3DModel": (
        "not supported: spec: cannot infer the forward argument 'audio_hidden_states' of "
        "LTX2VideoTransformer3DModel: its name says nothing tpcheck can size from the "
        "config."
    ),
    "LTXVideoTransformer3DModel": (
        "supported (lint: 29 errors; converted plan: 0 errors, 0 warnings)"
    ),
    "LatteTransformer3DModel": (
        "supported (lint: 34 errors; converted plan: 0 errors, 0 warnings)"
    ),
    "LongCatAudioDiTTransformer": (
        "not supported: spec: cannot tell which constructor argument of "
        "diffusers:LongCatAudioDiTTransformer is the width."
    ),
    "LongCatImageTransformer2DModel": (
        "supported (lint: 47 errors; converted plan: 0 errors, 0 warnings)"
    ),
    "Lumina2Transformer2DModel": (
        "supported (lint: 54 errors; converted plan: 0 errors, 0 warnings)"
    ),
    "LuminaNextDiT2DModel": (
        "not supported: spec: diffusers:LuminaNextDiT2DModel cannot be built at width 144"
        " from its defaults: TypeError: unsupported operand type(s) for *: 'int' and "
        "'NoneType'"
    ),
    "MiniMaxH3Transformer3DModel": (
        "not supported: spec: cannot infer the forward argument 'audio_hidden_states' of "
        "MiniMaxH3Transformer3DModel: its name says nothing tpcheck can size from the "
        "config."
    ),
    "MiniMaxMusic3RVQDepthDecoder": (
        "not supported: spec: cannot infer the latent's channels for "
        "MiniMaxMusic3RVQDepthDecoder: the config has none of in_channels, in_dim, "
        "in_visual_dim, io_channels, in_chans, input_..."
    ),
    "MiniMaxMusic3Transformer1DModel": (
        "not supported: spec: cannot infer example inputs for "
        "MiniMaxMusic3Transformer1DModel.forward: no combination of the arguments it "
        "takes ran; the first (hidden_states, timestep, en..."
    ),
    "MochiTransformer3DModel": (
        "supported (lint: 36 errors; converted plan: 0 errors, 0 warnings)"
    ),
    "MotifVideoTransformer3DModel": (
        "supported (lint: 50 errors; converted plan: 0 errors, 0 warnings)"
    ),
    "NucleusMoEImageTransformer2DModel": (
        "not supported: spec: cannot infer example inputs for "
        "NucleusMoEImageTransformer2DModel.forward: no combination of the arguments it "
        "takes ran; the first (hidden_states, img_shapes..."
    ),
    "OmniGenTransformer2DModel": (
        "not supported: spec: diffusers:OmniGenTransformer2DModel cannot be built at "
        "width 192 from its defaults: TypeError: 'NoneType' object is not subscriptable"
    ),
    "OvisImageTransformer2DModel": (
        "supported (lint: 47 errors; converted plan: 0 errors, 0 warnings)"
    ),
    "PRXTransformer2DModel": (
        "supported (lint: 22 errors; converted plan: 0 errors, 1 warnings)"
    ),
    "PixArtTransformer2DModel": (
        "supported (lint: 28 errors; converted plan: 0 errors, 0 warnings)"
    ),
    "PriorTransformer": (
        "not supported: spec: cannot infer the latent's channels for PriorTransformer: "
        "the config has none of in_channels, in_dim, in_visual_dim, io_channels, "
        "in_chans, input_dims, latent..."
    ),
    "QwenImage21Transformer2DModel": (
        "not supported: spec: cannot infer the forward argument 'img_mask' of "
        "QwenImage21Transformer2DModel: its name says nothing tpcheck can size from the "
        "config."
    ),
    "QwenImageTransformer2DModel": (
        "supported (lint: 35 errors; converted plan: 0 errors, 0 warnings)"
    ),
    "RFD4ProteinaTransformer": (
        "not supported: spec: cannot tell which constructor argument of "
        "diffusers:RFD4ProteinaTransformer is the width."
    ),
    "SD3Transformer2DModel": (
        "supported (lint: 60 errors; converted plan: 0 errors, 0 warnings)"
    ),
    "SanaTransformer2DModel": (
        "supported (lint: 30 errors; converted plan: 0 errors, 0 warnings)"
    ),
    "SanaVideoTransformer3DModel": (
        "supported (lint: 32 errors; converted plan: 0 errors, 0 warnings)"
    ),
    "SanaWMLTX2RefinerTransformer3DModel": (
        "not supported: spec: cannot infer the forward argument 'video_rotary_emb' of "
        "SanaWMLTX2RefinerTransformer3DModel: its name says nothing tpcheck can size from"
        " the config."
    ),
    "SanaWMTransformer3DModel": (
        "not supported: spec: cannot infer example inputs for "
        "SanaWMTransformer3DModel.forward: no combination of the arguments it takes ran; "
        "the first (hidden_states, timestep, encoder_h..."
    ),
    "SkyReelsV2Transformer3DModel": (
        "supported (lint: 30 errors; converted plan: 0 errors, 0 warnings)"
    ),
    "StableAudio3DiTModel": (
        "supported (lint: 28 errors; converted plan: 0 errors, 0 warnings)"
    ),
    "StableAudioDiTModel": (
        "supported (lint: 24 errors; converted plan: 0 errors, 0 warnings)"
    ),
    "T5FilmDecoder": (
        "not supported: spec: cannot infer the forward argument 'encodings_and_masks' of "
        "T5FilmDecoder: its name says nothing tpcheck can size from the config."
    ),
    "Transformer2DModel": (
        "not supported: spec: diffusers:Transformer2DModel cannot be built at width 176 "
        "from its defaults: NotImplementedError: Forward pass is not implemented when "
        "`patch_size` is not No..."
    ),
    "TransformerTemporalModel": (
        "not supported: spec: diffusers:TransformerTemporalModel cannot be built at width"
        " 176 from its defaults: ValueError: num_channels (4) must be divisible by "
        "num_groups (32)"
    ),
    "WanAnimate2Transformer3DModel": (
        "not supported: spec: cannot infer the forward argument 'condition_latents' of "
        "WanAnimate2Transformer3DModel: its name says nothing tpcheck can size from the "
        "config."
    ),
    "WanAnimateTransformer3DModel": (
        "not supported: spec: cannot infer example inputs for "
        "WanAnimateTransformer3DModel.forward: no combination of the arguments it takes "
        "ran; the first (hidden_states, timestep, encod..."
    ),
    "WanTransformer3DModel": (
        "supported (lint: 30 errors; converted plan: 0 errors, 0 warnings)"
    ),
    "WanVACETransformer3DModel": (
        "not supported: spec: cannot infer example inputs for "
        "WanVACETransformer3DModel.forward: no combination of the arguments it takes ran;"
        " the first (hidden_states, timestep, encoder_..."
    ),
    "ZImageTransformer2DModel": (
        "not supported: spec: cannot infer example inputs for "
        "ZImageTransformer2DModel.forward: no combination of the arguments it takes ran; "
        "the first (x, t, cap_feats, return_dict) fail..."
    ),
}
