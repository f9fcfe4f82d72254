"""The five networks whose netx files lava-dl must run (issue 14), and their spike input.

Shared by tests/export/test_netx_lavadl.py, test_netx_qat.py and benchmarks/netx_agreement.py. Gains on
the default initialisation make every layer fire 6-25% of the time on the input below; ``fit`` trains a
network (or its ``quantize_for_netx`` copy) with the project's loop on rate-coded Fashion-MNIST and
``rate_accuracy`` measures it.
"""

from __future__ import annotations

import functools
import tempfile

import torch
import torch.nn.functional as F
from torch import nn

import spikeattn.neuron as N
from spikeattn.data import fashion_mnist
from spikeattn.data.datasets import FASHION_MNIST_MEAN, FASHION_MNIST_STD
from spikeattn.export import PerStep
from spikeattn.train import TrainConfig, accuracy, train


def rate_input(n: int, t: int, seed: int = 0) -> torch.Tensor:
    """``[T, n, 1, 28, 28]`` binary spikes: each of the first ``n`` test images' pixels (scaled to
    [0, 1]) fires with its intensity as probability, every step."""
    img = fashion_mnist("test", limit=n).images
    img = (img - img.amin()) / (img.amax() - img.amin())
    return (torch.rand(t, *img.shape, generator=torch.Generator().manual_seed(seed)) < img).float()


QAT_LR = 5e-4     # fine-tuning on netx's grid (quantize_for_netx): a quarter of the float training's


def rate_code(images: torch.Tensor, t: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Normalised Fashion-MNIST images ``[B, 1, 28, 28]`` -> ``[T, B, 1, 28, 28]`` spikes, each pixel
    firing with its intensity in [0, 1] as probability, every step."""
    p = (images * FASHION_MNIST_STD + FASHION_MNIST_MEAN).clamp(0, 1)
    return (torch.rand(t, *p.shape, generator=generator) < p).float()


class RateClassifier(nn.Module):
    """``images -> output firing rates [B, 10]`` of ``net`` on ``t`` steps of rate-coded input."""

    def __init__(self, net: nn.Module, t: int, seed: int | None = None):
        super().__init__()
        self.net, self.t = net, t
        self.generator = None if seed is None else torch.Generator().manual_seed(seed)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        N.reset(self.net)      # each batch is a new set of samples
        return self.net(rate_code(images, self.t, self.generator)).mean(0)


def fit(net: nn.Module, steps: int, t: int = 8, lr: float = 2e-3, seed: int = 0) -> nn.Module:
    """Train ``net`` in place for ``steps`` AdamW steps of 64 Fashion-MNIST training images (the
    project's loop; loss: MSE of the output firing rates to the one-hot label) and return it in eval mode."""
    with tempfile.TemporaryDirectory(prefix="netx-fit-") as out:
        config = TrainConfig(steps=steps, batch_size=64, lr=lr, seed=seed, out_dir=out, progress=False,
                             log_every=max(steps, 1), grad_clip=1.0)
        train(RateClassifier(net, t), _train_set(), config,
              loss_fn=lambda rates, y: F.mse_loss(rates, F.one_hot(y, 10).float()))
    return net.eval()


@functools.lru_cache(maxsize=1)
def _train_set():
    return fashion_mnist("train")


def rate_accuracy(net: nn.Module, n: int = 2000, t: int = 8, seed: int = 0) -> float:
    """Top-1 accuracy of the output firing rates on the first ``n`` Fashion-MNIST test images (one fixed
    rate-coding draw)."""
    return accuracy(RateClassifier(net, t, seed), fashion_mnist("test", limit=n), batch_size=500)


def _gains(net: nn.Module, gains) -> nn.Module:
    layers = [m for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    with torch.no_grad():
        for m, g in zip(layers, gains, strict=True):
            m.weight.mul_(g)
    return net.eval()


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return _gains(nn.Sequential(PerStep(nn.Flatten()), nn.Linear(784, 64), N.LIF(), nn.Linear(64, 10), N.LIF()), (4, 14))


def conv_first() -> nn.Module:
    """The first layer is a conv fed by spikes (with BatchNorm, folded)."""
    torch.manual_seed(1)
    net = nn.Sequential(PerStep(nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8)), N.LIF(),
                        PerStep(nn.Flatten()), nn.Linear(8 * 14 * 14, 10), N.LIF())
    net[0][1].running_mean.uniform_(-0.2, 0.2)
    net[0][1].running_var.uniform_(0.5, 2.0)
    return _gains(net, (4, 14))


def conv_pool() -> nn.Module:
    """Two conv layers with 2x2 average pooling after each (folded into the next layer)."""
    torch.manual_seed(2)
    net = nn.Sequential(PerStep(nn.Conv2d(1, 8, 3, padding=1)), N.LIF(),
                        PerStep(nn.AvgPool2d(2), nn.Conv2d(8, 16, 3, padding=1)), N.LIF(),
                        PerStep(nn.AvgPool2d(2), nn.Flatten()), nn.Linear(16 * 7 * 7, 10), N.LIF())
    return _gains(net, (4, 16, 20))


def if_mlp() -> nn.Module:
    torch.manual_seed(3)
    return _gains(nn.Sequential(PerStep(nn.Flatten()), nn.Linear(784, 64), N.IF(), nn.Linear(64, 10), N.IF()),
                  (4 / 3, 14 / 3))


def no_decay_input() -> nn.Module:
    torch.manual_seed(4)
    return _gains(nn.Sequential(PerStep(nn.Flatten()), nn.Linear(784, 64), N.LIF(tau=4.0, decay_input=False),
                                nn.Linear(64, 10), N.LIF(tau=4.0, decay_input=False)), (2, 7))


NETS = {"mlp": mlp, "conv_first": conv_first, "conv_pool": conv_pool, "if": if_mlp, "decay_input_false": no_decay_input}
