"""Tracers: turn one forward of a model into a ``torch.fx.Graph`` the capture stage reads.

* ``record`` (default): runs the model's own forward eagerly under a TorchFunctionMode and
  records every torch call (:mod:`tpcheck.tracers.record`);
* ``export``: ``torch.export`` in non-strict mode (:mod:`tpcheck.tracers.export`), kept as a
  second opinion: the test suite traces every built-in target both ways and requires the
  same report.
"""

TRACERS = ("record", "export")
