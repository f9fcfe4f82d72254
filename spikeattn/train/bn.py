"""BatchNorm running statistics re-estimated for the final weights."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def recalibrate_bn(model: nn.Module, dataset, batches: int = 50, batch_size: int = 256) -> None:
    """Re-estimate BatchNorm running statistics with the final weights (a no-grad train-mode pass).

    At a high learning rate the running averages trail the weights; the exact average over a few
    thousand training images (momentum=None) matches what the network sees at test time.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    for i, (x, _) in enumerate(loader):
        if i == batches:
            break
        model(x)
    for m, momentum in zip(bns, saved):
        m.momentum = momentum
    model.eval()
