"""Built-in targets addressable by name from the CLI (``tpcheck lint dit``).

Each entry maps a name to ``module:function`` returning a ModelSpec; modules are imported
only when their target is asked for, so ``diffusers`` is needed only for its targets.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from tpcheck.errors import TpcheckError
from tpcheck.spec import ModelSpec


@dataclass(frozen=True)
class Builtin:
    """A named target: where its spec builder lives and a one-line description."""

    module: str
    function: str
    description: str
    extra: str | None = None  # the pip extra its imports need, if any


BUILTINS: dict[str, Builtin] = {
    "dit": Builtin("tpcheck.models.dit", "dit_spec",
                   "DiT (Peebles & Xie 2023): adaLN-Zero blocks, fixed head dim"),
    "dit-growing-head-dim": Builtin("tpcheck.models.dit", "dit_growing_head_dim_spec",
                                    "DiT with a fixed head count: head dim grows with n"),
    "uvit": Builtin("tpcheck.models.uvit", "uvit_spec",
                    "U-ViT (Bao et al. 2023): time/class tokens, long skips, fixed head dim"),
    "uvit-growing-head-dim": Builtin("tpcheck.models.uvit", "uvit_growing_head_dim_spec",
                                     "U-ViT with a fixed head count: head dim grows with n"),
    "pixart": Builtin("tpcheck.models.pixart", "pixart_spec",
                      "PixArt-α (Chen et al. 2023): adaLN-single, cross-attention, fixed head dim"),
    "pixart-growing-head-dim": Builtin("tpcheck.models.pixart", "pixart_growing_head_dim_spec",
                                       "PixArt-α with a fixed head count: head dim grows with n"),
    "mmdit": Builtin("tpcheck.models.mmdit", "mmdit_spec",
                     "MMDiT (SD3, Esser et al. 2024): joint attention, QK RMSNorm, fixed head dim"),
    "mmdit-growing-head-dim": Builtin("tpcheck.models.mmdit", "mmdit_growing_head_dim_spec",
                                      "MMDiT with a fixed head count: head dim grows with n"),
    "diffusers-dit": Builtin("tpcheck.models.diffusers_targets", "dit_spec",
                             "diffusers DiTTransformer2DModel, small config, random init",
                             extra="diffusers"),
    "diffusers-pixart": Builtin("tpcheck.models.diffusers_targets", "pixart_spec",
                                "diffusers PixArtTransformer2DModel, small config, random init",
                                extra="diffusers"),
    "diffusers-sd3": Builtin("tpcheck.models.diffusers_targets", "sd3_spec",
                             "diffusers SD3Transformer2DModel, small config, random init",
                             extra="diffusers"),
    "diffusers-flux": Builtin("tpcheck.models.diffusers_targets", "flux_spec",
                              "diffusers FluxTransformer2DModel, small config, random init",
                              extra="diffusers"),
    "diffusers-lumina2": Builtin("tpcheck.models.diffusers_targets", "lumina2_spec",
                                 "diffusers Lumina2Transformer2DModel, small config, random init",
                                 extra="diffusers"),
    "diffusers-mochi": Builtin("tpcheck.models.diffusers_targets", "mochi_spec",
                               "diffusers MochiTransformer3DModel, small config, random init",
                               extra="diffusers"),
    "diffusers-hidream": Builtin("tpcheck.models.diffusers_targets", "hidream_spec",
                                 "diffusers HiDreamImageTransformer2DModel, small config, "
                                 "random init", extra="diffusers"),
    "diffusers-auraflow": Builtin("tpcheck.models.diffusers_targets", "auraflow_spec",
                                  "diffusers AuraFlowTransformer2DModel, small config, "
                                  "random init", extra="diffusers"),
}


def build(name: str) -> ModelSpec:
    """The ModelSpec of the built-in target ``name``."""
    entry = BUILTINS[name]
    try:
        module = importlib.import_module(entry.module)
    except ImportError as exc:
        hint = (f"pip install 'tpcheck[{entry.extra}]'" if entry.extra
                else "reinstall tpcheck")
        raise TpcheckError(f"built-in target {name!r} needs a package that is not installed: {exc}",
                           fix=hint) from exc
    return getattr(module, entry.function)()
