"""Lava processes of the runtime and their Python process models (floating and fixed point).

Every graph node becomes one process: ``Source`` (the input), ``Unary`` (one input port) or
``Binary`` (two, for residual adds and masks). What a node computes is a kernel from
``kernels.py``; the process model only moves data and keeps time:

- a node works on local time ``t = step - start`` for ``0 <= t < T``, where ``start`` is when
  its first real input arrives (the sum of synaptic delays upstream); before and after, it sends
  zeros and leaves its state alone, so the warm-up steps cannot charge a neuron with a bias;
- synapse-like nodes (linear, conv, attention products, readout) have one step of delay, as
  Lava's Dense/Conv: they send last step's result, then compute the new one;
- a two-input node delays the earlier input in a FIFO so both operands are from the same ``t``;
- with ``record`` set, a node writes its ``[T, B, ...]`` outputs to ``<record>/<name>.npy`` at
  the last step (Var.get sends arrays element by element, far too slow for layer traces).

Ports are batched: shape ``(B, *node_shape)``, so one Lava run carries B samples at once.
"""

from __future__ import annotations

import collections
import os
import signal
import sys
import traceback

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from kernels import make_kernel


class Source(AbstractProcess):
    """Sends ``data[t]`` (``[T, B, ...]``) at step ``t``, zeros afterwards."""

    def __init__(self, shape, data):
        super().__init__(shape=shape, data=data)
        self.s_out = OutPort(shape=shape)


class Unary(AbstractProcess):
    def __init__(self, in_shape, out_shape, spec):
        super().__init__(spec=spec)
        self.a_in0 = InPort(shape=in_shape)
        self.s_out = OutPort(shape=out_shape)


class Binary(AbstractProcess):
    def __init__(self, in_shapes, out_shape, spec):
        super().__init__(spec=spec)
        self.a_in0 = InPort(shape=in_shapes[0])
        self.a_in1 = InPort(shape=in_shapes[1])
        self.s_out = OutPort(shape=out_shape)


class _SourceModel(PyLoihiProcessModel):
    DTYPE = np.float32

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.data = np.asarray(proc_params["data"], dtype=self.DTYPE)
        self.zeros = np.zeros(proc_params["shape"], self.DTYPE)

    def run_spk(self):
        t = self.time_step - 1
        self.s_out.send(self.data[t] if t < len(self.data) else self.zeros)


def _fail_fast(spec):
    """Print the error and stop the runner: an exception inside a Lava process model hangs the run."""
    traceback.print_exc()
    print(f"lava runtime: node {spec['name']!r} ({spec['op']}) failed at the step above", file=sys.stderr, flush=True)
    os.kill(spec["runner_pid"], signal.SIGTERM)
    raise SystemExit(1)


class _NodeModel(PyLoihiProcessModel):
    """Shared by every node model: local time, delay, input alignment, recording."""

    MODE = "float"
    DTYPE = np.float32
    N_IN = 1

    def __init__(self, proc_params):
        super().__init__(proc_params)
        spec = proc_params["spec"]
        # (not self.start: that name is the process model's main loop)
        self.spec, self.n_steps, self.t_first = spec, spec["T"], spec["start"]
        self.kernel = make_kernel(spec, self.MODE)
        self.out_zeros = np.zeros(spec["out_shape"], self.DTYPE)
        self.buf = self.out_zeros
        # FIFOs that hold the earlier of two inputs back until the later one catches up.
        self.lags = spec["lags"]
        self.fifos = [collections.deque(np.zeros(s, self.DTYPE) for _ in range(lag))
                      for s, lag in zip(spec["in_shapes"], self.lags)]
        self.records = []

    def _inputs(self):
        ports = [getattr(self, f"a_in{i}") for i in range(self.N_IN)]
        xs = []
        for port, fifo, lag in zip(ports, self.fifos, self.lags):
            x = port.recv().astype(self.DTYPE, copy=False)
            if lag:
                fifo.append(x)
                x = fifo.popleft()
            xs.append(x)
        return xs

    def run_spk(self):
        try:
            self._step()
        except BaseException:
            _fail_fast(self.spec)

    def _step(self):
        t = self.time_step - 1 - self.t_first
        if self.kernel.delay:
            self.s_out.send(self.buf)
        xs = self._inputs()
        y = self.kernel(*xs) if 0 <= t < self.n_steps else self.out_zeros
        if 0 <= t < self.n_steps and self.spec["record"]:
            self.records.append(np.asarray(y, self.DTYPE))
        if self.kernel.delay:
            self.buf = y
        else:
            self.s_out.send(y)
        if self.time_step == self.spec["total_steps"] and self.spec["record"]:
            path = os.path.join(self.spec["record"], self.spec["name"] + ".npy")
            np.save(path, np.stack(self.records))


def _bind(proc, base, mode, dtype, n_in, tag_name):
    """One concrete process model class: ports typed for the mode, tagged for Loihi2SimCfg."""
    attrs = {"MODE": mode, "DTYPE": dtype, "N_IN": n_in,
             "s_out": LavaPyType(PyOutPort.VEC_DENSE, dtype)}
    for i in range(n_in):
        attrs[f"a_in{i}"] = LavaPyType(PyInPort.VEC_DENSE, dtype)
    cls = type(f"Py{proc.__name__}{mode.title()}", (base,), attrs)
    return implements(proc=proc, protocol=LoihiProtocol)(requires(CPU)(tag(tag_name)(cls)))


# Float models carry float32 (exact spikes); fixed-point models carry integers (int32 ports).
# The run passes them to Loihi2SimCfg(exception_proc_model_map=...) explicitly; they are also
# module attributes so that Lava's own model discovery would find them.
MODELS = {}
for _mode, _dtype, _tag in (("float", np.float32, "floating_pt"), ("fixed", np.int64, "fixed_pt")):
    for _proc, _base, _n in ((Source, _SourceModel, 0), (Unary, _NodeModel, 1), (Binary, _NodeModel, 2)):
        MODELS[(_proc, _mode)] = _cls = _bind(_proc, _base, _mode, _dtype, _n, _tag)
        globals()[_cls.__name__] = _cls
