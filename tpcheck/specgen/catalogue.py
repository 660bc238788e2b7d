"""diffusers' transformer classes, and whether ``diffusers:ClassName`` lints each one."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    name: str
    status: str


def class_names() -> list[str]:
    """Every ModelMixin class diffusers exports from ``diffusers.models.transformers``."""
    import diffusers
    import diffusers.models.transformers as transformers

    names = []
    for name in dir(transformers):
        obj = getattr(transformers, name, None)
        if isinstance(obj, type) and issubclass(obj, diffusers.ModelMixin):
            names.append(name)
    return sorted(set(names))


def diffusers_classes() -> list[Entry]:
    return [Entry(name, "unknown") for name in class_names()]
