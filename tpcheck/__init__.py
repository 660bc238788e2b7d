"""tpcheck: a symbolic Tensor-Programs (μP) parametrization checker for diffusion transformers.

``tpcheck.lint(spec)`` traces a model at several widths, classifies every weight by how the
graph uses it, measures its init / multiplier / learning-rate exponents and reports every
deviation from μP with a rule code (see ``tpcheck explain --all``).
"""

from __future__ import annotations

__version__ = "0.1.0"

from tpcheck.errors import TpcheckError
from tpcheck.spec import ModelSpec


def lint(spec: ModelSpec, **kwargs):
    """Lint ``spec`` (see :func:`tpcheck.pipeline.lint`)."""
    from tpcheck.pipeline import lint as _lint

    return _lint(spec, **kwargs)


def analyze(spec: ModelSpec, **kwargs):
    """Trace and classify ``spec`` (see :func:`tpcheck.pipeline.analyze`)."""
    from tpcheck.pipeline import analyze as _analyze

    return _analyze(spec, **kwargs)


__all__ = ["ModelSpec", "TpcheckError", "__version__", "analyze", "lint"]
