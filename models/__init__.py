"""Reference diffusion transformers written from scratch in standard parametrization.

Each module is one model in one readable file with a ``*_spec()`` returning its
:class:`tpcheck.ModelSpec`; :mod:`tpcheck.models.registry` names them for the CLI.
"""
