"""The ``torch.export`` tracer (``--tracer export``): a second opinion on the recorder.

Non-strict export re-traces the forward with fake tensors. It refuses data-dependent Python
and costs seconds per width on deep models, which is why the recorder is the default; it is
kept because an independent trace of the same forward catches recorder bugs (the test suite
traces every built-in target both ways and requires the same report). The graph is read as
exported: ``run_decompositions()`` would turn ``linear`` into ``addmm`` and SDPA into
``softmax + bmm``, losing the ops and the attention scale the rules need.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator

import torch

from tpcheck.tracers.record import Recorded


def export(model: torch.nn.Module, args: tuple, kwargs: dict) -> Recorded:
    """``torch.export.export(model, args, kwargs, strict=False)`` as a :class:`Recorded`."""
    with _quiet(), _width_mults_pinned(model):
        program = torch.export.export(model, args, kwargs, strict=False)
    sig = program.graph_signature
    leaves: dict[str, tuple[str, str]] = {}
    user_inputs = set(sig.user_inputs)
    to_param, to_buffer = dict(sig.inputs_to_parameters), dict(sig.inputs_to_buffers)
    for node in program.graph.nodes:
        if node.op != "placeholder":
            continue
        if node.name in to_param:
            leaves[node.name] = ("param", to_param[node.name])
        elif node.name in to_buffer:
            leaves[node.name] = ("buffer", to_buffer[node.name])
        else:
            leaves[node.name] = ("input" if node.name in user_inputs else "constant", node.name)
    return Recorded(program.graph, leaves)


@contextlib.contextmanager
def _width_mults_pinned(model: torch.nn.Module) -> Iterator[None]:
    """Freeze mup's ``width_mult()`` into a Python float on every module that has one.

    mup's ``MuReadout.forward`` divides by ``self.weight.infshape.width_mult()``, an attribute
    that export's fake parameters do not carry (mup issue #60). The value is a constant per
    width, which is all export needs; the recorder keeps the real parameters and needs no pin.
    """
    pinned = []
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if callable(getattr(module, "width_mult", None)) and hasattr(weight, "infshape"):
            value = float(module.width_mult())
            module.width_mult = lambda value=value: value  # instance attribute shadows method
            pinned.append(module)
    try:
        yield
    finally:
        for module in pinned:
            del module.width_mult


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence export's warnings and log dumps: a failure is reported by us, in one message."""
    loggers = [logging.getLogger(name) for name in ("torch", "torch.export",
                                                    "torch.fx.experimental.symbolic_shapes",
                                                    "torch._dynamo", "torch._export")]
    levels = [lg.level for lg in loggers]
    sink = io.StringIO()  # export prints the partial graph of a failed trace to stdout
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink), \
            contextlib.redirect_stderr(sink):
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.CRITICAL)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)
