"""torch.compile helpers that cost nothing at import time."""

from __future__ import annotations


def machine_constant(fn):
    """Let torch.compile call ``fn`` once while tracing and bake its result into the graph.

    For facts of the machine (is a compiler / CuPy / a GPU there?) that a traced graph must not
    re-check with file-system calls. This sets the same marker as
    ``torch.compiler.assume_constant_result``, which would import ``torch._dynamo`` (about 2 s)
    as soon as spikeattn is imported.
    """
    fn._dynamo_marked_constant = True
    return fn
