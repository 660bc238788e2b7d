"""Spec generation: a :class:`~tpcheck.spec.ModelSpec` built from a model class.

``autospec(cls)`` reads the class's config, decides which sizes follow the width, reduces the
depth, infers example inputs and picks the traced widths, checking each decision on the meta
device (:mod:`.generate`). ``diffusers_classes()`` lists diffusers' transformer classes and
whether tpcheck can lint them by name (:mod:`.catalogue`). ``extend_plan(plan, model)`` gives
a plan made at reduced depth a rule for every block of the full-depth model
(:mod:`.fulldepth`).

Both are imported on first use: ``tpcheck.targets`` imports this package for every target,
and probing needs torch's heavier machinery only when a class is actually specced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .catalogue import diffusers_classes
    from .fulldepth import extend_plan
    from .generate import autospec

__all__ = ["autospec", "diffusers_classes", "extend_plan"]


def __getattr__(name: str) -> Any:
    if name == "autospec":
        from .generate import autospec

        return autospec
    if name == "diffusers_classes":
        from .catalogue import diffusers_classes

        return diffusers_classes
    if name == "extend_plan":
        from .fulldepth import extend_plan

        return extend_plan
    raise AttributeError(f"module 'tpcheck.specgen' has no attribute {name!r}")
