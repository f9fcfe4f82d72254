"""NeuroBench 2.3's metrics from a count, by NeuroBench's names and definitions, per sample.

NeuroBench hooks ``nn.Linear``/``Conv``/``RNN`` modules and the activation modules it is told about;
the counter sees every matmul and convolution however it is called, so the same definitions reach
weights used functionally (``LinearBN``), attention products and fused kernels. On a model whose
layers NeuroBench can all see the figures are equal (``tests/opcount/test_neurobench.py``).

* ``Footprint``: bytes of parameters and buffers.
* ``ConnectionSparsity``: zero weights / weights, over every weight a counted op read (NeuroBench:
  the weights of its leaf Linear/Conv/RNN modules), rounded to 4 decimals as NeuroBench does.
* ``ActivationSparsity``: zero outputs / outputs of the spiking neurons and ReLU/Sigmoid modules.
* ``SynapticOperations``: per op, inputs and weights binarised (nonzero -> 1), bias left out:
  ``Effective_ACs`` where every input holds only -1, 0, 1, ``Effective_MACs`` otherwise, and
  ``Dense`` with every input and weight 1 (padding taps not counted).
* ``MembraneUpdates``: one update per neuron per time step. NeuroBench 2.3 counts membrane
  changes of snntorch neurons only (0 for spikeattn's), so this figure has no NeuroBench twin.
"""

from __future__ import annotations


def neurobench_metrics(report) -> dict:
    """The metrics of ``report`` (an ``OpReport``) as NeuroBench 2.3 names them, per sample."""
    n = report.samples
    zeros, weights = report.model_figures.get("used_connections", (0, 0))
    nnz, outputs = (sum(v[i] for v in report.activations.values()) for i in (0, 1))
    total = {k: report.total(k) for k in ("nb_mac", "nb_ac", "nb_dense")}
    return {
        "Footprint": report.footprint_bytes,
        "ConnectionSparsity": round(zeros / weights, 4) if weights else 0.0,
        "ActivationSparsity": (outputs - nnz) / outputs if outputs else 0.0,
        "SynapticOperations": {"Effective_MACs": total["nb_mac"] / n, "Effective_ACs": total["nb_ac"] / n,
                               "Dense": total["nb_dense"] / n},
        "MembraneUpdates": sum(v["updates"] for v in report.neurons.values()) / n,
    }
