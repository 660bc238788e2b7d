"""diffusers' transformer classes, and whether ``tpcheck lint diffusers:ClassName`` works.

Whether a class is supported is known for sure only by running it: ``docs/diffusers_table.py``
lints and converts every class and records the outcome in :mod:`.verified`, for the diffusers
version it ran with. With that version installed, the recorded outcome is the status; with
another, a quick check of the class's signatures says whether a spec can be made at all (the
width arguments are found and every required forward argument is recognised), marked as not
verified.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from tpcheck.errors import TpcheckError

from . import inputs, scaling
from .config import defaults


@dataclass(frozen=True)
class Entry:
    """One class: its name and a short status (``supported ...`` or ``not supported: why``)."""

    name: str
    status: str

    @property
    def supported(self) -> bool:
        return self.status.startswith("supported")


def class_names() -> list[str]:
    """Every ModelMixin class diffusers exports from ``diffusers.models.transformers``."""
    import diffusers
    import diffusers.models.transformers as transformers

    names = set()
    for name in dir(transformers):
        try:
            obj = getattr(transformers, name)
        except (ImportError, RuntimeError, AttributeError):
            continue  # an optional dependency of that one class is missing
        if isinstance(obj, type) and issubclass(obj, diffusers.ModelMixin):
            names.add(name)
    return sorted(names)


def diffusers_classes() -> list[Entry]:
    """Every transformer class of the installed diffusers with its status."""
    import diffusers

    from . import verified

    recorded = verified.RESULTS if diffusers.__version__ == verified.DIFFUSERS_VERSION else {}
    entries = []
    for name in class_names():
        if name in recorded:
            entries.append(Entry(name, recorded[name]))
        else:
            recorded_for = (f"outcomes recorded for diffusers {verified.DIFFUSERS_VERSION}"
                            if verified.DIFFUSERS_VERSION else "no outcomes recorded")
            note = (f"not verified with diffusers {diffusers.__version__} ({recorded_for}; "
                    "docs/diffusers_table.py records them)")
            entries.append(Entry(name, quick_status(name, note)))
    return entries


def quick_status(name: str, note: str) -> str:
    """Whether a spec can be made for ``name`` at all, from its signatures alone."""
    import diffusers

    try:
        cls = getattr(diffusers, name)
    except (ImportError, RuntimeError, AttributeError) as exc:
        return f"not supported: cannot import it ({type(exc).__name__}: {exc})"
    try:
        config, _ = defaults(cls)
        params = set(inspect.signature(cls).parameters)
        scaling.find_axes(config, params, width_arg=None, heads_arg=None, head_dim=None,
                          label=f"diffusers:{name}")
        unknown = inputs.unrecognised(cls)
    except TpcheckError as exc:
        return f"not supported: {exc.what}"
    if unknown:
        return (f"not supported: forward argument(s) {', '.join(unknown)} cannot be inferred "
                "(pass --inputs)")
    return f"unverified: its signatures are recognised; {note}"
