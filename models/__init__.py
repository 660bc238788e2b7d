"""Reference diffusion transformers written from scratch in standard parametrization.

Each model module (:mod:`~tpcheck.models.dit`, :mod:`~tpcheck.models.uvit`,
:mod:`~tpcheck.models.pixart`, :mod:`~tpcheck.models.mmdit`) reads top to bottom like its
paper's figure and has ``*_spec()`` functions returning its :class:`tpcheck.ModelSpec`. The
pieces the models share are written once in :mod:`~tpcheck.models.common` (blocks, tables,
the latent frame) and :mod:`~tpcheck.models.specs` (widths, head schemes, example inputs);
:mod:`tpcheck.models.registry` names the built-in targets for the CLI.
"""
