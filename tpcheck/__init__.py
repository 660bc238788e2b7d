"""tpcheck: a symbolic Tensor-Programs (μP) parametrization checker for diffusion transformers.

``tpcheck.lint(spec)`` traces a model at several widths, classifies every weight by how the
graph uses it, measures its init / multiplier / learning-rate exponents and reports every
deviation from μP with a rule code (see ``tpcheck explain --all``). ``tpcheck.convert(spec)``
writes the μP :class:`Plan` of a standard model, and ``tpcheck.coord_check(spec)`` measures
activation and update sizes across widths.

The public names below are imported on first use, so ``import tpcheck`` stays cheap (it
does not import torch): the pytest plugin and the CLI's ``--help`` load it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from tpcheck.errors import TpcheckError

if TYPE_CHECKING:
    from tpcheck.check import Finding
    from tpcheck.conversion import convert
    from tpcheck.coord import coord_check
    from tpcheck.plan import Plan
    from tpcheck.report import Report
    from tpcheck.spec import ModelSpec
    from tpcheck.specgen import autospec
    from tpcheck.testing import NotMuP, assert_mup

#: Public name -> the module that defines it (imported lazily by ``__getattr__``).
_LAZY = {
    "ModelSpec": "tpcheck.spec",
    "Plan": "tpcheck.plan",
    "convert": "tpcheck.conversion",
    "Report": "tpcheck.report",
    "Finding": "tpcheck.check",
    "coord_check": "tpcheck.coord",
    "autospec": "tpcheck.specgen",
    "assert_mup": "tpcheck.testing",
    "NotMuP": "tpcheck.testing",
}


def lint(spec: ModelSpec, **kwargs: Any) -> Report:
    """Every departure of ``spec`` from μP, as a :class:`Report` (:func:`tpcheck.pipeline.lint`)."""
    from tpcheck.pipeline import lint as _lint

    return _lint(spec, **kwargs)


def analyze(spec: ModelSpec, **kwargs: Any) -> Any:
    """Trace and classify ``spec`` (see :func:`tpcheck.pipeline.analyze`)."""
    from tpcheck.pipeline import analyze as _analyze

    return _analyze(spec, **kwargs)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tpcheck' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = ["Finding", "ModelSpec", "NotMuP", "Plan", "Report", "TpcheckError", "__version__",
           "analyze", "assert_mup", "autospec", "convert", "coord_check", "lint"]
